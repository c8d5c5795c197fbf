package feedtest

import (
	"bytes"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
)

func TestSampleLots(t *testing.T) {
	rows := SampleLots()
	if len(rows) != SampleLotsRows {
		t.Fatalf("%d rows, want %d", len(rows), SampleLotsRows)
	}
	if !reflect.DeepEqual(rows, SampleLots()) {
		t.Fatal("SampleLots is not deterministic")
	}
	byID := map[string][]feed.LotRow{}
	for _, r := range rows {
		if len(r.ID) != 6 || strings.Trim(r.ID, "0123456789") != "" {
			t.Fatalf("ID %q does not follow the real pattern", r.ID)
		}
		if r.TotalBike != "" {
			t.Fatalf("%s: TOTALBIKE %q", r.ID, r.TotalBike)
		}
		byID[r.ID] = append(byID[r.ID], r)
	}
	if len(byID) != SampleLotIDs {
		t.Fatalf("%d IDs, want %d", len(byID), SampleLotIDs)
	}
	if d := byID["010104"]; len(d) != 2 || d[0].Name == d[1].Name {
		t.Fatalf("010104: %+v", d)
	}
	if d := byID["020082"]; len(d) != 2 || d[0].TotalCar != "0" || d[1].TotalCar != "151" {
		t.Fatalf("020082: %+v", d)
	}
	if rows[0].ID != "010056" || rows[0].Name != "遠東百貨停車場" {
		t.Fatalf("first row %+v", rows[0])
	}
}

func TestSampleAvailability(t *testing.T) {
	rows := SampleAvailability(7)
	if len(rows) != SampleAvailabilityRows {
		t.Fatalf("%d rows, want %d", len(rows), SampleAvailabilityRows)
	}
	if !reflect.DeepEqual(rows, SampleAvailability(7)) {
		t.Fatal("not deterministic for a seed")
	}
	if reflect.DeepEqual(rows, SampleAvailability(8)) {
		t.Fatal("the seed changes nothing")
	}
	lotIDs := map[string]bool{}
	for _, l := range SampleLots() {
		lotIDs[l.ID] = true
	}
	seen := map[string]int{}
	nine, neg := 0, 0
	for _, r := range rows {
		if !lotIDs[r.ID] {
			t.Fatalf("ID %s is not a lot", r.ID)
		}
		seen[r.ID]++
		v, err := strconv.Atoi(r.AvailableCar)
		if err != nil {
			t.Fatalf("value %q", r.AvailableCar)
		}
		switch {
		case v == -9:
			nine++
		case v < 0:
			neg++
		}
	}
	if dups := len(rows) - len(seen); dups != SampleAvailabilityDuplicates {
		t.Fatalf("%d duplicates", dups)
	}
	if share := float64(nine) / float64(len(rows)); share < 0.65 || share > 0.75 || neg == 0 {
		t.Fatalf("-9 share %.2f, other negatives %d", share, neg)
	}
}

func TestBodiesParse(t *testing.T) {
	lots := SampleLots()
	pages := LotsJSONPages(lots, PageCap)
	if len(pages) != 2 {
		t.Fatalf("%d pages", len(pages))
	}
	var got []feed.LotRow
	for _, p := range pages {
		rows, err := feed.ParseLots(feed.JSON, p)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, rows...)
	}
	if !reflect.DeepEqual(got, lots) {
		t.Fatal("JSON pages do not parse back to the rows")
	}
	csvRows, err := feed.ParseLots(feed.CSV, LotsCSV(lots))
	if err != nil || !reflect.DeepEqual(csvRows, lots) {
		t.Fatalf("CSV does not parse back: %v", err)
	}
	if !bytes.Contains(LotsCSV(lots), []byte(`"小型車計時30元;小型車月租2,900元;機車計次10元；"`)) {
		t.Fatal("CSV lacks a quoted comma")
	}
	avail := SampleAvailability(1)
	ap := AvailabilityJSONPages(avail, PageCap)
	if len(ap) != 2 {
		t.Fatalf("%d availability pages", len(ap))
	}
	if n := len(AvailabilityJSONPages(avail[:1000], 1000)); n != 2 {
		t.Fatalf("exactly one full page should be followed by an empty one, got %d pages", n)
	}
	a, err := feed.ParseAvailability(feed.CSV, AvailabilityCSV(avail))
	if err != nil || !reflect.DeepEqual(a, avail) {
		t.Fatalf("availability CSV: %v", err)
	}
	if len(WAFPage) >= 512 {
		t.Fatal("WAF page too long")
	}
}

func get(t *testing.T, s *Server, path string) (int, []byte) {
	t.Helper()
	resp, err := s.Client().Get(s.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func TestServer(t *testing.T) {
	s := NewServer(t)
	// size above the cap is capped at 1000 rows.
	status, body := get(t, s, JSONPath(feed.Lots)+"?page=0&size=5000")
	rows, err := feed.ParseLots(feed.JSON, body)
	if status != 200 || err != nil || len(rows) != PageCap {
		t.Fatalf("page 0: %d %v %d rows", status, err, len(rows))
	}
	_, body = get(t, s, JSONPath(feed.Lots)+"?page=1&size=1000")
	if rows, _ := feed.ParseLots(feed.JSON, body); len(rows) != SampleLotsRows-PageCap {
		t.Fatalf("page 1: %d rows", len(rows))
	}
	_, body = get(t, s, JSONPath(feed.Availability)+"?page=9&size=1000")
	if string(body) != "[]" {
		t.Fatalf("past the end: %q", body)
	}
	if status, _ := get(t, s, JSONPath(feed.Lots)+"?size=1000"); status != 400 {
		t.Fatalf("missing page: %d", status)
	}
	_, body = get(t, s, CSVPath(feed.Availability)+"?page=1&size=100")
	if a, err := feed.ParseAvailability(feed.CSV, body); err != nil || len(a) != 100 {
		t.Fatalf("paged CSV: %v %d", err, len(a))
	}
	_, body = get(t, s, CSVFilePath(feed.Availability))
	if a, err := feed.ParseAvailability(feed.CSV, body); err != nil || len(a) != SampleAvailabilityRows {
		t.Fatalf("CSV file: %v %d", err, len(a))
	}

	s.FailNext(1, 503)
	if status, _ := get(t, s, CSVFilePath(feed.Lots)); status != 503 {
		t.Fatalf("FailNext: %d", status)
	}
	s.RejectNext(1)
	if status, body := get(t, s, CSVFilePath(feed.Lots)); status != 200 || string(body) != WAFPage {
		t.Fatalf("RejectNext: %d %q", status, body)
	}
	s.RejectCSVFile(feed.Availability, true)
	if _, body := get(t, s, CSVFilePath(feed.Availability)); string(body) != WAFPage {
		t.Fatal("RejectCSVFile")
	}
	if _, body := get(t, s, CSVFilePath(feed.Lots)); string(body) == WAFPage {
		t.Fatal("RejectCSVFile rejected the other dataset")
	}
	s.SetLots(SampleLots()[:3])
	if _, body := get(t, s, CSVFilePath(feed.Lots)); bytes.Count(body, []byte("\n")) != 4 {
		t.Fatalf("SetLots: %q", body)
	}
	s.TruncateNext(1)
	resp, err := s.Client().Get(s.URL + JSONPath(feed.Lots) + "?page=0&size=1000")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Fatal("a truncated response read without error")
	}
	if got := s.Requests(CSVFilePath(feed.Lots)); got != 4 {
		t.Fatalf("%d requests to the lots file", got)
	}
	if s.TotalRequests() != len(s.Log()) || !strings.HasSuffix(s.Log()[0], "?page=0&size=5000") {
		t.Fatalf("log %q", s.Log())
	}
}

func TestServerHang(t *testing.T) {
	s := NewServer(t)
	s.HangNext(1)
	c := *s.Client()
	// The client's own timeout ends the hanging request; nothing here sleeps.
	c.Timeout = 50 * time.Millisecond
	if _, err := c.Get(s.URL + CSVFilePath(feed.Lots)); err == nil {
		t.Fatal("hanging request answered")
	}
	c.Timeout = 0
	resp, err := c.Get(s.URL + CSVFilePath(feed.Lots))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("after the hang: %v", err)
	}
	resp.Body.Close()
}
