// Package feedtest serves fixture feeds over HTTP for the tests of other
// packages, and builds realistic rows and bodies for tests that need no HTTP.
//
// The fixtures start from the real 2019 lots response (946 rows) and extend it
// deterministically to the size of the 2026 feed, keeping what the real feeds
// do that a parser or loader must survive: IDs as zero-padded strings,
// duplicate IDs with conflicting data, every value a string, TOTALBIKE empty,
// commas inside values, garbage coordinates, ~70% of live rows at -9.
package feedtest

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
)

// sample2019 is the real lots response of 2019-04 (the 2018-2019 API's
// result.records array). A string, so that nothing can modify it.
//
//go:embed testdata/lots-2019-04.records.json
var sample2019 string

// Sizes of the fixtures, for tests that assert counts.
const (
	// SampleLotsRows is len(SampleLots()): the 946 real rows, a second 020082
	// with TOTALCAR 151, and synthetic rows.
	SampleLotsRows = 1422
	// SampleLotIDs is the number of distinct IDs among them (duplicates:
	// 010104 with two names, 040014 twice alike, 020082 with TOTALCAR 0 and 151).
	SampleLotIDs = 1419
	// SampleAvailabilityRows is len(SampleAvailability(seed)): every lot ID once
	// plus SampleAvailabilityDuplicates repeats.
	SampleAvailabilityRows       = SampleLotIDs + SampleAvailabilityDuplicates
	SampleAvailabilityDuplicates = 11
	// PageCap is the most rows the platform (and Server) puts in one page.
	PageCap = 1000
)

// WAFPage is the F5 "Request Rejected" page the platform answers with status
// 200 (under 512 bytes, like the real one).
const WAFPage = `<html><head><title>Request Rejected</title></head><body>The requested URL was rejected. Please consult with your administrator.<br><br>Your support ID is: 14285745213658934671<br><br><a href='javascript:history.back();'>[Go Back]</a></body></html>`

// RealLots returns the 946 real rows of the 2019 sample, as the feed gave them.
func RealLots() []feed.LotRow {
	rows, err := feed.ParseLots(feed.JSON, []byte(sample2019))
	if err != nil {
		panic(fmt.Sprintf("feedtest: embedded sample does not parse: %v", err))
	}
	return rows
}

// SampleLots returns SampleLotsRows realistic lots rows: the real 2019 rows
// followed by synthetic ones whose IDs follow the real pattern (two-digit
// district code, four-digit number) and whose values are modelled on real
// rows of the same district. The result is the same on every call and the
// caller may modify it.
func SampleLots() []feed.LotRow {
	rows := RealLots()
	// The 2019 sample has 020082 with TOTALCAR 0; later feeds also carry it with 151.
	for _, r := range rows {
		if r.ID == "020082" {
			r.TotalCar = "151"
			rows = append(rows, r)
			break
		}
	}
	next := map[string]int{} // district code -> next free number
	for _, r := range rows {
		if n, err := strconv.Atoi(r.ID[2:]); err == nil && n >= next[r.ID[:2]] {
			next[r.ID[:2]] = n + 1
		}
	}
	base := len(rows)
	for i := 0; len(rows) < SampleLotsRows; i++ {
		t := rows[(i*7)%base]
		code := t.ID[:2]
		r := feed.LotRow{
			ID:          fmt.Sprintf("%s%04d", code, next[code]),
			Area:        t.Area,
			Name:        fmt.Sprintf("%s公有第%d停車場", strings.TrimSuffix(t.Area, "區"), next[code]),
			Type:        []string{"1", "2", "2"}[i%3],
			Summary:     t.Summary,
			Address:     fmt.Sprintf("新北市%s民生路%d號", t.Area, 10+i),
			Tel:         t.Tel,
			PayEx:       t.PayEx,
			ServiceTime: t.ServiceTime,
			TW97X:       shift(t.TW97X, 150000, 360000, float64(i%37)*13.5),
			TW97Y:       shift(t.TW97Y, 2.60e6, 2.85e6, float64(i%29)*-11.25),
			TotalCar:    strconv.Itoa(20 + (i*37)%400),
			TotalMotor:  strconv.Itoa((i * 13) % 120),
			TotalBike:   "",
		}
		next[code]++
		// Values with commas, as the real CSV has them.
		if i%5 == 0 {
			r.PayEx = "小型車計時30元;小型車月租2,900元;機車計次10元；"
		}
		if i%7 == 0 {
			r.Tel = "02-22559110, 0905007567"
		}
		rows = append(rows, r)
	}
	return rows
}

// shift moves a plausible coordinate by d metres and leaves garbage as it is.
func shift(raw string, lo, hi, d float64) string {
	v, err := strconv.ParseFloat(raw, 64)
	if err != nil || v <= lo || v >= hi {
		return raw
	}
	return strconv.FormatFloat(v+d, 'f', -1, 64)
}

// SampleAvailability returns SampleAvailabilityRows live rows for the IDs of
// SampleLots: each distinct ID once, in lots order, plus 11 repeats with a
// different value right after a later row. About 70% are "-9", about 2% other
// negatives (-3, -6, -1), the rest between 0 and the lot's TOTALCAR. The same
// seed gives the same rows.
func SampleAvailability(seed uint64) []feed.AvailabilityRow {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	lots := SampleLots()
	seen := map[string]bool{}
	rows := make([]feed.AvailabilityRow, 0, SampleAvailabilityRows)
	for _, l := range lots {
		if seen[l.ID] {
			continue
		}
		seen[l.ID] = true
		rows = append(rows, feed.AvailabilityRow{ID: l.ID, AvailableCar: liveValue(rng, l.TotalCar)})
	}
	// Repeat 11 distinct IDs, each with a value unlike its first one.
	picked := map[int]bool{}
	for len(picked) < SampleAvailabilityDuplicates {
		picked[rng.IntN(len(rows))] = true
	}
	out := make([]feed.AvailabilityRow, 0, SampleAvailabilityRows)
	for i, r := range rows {
		out = append(out, r)
		if picked[i] {
			dup := r
			for dup.AvailableCar == r.AvailableCar {
				dup.AvailableCar = liveValue(rng, "60")
			}
			out = append(out, dup)
		}
	}
	return out
}

func liveValue(rng *rand.Rand, totalCar string) string {
	switch p := rng.Float64(); {
	case p < 0.70:
		return "-9"
	case p < 0.72:
		return []string{"-3", "-6", "-1"}[rng.IntN(3)]
	}
	total, err := strconv.Atoi(totalCar)
	if err != nil || total <= 0 {
		total = 50
	}
	return strconv.Itoa(rng.IntN(total + 1))
}

// LotsJSONPages encodes rows as the JSON endpoint's pages of at most size
// rows: compact arrays with every value a string, keys in the feed's order.
// There is always at least one page; when len(rows) is a multiple of size the
// last page is the empty array the platform answers past the end.
func LotsJSONPages(rows []feed.LotRow, size int) [][]byte { return jsonPages(rows, size) }

// AvailabilityJSONPages is LotsJSONPages for live rows.
func AvailabilityJSONPages(rows []feed.AvailabilityRow, size int) [][]byte {
	return jsonPages(rows, size)
}

func jsonPages[R any](rows []R, size int) [][]byte {
	if size < 1 {
		size = PageCap
	}
	var pages [][]byte
	for start := 0; ; start += size {
		end := min(start+size, len(rows))
		pages = append(pages, JSONBody(rows[min(start, end):end]))
		if end-start < size {
			return pages
		}
	}
}

// JSONBody encodes rows as one JSON body (one page, or a whole array).
func JSONBody[R any](rows []R) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // the platform writes <, > and & as they are
	if rows == nil {
		rows = []R{}
	}
	if err := enc.Encode(rows); err != nil {
		panic(fmt.Sprintf("feedtest: encode rows: %v", err))
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// LotsCSV encodes rows as the platform's CSV download: BOM, a quoted header,
// every field quoted, LF line ends.
func LotsCSV(rows []feed.LotRow) []byte {
	header := []string{"ID", "AREA", "NAME", "TYPE", "SUMMARY", "ADDRESS", "TEL", "PAYEX", "SERVICETIME", "TW97X", "TW97Y", "TOTALCAR", "TOTALMOTOR", "TOTALBIKE"}
	recs := make([][]string, len(rows))
	for i, r := range rows {
		recs[i] = []string{r.ID, r.Area, r.Name, r.Type, r.Summary, r.Address, r.Tel, r.PayEx, r.ServiceTime, r.TW97X, r.TW97Y, r.TotalCar, r.TotalMotor, r.TotalBike}
	}
	return csvBody(header, recs)
}

// AvailabilityCSV encodes live rows as the platform's CSV download.
func AvailabilityCSV(rows []feed.AvailabilityRow) []byte {
	recs := make([][]string, len(rows))
	for i, r := range rows {
		recs[i] = []string{r.ID, r.AvailableCar}
	}
	return csvBody([]string{"ID", "AVAILABLECAR"}, recs)
}

func csvBody(header []string, recs [][]string) []byte {
	var b bytes.Buffer
	b.WriteString("\ufeff")
	line := func(fields []string) {
		for i, f := range fields {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('"')
			b.WriteString(strings.ReplaceAll(f, `"`, `""`))
			b.WriteByte('"')
		}
		b.WriteByte('\n')
	}
	line(header)
	for _, r := range recs {
		line(r)
	}
	return b.Bytes()
}
