// Package feed holds what the city's two open-data feeds are: their datasets,
// their endpoints, their rows, and the parsers that turn response bodies into rows.
package feed

import "fmt"

// Dataset names one of the two feeds.
type Dataset string

const (
	// Lots is the static list of public off-street parking lots (data.gov.tw 122955).
	Lots Dataset = "lots"
	// Availability is the live count of free car spaces per lot (data.gov.tw 122902).
	Availability Dataset = "availability"
)

// Datasets lists every dataset in a stable order.
var Datasets = []Dataset{Lots, Availability}

// ParseDataset validates a dataset name given by a user or a message.
func ParseDataset(s string) (Dataset, error) {
	switch Dataset(s) {
	case Lots, Availability:
		return Dataset(s), nil
	}
	return "", fmt.Errorf("unknown dataset %q (want %q or %q)", s, Lots, Availability)
}

// UUID is the dataset's identifier on data.ntpc.gov.tw.
func (d Dataset) UUID() string {
	switch d {
	case Lots:
		return "b1464ef0-9c7c-4a6f-abf7-6bdf32847e68"
	case Availability:
		return "e09b35a5-a738-48cc-b0f5-570b67ad9c78"
	}
	return ""
}

// Format is the body format of a feed response.
type Format string

const (
	// JSON is the paged JSON endpoint: a bare array of flat objects with string values.
	JSON Format = "json"
	// CSV is the whole-file CSV download: BOM, every field quoted.
	CSV Format = "csv"
)

// ParseFormat validates a format name.
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case JSON, CSV:
		return Format(s), nil
	}
	return "", fmt.Errorf("unknown format %q (want %q or %q)", s, JSON, CSV)
}

// LotRow is one row of the lots feed, every value kept as the feed's raw string.
type LotRow struct {
	ID          string `json:"ID"`
	Area        string `json:"AREA"`
	Name        string `json:"NAME"`
	Type        string `json:"TYPE"`
	Summary     string `json:"SUMMARY"`
	Address     string `json:"ADDRESS"`
	Tel         string `json:"TEL"`
	PayEx       string `json:"PAYEX"`
	ServiceTime string `json:"SERVICETIME"`
	TW97X       string `json:"TW97X"`
	TW97Y       string `json:"TW97Y"`
	TotalCar    string `json:"TOTALCAR"`
	TotalMotor  string `json:"TOTALMOTOR"`
	TotalBike   string `json:"TOTALBIKE"`
}

// AvailabilityRow is one row of the live feed, kept raw: AVAILABLECAR may be
// -9 (no live figure), another negative, or not a number at all.
type AvailabilityRow struct {
	ID           string `json:"ID"`
	AvailableCar string `json:"AVAILABLECAR"`
}
