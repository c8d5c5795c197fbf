package export_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/clock"
	"github.com/parking-newtaipei/parking-newtaipei/shared/export"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
)

// testDB is a real database file with three lots (one without a usable
// position) and two availability snapshots.
func testDB(t *testing.T) *sqlite.DB {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "parking.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	lots := []feed.LotRow{
		// 板橋 near the station: TWD97 TM2 coordinates.
		{ID: "000001", Area: "板橋區", Name: "府中停車場", Type: "1", Address: "新北市板橋區府中路1號&2號", TW97X: "297079", TW97Y: "2770183", TotalCar: "120", TotalMotor: "30", TotalBike: ""},
		{ID: "000002", Area: "三重區", Name: "無座標停車場", Type: "2", Address: "新北市三重區", TW97X: "0", TW97Y: "0", TotalCar: "10", TotalMotor: "0", TotalBike: "5"},
		{ID: "000003", Area: "中和區", Name: "永遠未知停車場", Type: "1", Address: "新北市中和區", TW97X: "299000", TW97Y: "2766000", TotalCar: "50", TotalMotor: "2", TotalBike: "0"},
	}
	t0 := time.Date(2026, 11, 26, 18, 0, 0, 0, clock.Taipei)
	in := []snapshot.Input{
		{Key: "lots/1", SHA256: "a1", Dataset: feed.Lots, FetchedAt: t0, Lots: lots},
		{Key: "availability/1", SHA256: "b1", Dataset: feed.Availability, FetchedAt: t0.Add(time.Minute),
			Availability: []feed.AvailabilityRow{{ID: "000001", AvailableCar: "40"}, {ID: "000002", AvailableCar: "7"}}},
		{Key: "availability/2", SHA256: "b2", Dataset: feed.Availability, FetchedAt: t0.Add(6 * time.Minute),
			Availability: []feed.AvailabilityRow{{ID: "000001", AvailableCar: "41"}, {ID: "000003", AvailableCar: "-9"}}},
	}
	if _, err := db.Apply(ctx, in...); err != nil {
		t.Fatal(err)
	}
	return db
}

func write(t *testing.T, db *sqlite.DB, f export.Format) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := export.Write(context.Background(), db, f, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestLatestJSONIsTheOriginalShape(t *testing.T) {
	db := testDB(t)
	got := write(t, db, export.JSON)
	// updated_at is the newest live snapshot's fetch time as the database
	// renders it (ISO 8601, +08:00; the database decides the precision).
	latest, err := db.LatestAvailability(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	at, err := time.Parse(time.RFC3339Nano, latest.UpdatedAt)
	if err != nil || !at.Equal(time.Date(2026, 11, 26, 18, 6, 0, 0, clock.Taipei)) || !strings.HasSuffix(latest.UpdatedAt, "+08:00") {
		t.Errorf("updated_at = %q (%v)", latest.UpdatedAt, err)
	}
	want := `{"updated_at":"` + latest.UpdatedAt + `","total_count":1,"data":[{"parking_id":"000001","available_car":41}]}` + "\n"
	if string(got) != want {
		t.Errorf("availability.json =\n%s\nwant\n%s", got, want)
	}
	// Field names, exactly the original's.
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(got, &doc); err != nil {
		t.Fatal(err)
	}
	if keys := slices.Sorted(maps.Keys(doc)); !reflect.DeepEqual(keys, []string{"data", "total_count", "updated_at"}) {
		t.Errorf("top-level keys = %v", keys)
	}
}

func TestLatestJSONBeforeAnyAvailability(t *testing.T) {
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "parking.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got, want := string(write(t, db, export.JSON)), `{"updated_at":null,"total_count":0,"data":[]}`+"\n"; got != want {
		t.Errorf("empty export = %s, want %s", got, want)
	}
	if got, want := string(write(t, db, export.GeoJSON)), `{"type":"FeatureCollection","features":[]}`+"\n"; got != want {
		t.Errorf("empty geojson = %s, want %s", got, want)
	}
}

func TestGeoJSON(t *testing.T) {
	got := write(t, testDB(t), export.GeoJSON)
	var fc struct {
		Type     string `json:"type"`
		Features []struct {
			Type     string `json:"type"`
			ID       string `json:"id"`
			Geometry struct {
				Type        string    `json:"type"`
				Coordinates []float64 `json:"coordinates"`
			} `json:"geometry"`
			Properties map[string]any `json:"properties"`
		} `json:"features"`
	}
	if err := json.Unmarshal(got, &fc); err != nil {
		t.Fatal(err)
	}
	if fc.Type != "FeatureCollection" || len(fc.Features) != 2 {
		t.Fatalf("want a FeatureCollection of the 2 lots with a position, got %s", got)
	}
	f := fc.Features[0]
	if f.Type != "Feature" || f.ID != "000001" || f.Geometry.Type != "Point" || len(f.Geometry.Coordinates) != 2 {
		t.Fatalf("feature = %+v", f)
	}
	// [lon, lat]: New Taipei is near 121.5°E, 25.0°N.
	lon, lat := f.Geometry.Coordinates[0], f.Geometry.Coordinates[1]
	if lon < 121 || lon > 122.1 || lat < 24.6 || lat > 25.4 {
		t.Errorf("coordinates = %v, want [lon, lat] in New Taipei", f.Geometry.Coordinates)
	}
	wantProps := map[string]any{
		"parking_id": "000001", "name": "府中停車場", "district": "板橋區", "address": "新北市板橋區府中路1號&2號", "type": "1",
		"total_car": 120.0, "total_motor": 30.0, "total_bike": 0.0,
		"available_car": 41.0, "observed_at": "2026-11-26T18:06:00+08:00",
	}
	if !reflect.DeepEqual(f.Properties, wantProps) {
		t.Errorf("properties = %v\nwant %v", f.Properties, wantProps)
	}
	// Unknown (-9) in the newest snapshot: null, with the time it was observed.
	p := fc.Features[1].Properties
	if p["parking_id"] != "000003" || p["available_car"] != nil || p["observed_at"] != "2026-11-26T18:06:00+08:00" {
		t.Errorf("unknown lot properties = %v", p)
	}
	if _, ok := p["available_car"]; !ok {
		t.Error("available_car must be present (null), not missing")
	}
	if !strings.Contains(string(got), "&") {
		t.Error("addresses must not be HTML-escaped")
	}
}

func TestCSV(t *testing.T) {
	got := write(t, testDB(t), export.CSV)
	if !bytes.HasPrefix(got, []byte("\ufeff")) {
		t.Error("CSV must start with a byte-order mark")
	}
	recs, err := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(got, []byte("\ufeff")))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 || !reflect.DeepEqual(recs[0], export.CSVHeader) {
		t.Fatalf("records = %v", recs)
	}
	r1, r2, r3 := recs[1], recs[2], recs[3]
	if r1[0] != "000001" || r1[8] == "" || r1[9] == "" || r1[11] != "41" || r1[12] != "2026-11-26T18:06:00+08:00" {
		t.Errorf("row 1 = %v", r1)
	}
	// No position: listed, with empty lon/lat and the reason; its last known value stands.
	if r2[0] != "000002" || r2[8] != "" || r2[9] != "" || r2[10] != "zero" || r2[11] != "7" || r2[12] != "2026-11-26T18:01:00+08:00" {
		t.Errorf("row 2 = %v", r2)
	}
	if r3[0] != "000003" || r3[11] != "" || r3[7] != "0" {
		t.Errorf("row 3 = %v", r3)
	}
}

func TestWriteFileIsAtomic(t *testing.T) {
	db := testDB(t)
	dir := filepath.Join(t.TempDir(), "out")
	path := filepath.Join(dir, "availability.json")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := export.WriteFile(context.Background(), db, export.JSON, path); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, write(t, db, export.JSON)) {
		t.Errorf("file = %s", got)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode = %v, %v", fi.Mode(), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	// A failed write leaves the old file alone and no temporary file.
	if err := export.WriteFile(context.Background(), db, export.JSON, filepath.Join(path, "not-a-dir", "x")); err == nil {
		t.Error("write under a file succeeded")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary files left behind by a failed write: %v", entries)
	}
	if got2, _ := os.ReadFile(path); !bytes.Equal(got2, got) {
		t.Error("failed write changed the file")
	}
}

func TestParseFormat(t *testing.T) {
	for _, s := range []string{"json", "geojson", "csv"} {
		if f, err := export.ParseFormat(s); err != nil || string(f) != s {
			t.Errorf("ParseFormat(%q) = %q, %v", s, f, err)
		}
	}
	if _, err := export.ParseFormat("xml"); err == nil {
		t.Error("ParseFormat(xml) succeeded")
	}
}
