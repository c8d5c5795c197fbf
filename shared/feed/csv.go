package feed

// This file holds the parser of the whole-file CSV download.

import (
	"bytes"
	"encoding/csv"
	"io"
	"strings"
	"unicode/utf8"
)

// parseCSV parses the platform's CSV download: optional BOM, a header row
// naming the columns (located by name, in any order), RFC 4180 quoting, LF or
// CRLF line ends. encoding/csv is linear and, with ReuseRecord, allocates one
// string per record; every field is a substring of it.
func parseCSV[R any](body []byte, field func(*R, string) *string, idOf func(*R) *string, required string) ([]R, error) {
	data := bytes.TrimPrefix(body, []byte(bom))
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, badBody(body, "empty body")
	}
	if bytes.TrimLeft(data, " \t\r\n")[0] == '<' {
		return nil, rejected(body)
	}
	cr := csv.NewReader(bytes.NewReader(data))
	cr.ReuseRecord = true
	cr.FieldsPerRecord = 0 // every record must have as many fields as the header
	header, err := cr.Read()
	if err != nil {
		return nil, badBody(body, "CSV header: %v", err)
	}
	// cols[i] is the key of column i, or "" for a column this row type does not hold.
	cols := make([]string, len(header))
	var probe R
	seen := make(map[string]bool, len(header))
	for i, h := range header {
		if !utf8.ValidString(h) {
			return nil, badBody(body, "CSV header: invalid UTF-8 in column %d", i+1)
		}
		k := canonicalKey(strings.TrimSpace(h))
		if field(&probe, k) == nil {
			continue
		}
		if seen[k] {
			return nil, badBody(body, "CSV header: column %s appears twice", k)
		}
		seen[k] = true
		cols[i] = k
	}
	if !seen["ID"] {
		return nil, badBody(body, "CSV header has no ID column")
	}
	if required != "" && !seen[required] {
		return nil, badBody(body, "CSV header has no %s column", required)
	}
	rows := make([]R, 0, bytes.Count(data, []byte{'\n'}))
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, badBody(body, "CSV: %v", err)
		}
		rows = append(rows, *new(R))
		r := &rows[len(rows)-1]
		for i, v := range rec {
			if !utf8.ValidString(v) {
				return nil, badBody(body, "row %d column %d: invalid UTF-8", len(rows), i+1)
			}
			if cols[i] != "" {
				*field(r, cols[i]) = v
			}
		}
		if err := checkRow(body, len(rows), *idOf(r), true, true, required); err != nil {
			return nil, err
		}
	}
	return rows, nil
}
