package main

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/internal/dbtest"
)

// The original project's schema (parking-newtaipei, Python), as its code creates it.
const (
	originalParkingSchema = `
CREATE TABLE IF NOT EXISTS parking_lots (
    id TEXT PRIMARY KEY,
    area TEXT,
    name TEXT,
    type TEXT,
    summary TEXT,
    address TEXT,
    tel TEXT,
    pay_ex TEXT,
    service_time TEXT,
    tw97x REAL,
    tw97y REAL,
    total_car INTEGER,
    total_motor INTEGER,
    total_bike INTEGER,
    created_at TEXT,
    updated_at TEXT,
    deleted_at TEXT
);
CREATE TABLE IF NOT EXISTS sync_metadata (
    key TEXT PRIMARY KEY,
    value TEXT,
    updated_at TEXT
);`
	originalAvailabilitySchema = `
CREATE TABLE IF NOT EXISTS availability (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    parking_id TEXT,
    available_car INTEGER,
    recorded_at TEXT
);
CREATE INDEX IF NOT EXISTS idx_availability_parking_id ON availability(parking_id);
CREATE INDEX IF NOT EXISTS idx_availability_recorded_at ON availability(recorded_at);`
)

type legacyLot struct {
	id, area, name, typ, summary, address, tel, payEx, service string
	x, y                                                       any
	car, motor, bike                                           int64
	created, updated, deleted                                  any
}

type legacyObs struct {
	id string
	v  int64
	at string
}

func execSQL(t *testing.T, path, schema string, stmts func(db *sql.DB)) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(schema); err != nil {
		t.Fatal(err)
	}
	stmts(db)
}

// writeOriginal lays out the original's data directory: data/db/parking.db
// and data/availability/availability_YYYYMM.db.
func writeOriginal(t *testing.T, lots []legacyLot, months map[string][]legacyObs) (parkingDB, availDir string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "data")
	parkingDB = filepath.Join(root, "db", "parking.db")
	availDir = filepath.Join(root, "availability")
	for _, d := range []string{filepath.Dir(parkingDB), availDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	execSQL(t, parkingDB, originalParkingSchema, func(db *sql.DB) {
		for _, l := range lots {
			if _, err := db.Exec(`INSERT INTO parking_lots (id, area, name, type, summary, address, tel, pay_ex,
				service_time, tw97x, tw97y, total_car, total_motor, total_bike, created_at, updated_at, deleted_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				l.id, l.area, l.name, l.typ, l.summary, l.address, l.tel, l.payEx, l.service, l.x, l.y,
				l.car, l.motor, l.bike, l.created, l.updated, l.deleted); err != nil {
				t.Fatal(err)
			}
		}
		db.Exec(`INSERT INTO sync_metadata VALUES ('parking_lots_hash', 'abc', '2026-01-31T10:00:00+08:00')`)
	})
	for month, obs := range months {
		execSQL(t, filepath.Join(availDir, "availability_"+month+".db"), originalAvailabilitySchema, func(db *sql.DB) {
			for _, o := range obs {
				if _, err := db.Exec("INSERT INTO availability (parking_id, available_car, recorded_at) VALUES (?, ?, ?)", o.id, o.v, o.at); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	// A file of another kind in the directory is not read.
	os.WriteFile(filepath.Join(availDir, "availability.json"), []byte(`{"data":[]}`), 0o644)
	return parkingDB, availDir
}

func originalFixture() ([]legacyLot, map[string][]legacyObs) {
	lots := []legacyLot{
		{"010001", "板橋區", "府中立體停車場", "1", "地下3層", "新北市板橋區府中路1號", "(02)2960-0000", "每小時30元", "00:00~24:00",
			297265.5, 2767000.25, 320, 50, 0, "2025-03-01T08:00:00.123456+08:00", "2026-01-15T09:00:00+08:00", nil},
		{"010002", "板橋區", "已拆除停車場", "2", "", "新北市板橋區文化路2號", "", "", "",
			297100.0, 2766900.0, 40, 0, 0, "2025-03-01T08:00:00+08:00", "2025-06-01T08:00:00+08:00", "2025-06-02T08:00:00.5+08:00"},
		{"020003", "三重區", "座標不明停車場", "1", "平面", "新北市三重區", "", "", "",
			nil, nil, 0, 12, 3, "2025-04-01T12:00:00+08:00", "2025-04-01T12:00:00+08:00", nil},
	}
	jan := []legacyObs{
		{"010001", 100, "2026-01-31T23:55:00.654321+08:00"},
		{"020003", 0, "2026-01-31T23:55:00.654321+08:00"},
		{"010001", 99, "2026-01-31T23:50:00+08:00"},
		{"010001", 12, "2026-01-31T23:50:00+08:00"}, // a duplicate feed row stored twice: the larger is kept
		{"020003", -3, "2026-01-31T23:50:00+08:00"}, // a negative the original kept: not an observation
		{"999999", 7, "2026-01-31T23:50:00+08:00"},  // a lot unknown to parking_lots: kept
	}
	feb := []legacyObs{
		{"010001", 101, "2026-02-01T00:00:00+08:00"},
		{"020003", 5, "2026-02-01T00:00:00+08:00"},
	}
	return lots, map[string][]legacyObs{"202601": jan, "202602": feb}
}

func parseInstant(t *testing.T, s string) time.Time {
	t.Helper()
	for _, l := range []string{time.RFC3339Nano} {
		if v, err := time.Parse(l, s); err == nil {
			return v
		}
	}
	t.Fatalf("time %q", s)
	return time.Time{}
}

func runImport(t *testing.T, db, parkingDB, availDir string) (ImportSummary, string) {
	t.Helper()
	cmd := loaderCmd([]string{"PARKING_DB=" + db}, "import-legacy", "-parking-db", parkingDB, "-availability-dir", availDir)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("import-legacy: %v\n%s", err, stderr.String())
	}
	var s ImportSummary
	if err := json.Unmarshal([]byte(stdout.String()), &s); err != nil {
		t.Fatalf("summary %q: %v", stdout.String(), err)
	}
	return s, stderr.String()
}

// TestImportLegacy: the imported lots and observations are the original's,
// and a second import adds nothing.
func TestImportLegacy(t *testing.T) {
	lots, months := originalFixture()
	parkingDB, availDir := writeOriginal(t, lots, months)
	db := filepath.Join(t.TempDir(), "parking.db")
	s, _ := runImport(t, db, parkingDB, availDir)
	if s.Lots.Imported != 3 || len(s.Files) != 2 || s.Observations.Imported != 6 || s.Observations.Merged != 1 {
		t.Fatalf("summary %+v", s)
	}

	got, err := sql.Open("sqlite", "file:"+db+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	for _, l := range lots {
		var (
			area, name, typ, summary, address, tel, payEx, service, created, updated string
			x, y                                                                     sql.NullFloat64
			car, motor, bike                                                         int64
			deleted                                                                  sql.NullString
		)
		err := got.QueryRow(`SELECT area, name, type, summary, address, tel, pay_ex, service_time, tw97x, tw97y,
			total_car, total_motor, total_bike, created_at, updated_at, deleted_at FROM parking_lots WHERE id = ?`, l.id).
			Scan(&area, &name, &typ, &summary, &address, &tel, &payEx, &service, &x, &y, &car, &motor, &bike, &created, &updated, &deleted)
		if err != nil {
			t.Fatalf("lot %s: %v", l.id, err)
		}
		if fmt.Sprint(area, name, typ, summary, address, tel, payEx, service, car, motor, bike) !=
			fmt.Sprint(l.area, l.name, l.typ, l.summary, l.address, l.tel, l.payEx, l.service, l.car, l.motor, l.bike) {
			t.Errorf("lot %s attributes differ", l.id)
		}
		if (l.x == nil) == x.Valid || (x.Valid && x.Float64 != l.x.(float64)) || (y.Valid && y.Float64 != l.y.(float64)) {
			t.Errorf("lot %s position %v,%v, want %v,%v", l.id, x, y, l.x, l.y)
		}
		// Times are kept to the millisecond, the database's resolution for lots.
		for _, c := range []struct {
			name string
			got  string
			want any
		}{{"created_at", created, l.created}, {"updated_at", updated, l.updated}, {"deleted_at", deleted.String, l.deleted}} {
			if c.want == nil {
				if c.got != "" {
					t.Errorf("lot %s %s = %q, want NULL", l.id, c.name, c.got)
				}
				continue
			}
			want := parseInstant(t, c.want.(string)).Truncate(time.Millisecond)
			if g := parseInstant(t, c.got); !g.Equal(want) || !strings.HasSuffix(c.got, "+08:00") {
				t.Errorf("lot %s %s = %q, want %s", l.id, c.name, c.got, want)
			}
		}
	}

	// Observations: the original's rows with a value >= 0, one per (lot, second).
	want := map[string]int64{}
	for _, obs := range months {
		for _, o := range obs {
			if o.v < 0 {
				continue
			}
			k := o.id + "@" + parseInstant(t, o.at).Truncate(time.Second).UTC().Format(time.RFC3339)
			want[k] = max(want[k], o.v)
		}
	}
	rows, err := got.Query("SELECT parking_id, available_car, recorded_at FROM availability")
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]int64{}
	for rows.Next() {
		var id, at string
		var v int64
		if err := rows.Scan(&id, &v, &at); err != nil {
			t.Fatal(err)
		}
		have[id+"@"+parseInstant(t, at).UTC().Format(time.RFC3339)] = v
	}
	rows.Close()
	if fmt.Sprint(sorted(have)) != fmt.Sprint(sorted(want)) {
		t.Errorf("observations\n got %v\nwant %v", sorted(have), sorted(want))
	}
	var latest int64
	if err := got.QueryRow("SELECT available_car FROM availability_latest WHERE parking_id = '010001'").Scan(&latest); err != nil || latest != 101 {
		t.Errorf("latest of 010001: %d, %v", latest, err)
	}
	got.Close()

	before := dbtest.Dump(t, db)
	s, _ = runImport(t, db, parkingDB, availDir)
	if s.Lots.Imported != 0 || s.Lots.Skipped != 3 || s.Observations.Imported != 0 || s.Observations.Skipped != 6 {
		t.Fatalf("second import: %+v", s)
	}
	if dbtest.Dump(t, db) != before {
		t.Fatal("the second import changed the database")
	}
}

func sorted(m map[string]int64) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(out)
	return out
}
