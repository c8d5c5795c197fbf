package feed

// This file holds the shape of each dataset: the columns its rows must
// carry. The parsers accept any subset of a row's keys (a missing one reads
// as empty), so a URL answering another dataset's rows, or rows stripped of
// their names and coordinates, parses; the shape check is what refuses it,
// in the extractor before anything is stored and in the loader before
// anything is applied.

import "strings"

// RequiredLotColumns are the lots columns without which a lot is blank to
// its users: its name, district, address, position and car capacity (and its
// ID, which the parser already requires in every row). The feed has carried
// them since 2015, in every API generation.
var RequiredLotColumns = []string{"NAME", "AREA", "ADDRESS", "TW97X", "TW97Y", "TOTALCAR"}

// RequiredAvailabilityColumns are the live feed's: the value (the parser
// already requires the key in every row, and the ID).
var RequiredAvailabilityColumns = []string{"AVAILABLECAR"}

// MissingLotColumns returns the required columns that no row has a value
// for (empty or only spaces in every row), in RequiredLotColumns order. A
// column some real rows leave empty (a lot without coordinates) is still
// there; one no row fills is not. No rows: nothing is missing (an empty
// answer is refused as such).
func MissingLotColumns(rows []LotRow) []string {
	return missing(RequiredLotColumns, len(rows), func(i int, col string) string {
		r := &rows[i]
		switch col {
		case "NAME":
			return r.Name
		case "AREA":
			return r.Area
		case "ADDRESS":
			return r.Address
		case "TW97X":
			return r.TW97X
		case "TW97Y":
			return r.TW97Y
		case "TOTALCAR":
			return r.TotalCar
		}
		return ""
	})
}

// MissingAvailabilityColumns is MissingLotColumns for live rows.
func MissingAvailabilityColumns(rows []AvailabilityRow) []string {
	return missing(RequiredAvailabilityColumns, len(rows), func(i int, _ string) string { return rows[i].AvailableCar })
}

func missing(cols []string, n int, value func(row int, col string) string) []string {
	if n == 0 {
		return nil
	}
	var out []string
	for _, c := range cols {
		found := false
		for i := 0; i < n && !found; i++ {
			found = strings.TrimSpace(value(i, c)) != ""
		}
		if !found {
			out = append(out, c)
		}
	}
	return out
}
