package extract

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/clock"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
)

// TestSnapshotFromPythonJSON: a body Python saved with ensure_ascii (the
// default of json.dump) imports with its Chinese text intact.
func TestSnapshotFromPythonJSON(t *testing.T) {
	raw := `{"timestamp": "2026-01-31T23:55:00.250000", "request": {"method": "GET", "url": "https://data.ntpc.gov.tw/api/datasets/` +
		feed.Lots.UUID() + `/json?page=0&size=1000", "endpoint": "x", "headers": {}, "body": null},
		"response": {"status_code": 200, "headers": {"Content-Type": "application/json"},
		"body": [{"ID": "010001", "AREA": "\u677f\u6a4b\u5340", "NAME": "a", "TYPE": "1", "SUMMARY": "", "ADDRESS": "\u677f\u6a4b\u5340\u4e2d\u5c71\u8def", "TEL": "",
		"PAYEX": "", "SERVICETIME": "", "TW97X": "297265", "TW97Y": "2767000", "TOTALCAR": "10", "TOTALMOTOR": "0", "TOTALBIKE": ""}]}}`
	var ex Exchange
	if err := json.Unmarshal([]byte(raw), &ex); err != nil {
		t.Fatal(err)
	}
	s, rows, err := ex.Snapshot()
	if err != nil || rows != 1 {
		t.Fatalf("%d rows, %v", rows, err)
	}
	lots, err := s.Lots()
	if err != nil || lots[0].Area != "板橋區" {
		t.Fatalf("%+v, %v", lots, err)
	}
	if !s.FetchedAt.Equal(time.Date(2026, 1, 31, 23, 55, 0, 250000000, clock.Taipei)) || s.Origin != OriginImport {
		t.Errorf("fetched %s origin %q", s.FetchedAt, s.Origin)
	}
	ex.Request.URL = strings.Replace(ex.Request.URL, feed.Lots.UUID(), "00000000-0000", 1)
	if _, _, err := ex.Snapshot(); err == nil || !strings.Contains(err.Error(), "not one of the two datasets") {
		t.Errorf("unrelated URL: %v", err)
	}
}
