package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parking-newtaipei/parking-newtaipei/internal/dbtest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/feedtest"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
)

// saveExchange writes an exchange the way the original did:
// data/responses/YYYYMM/{YYYYMMDD_HHMMSS}_{md5(endpoint)[:8]}.json.gz, with
// the body parsed JSON when it was JSON and text otherwise.
func saveExchange(t *testing.T, dir, stamp, endpoint, url string, status int, body any) {
	t.Helper()
	ex := map[string]any{
		"timestamp": stamp[:4] + "-" + stamp[4:6] + "-" + stamp[6:8] + "T" + stamp[9:11] + ":" + stamp[11:13] + ":" + stamp[13:15] + ".250000",
		"request":   map[string]any{"method": "GET", "url": url, "endpoint": endpoint, "headers": map[string]string{"User-Agent": "python-requests/2.32"}, "body": nil},
		"response":  map[string]any{"status_code": status, "headers": map[string]string{"Content-Type": "text/csv"}, "body": body},
	}
	// Python's json.dump escapes non-ASCII by default; Go's encoder does not,
	// and either must import.
	data, err := json.Marshal(ex)
	if err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum([]byte(endpoint))
	path := filepath.Join(dir, stamp[:6], stamp+"_"+hex.EncodeToString(sum[:])[:8]+".json.gz")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(data)
	zw.Close()
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestImportResponses(t *testing.T) {
	dir := t.TempDir()
	responses := filepath.Join(dir, "responses")
	base := "https://data.ntpc.gov.tw/api/datasets/"
	lots := feedtest.SampleLots()
	avail := feedtest.SampleAvailability(7)
	var lotsJSON any
	if err := json.Unmarshal(feedtest.JSONBody(lots[:900]), &lotsJSON); err != nil {
		t.Fatal(err)
	}
	saveExchange(t, responses, "20260131_235500", "/api/datasets/lots", base+feed.Lots.UUID()+"/json?page=0&size=1000", 200, lotsJSON)
	saveExchange(t, responses, "20260131_235501", "/api/datasets/availability", base+feed.Availability.UUID()+"/csv/file", 200, string(feedtest.AvailabilityCSV(avail)))
	saveExchange(t, responses, "20260916_120000", "/api/datasets/availability", base+feed.Availability.UUID()+"/csv/file", 200, feedtest.WAFPage)
	saveExchange(t, responses, "20260917_120000", "/api/datasets/availability", base+feed.Availability.UUID()+"/csv/file", 500, "Internal Server Error")
	saveExchange(t, responses, "20260918_120000", "/ping", "https://hc-ping.com/abc", 200, "OK")

	in := &install{dir: dir, storeURL: "file://" + filepath.Join(dir, "snapshots"),
		queueURL: "sqlite://" + filepath.Join(dir, "queue.db"), db: filepath.Join(dir, "parking.db")}
	in.env = map[string]string{"PARKING_STORE": in.storeURL, "PARKING_QUEUE": in.queueURL}
	imp := func() ImportResponsesSummary {
		var stdout, stderr bytes.Buffer
		code := program().Run(context.Background(), []string{"import-responses", "-enqueue", responses}, &stdout, &stderr, func(k string) string { return in.env[k] })
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, stderr.String())
		}
		var s ImportResponsesSummary
		if err := json.Unmarshal(stdout.Bytes(), &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := imp()
	if s.Files != 5 || s.Stored != 2 || s.Enqueued != 2 || len(s.Skipped) != 3 {
		t.Fatalf("%+v", s)
	}
	reasons := ""
	for _, sk := range s.Skipped {
		reasons += sk.Reason + "\n"
	}
	for _, want := range []string{"rejected", "status 500", "not one of the two datasets"} {
		if !strings.Contains(reasons, want) {
			t.Errorf("no skip reason %q in:\n%s", want, reasons)
		}
	}
	if r := in.drain(t); len(r) != 2 {
		t.Fatalf("%d applied", len(r))
	}

	// The loader holds what the original saw: the valid values, at the saved
	// time read as Taipei time.
	db, err := sql.Open("sqlite", "file:"+in.db+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	// Within one fetch the last row of an ID wins, as for any snapshot.
	for _, r := range avail {
		want[r.ID] = strings.TrimSpace(r.AvailableCar)
	}
	for id, v := range want {
		if strings.HasPrefix(v, "-") {
			delete(want, id)
		}
	}
	rows, err := db.Query("SELECT parking_id, available_car, recorded_at FROM availability")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var id, v, at string
		rows.Scan(&id, &v, &at)
		if at != "2026-01-31T23:55:01+08:00" || want[id] != v {
			t.Errorf("observation %s=%s at %s, want %s at 2026-01-31T23:55:01+08:00", id, v, at, want[id])
		}
		n++
	}
	rows.Close()
	if n != len(want) {
		t.Errorf("%d observations, want %d", n, len(want))
	}
	var lotCount int
	db.QueryRow("SELECT count(*) FROM parking_lots WHERE deleted_at IS NULL").Scan(&lotCount)
	db.Close()
	if lotCount == 0 {
		t.Error("no lots imported")
	}

	// A second import stores nothing new and the loader acknowledges it all.
	before := dbtest.Dump(t, in.db)
	if s := imp(); s.Stored != 2 {
		t.Fatalf("second import %+v", s)
	}
	for _, r := range in.drain(t) {
		if !r.AlreadyApplied {
			t.Errorf("%s applied again", r.Key)
		}
	}
	if dbtest.Dump(t, in.db) != before {
		t.Fatal("the second import changed the database")
	}
}
