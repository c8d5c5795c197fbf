package feed

// This file holds the two parsers' entry points and what both formats share:
// the columns each row type holds, and the rules every row must pass.

import (
	"fmt"
	"strings"
)

// maxIDLen bounds a lot ID. Real IDs are 6 digits ("010056"); the bound leaves
// room for a format change while refusing free text in the ID column.
const maxIDLen = 16

// ParseLots parses one response body of the lots feed in the given format.
// Values are kept exactly as the feed gives them. The rows' strings share one
// copy of body (never body itself), so holding any row holds that copy.
func ParseLots(f Format, body []byte) ([]LotRow, error) {
	switch f {
	case JSON:
		return parseJSON(body, lotField, func(r *LotRow) *string { return &r.ID }, "")
	case CSV:
		return parseCSV(body, lotField, func(r *LotRow) *string { return &r.ID }, "")
	}
	return nil, fmt.Errorf("unknown format %q", f)
}

// ParseAvailability parses one response body of the live feed in the given format.
// AVAILABLECAR must be present in every row (as a key or a column) but its value
// is kept raw: -9, other negatives and non-numbers are the reader's business.
func ParseAvailability(f Format, body []byte) ([]AvailabilityRow, error) {
	switch f {
	case JSON:
		return parseJSON(body, availabilityField, func(r *AvailabilityRow) *string { return &r.ID }, "AVAILABLECAR")
	case CSV:
		return parseCSV(body, availabilityField, func(r *AvailabilityRow) *string { return &r.ID }, "AVAILABLECAR")
	}
	return nil, fmt.Errorf("unknown format %q", f)
}

// lotField maps a feed key to the LotRow field that holds it.
func lotField(r *LotRow, key string) *string {
	switch key {
	case "ID":
		return &r.ID
	case "AREA":
		return &r.Area
	case "NAME":
		return &r.Name
	case "TYPE":
		return &r.Type
	case "SUMMARY":
		return &r.Summary
	case "ADDRESS":
		return &r.Address
	case "TEL":
		return &r.Tel
	case "PAYEX":
		return &r.PayEx
	case "SERVICETIME":
		return &r.ServiceTime
	case "TW97X":
		return &r.TW97X
	case "TW97Y":
		return &r.TW97Y
	case "TOTALCAR":
		return &r.TotalCar
	case "TOTALMOTOR":
		return &r.TotalMotor
	case "TOTALBIKE":
		return &r.TotalBike
	}
	return nil
}

func availabilityField(r *AvailabilityRow, key string) *string {
	switch key {
	case "ID":
		return &r.ID
	case "AVAILABLECAR":
		return &r.AvailableCar
	}
	return nil
}

// canonicalKey folds a key to the feed's upper case. Keys are ASCII and
// nearly always upper case already, so this allocates only for odd bodies.
func canonicalKey(k string) string {
	for i := 0; i < len(k); i++ {
		if c := k[i]; 'a' <= c && c <= 'z' {
			return strings.ToUpper(k)
		}
	}
	return k
}

// validID reports whether id is a short code: the feed's IDs are zero-padded
// digit strings, so anything long or with spaces or punctuation means the body
// is not what we think it is.
func validID(id string) bool {
	if id == "" || len(id) > maxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// checkRow applies the per-row rules shared by both formats.
func checkRow(body []byte, row int, id string, hasID, hasRequired bool, required string) error {
	if !hasID || id == "" {
		return badBody(body, "row %d has no ID", row)
	}
	if !validID(id) {
		return badBody(body, "row %d: ID %q is not a short code", row, Head([]byte(id)))
	}
	if required != "" && !hasRequired {
		return badBody(body, "row %d (ID %s) has no %s", row, id, required)
	}
	return nil
}
