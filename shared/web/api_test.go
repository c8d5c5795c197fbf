package web_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/internal/dbfixture"
	"github.com/parking-newtaipei/parking-newtaipei/internal/dbtest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/feedtest"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
	"github.com/parking-newtaipei/parking-newtaipei/shared/web"
)

// fixtureEnd is the fixture's last live snapshot, and the server's clock.
var fixtureEnd = time.Date(2026, 11, 26, 18, 0, 0, 0, time.FixedZone("Asia/Taipei", 8*3600))

type apiServer struct {
	url   string
	db    *sqlite.DB
	path  string
	extra int // live snapshots added by the tests
}

// file returns a path the expectations can be read from: the database
// itself in shared mode, a fresh backup in exclusive mode (which keeps
// every other process out, this test's queries included).
func (s *apiServer) file(t *testing.T) string {
	t.Helper()
	if s.db.Locking() == sqlite.LockingShared {
		return s.path
	}
	copy := filepath.Join(t.TempDir(), "copy.db")
	if err := s.db.Backup(context.Background(), copy); err != nil {
		t.Fatal(err)
	}
	return copy
}

func newAPIServer(t *testing.T, locking sqlite.Locking) *apiServer {
	t.Helper()
	path := filepath.Join(t.TempDir(), "parking.db")
	db := dbfixture.Build(t, path, fixtureEnd, sqlite.Options{Locking: locking})
	if db.Locking() != locking {
		t.Fatalf("fixture opened in %s, want %s", db.Locking(), locking)
	}
	srv := web.New(web.Config{Reads: db, Now: func() time.Time { return fixtureEnd.Add(time.Minute) },
		Stats: func(ctx context.Context) (st sqlite.Stats, err error) {
			err = db.Read(ctx, func(r *sqlite.DB) error { st, err = r.Stats(ctx); return err })
			return st, err
		}})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &apiServer{url: ts.URL, db: db, path: path}
}

func do(t *testing.T, method, url string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func getJSON(t *testing.T, url string, v any) *http.Response {
	t.Helper()
	resp, body := do(t, "GET", url)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %v: %.300s", url, err, body)
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("GET %s: no Access-Control-Allow-Origin: *", url)
	}
	return resp
}

func TestAPI(t *testing.T) {
	for _, mode := range []sqlite.Locking{sqlite.LockingExclusive, sqlite.LockingShared} {
		t.Run(string(mode), func(t *testing.T) {
			s := newAPIServer(t, mode)
			t.Run("lots", s.testLots)
			t.Run("lot", s.testLot)
			t.Run("history", s.testHistory)
			t.Run("latest", s.testLatest)
			t.Run("stats", s.testStats)
			t.Run("methods", s.testMethods)
		})
	}
}

type featureCollection struct {
	Type     string `json:"type"`
	Features []struct {
		Type     string `json:"type"`
		ID       string `json:"id"`
		Geometry struct {
			Type        string     `json:"type"`
			Coordinates [2]float64 `json:"coordinates"`
		} `json:"geometry"`
		Properties map[string]any `json:"properties"`
	} `json:"features"`
}

func (s *apiServer) testLots(t *testing.T) {
	file := s.file(t)
	var fc featureCollection
	resp := getJSON(t, s.url+"/api/v1/lots", &fc)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/geo+json") {
		t.Errorf("Content-Type %q", ct)
	}
	want := dbtest.Count(t, file, "parking_lots", "deleted_at IS NULL AND lon IS NOT NULL")
	if fc.Type != "FeatureCollection" || len(fc.Features) != want || want < 900 {
		t.Fatalf("%s with %d features, want %d", fc.Type, len(fc.Features), want)
	}
	withValue := 0
	for _, f := range fc.Features {
		p := f.Properties
		for _, k := range []string{"id", "name", "area", "address", "tel", "pay_ex", "service_time", "total_car", "available_car", "observed_at"} {
			if _, ok := p[k]; !ok {
				t.Fatalf("feature %s has no %q: %v", f.ID, k, p)
			}
		}
		if p["id"] != f.ID || f.ID == dbfixture.Deleted[0] {
			t.Fatalf("feature %s: id %v (deleted lots must not be listed)", f.ID, p["id"])
		}
		lon, lat := f.Geometry.Coordinates[0], f.Geometry.Coordinates[1]
		if lon < 121 || lon > 122.1 || lat < 24.6 || lat > 25.4 {
			t.Errorf("feature %s at %v: outside New Taipei", f.ID, f.Geometry.Coordinates)
		}
		if p["available_car"] != nil {
			withValue++
		}
	}
	if withValue == 0 || withValue == len(fc.Features) {
		t.Errorf("%d of %d features with a value; the fixture has both", withValue, len(fc.Features))
	}
	s.testETag(t, "/api/v1/lots")
}

// testETag: the same answer carries the same tag and a matching
// If-None-Match gets 304 with no body; new data changes the tag.
func (s *apiServer) testETag(t *testing.T, path string) {
	resp, _ := do(t, "GET", s.url+path)
	tag := resp.Header.Get("ETag")
	if !strings.HasPrefix(tag, `"`) {
		t.Fatalf("%s: ETag %q", path, tag)
	}
	resp, body := do(t, "GET", s.url+path, "If-None-Match", `"other", `+tag)
	if resp.StatusCode != http.StatusNotModified || body != "" {
		t.Fatalf("%s with If-None-Match: %s, %d bytes; want 304 and no body", path, resp.Status, len(body))
	}
	if resp, _ := do(t, "GET", s.url+path, "If-None-Match", `"other"`); resp.StatusCode != 200 {
		t.Fatalf("%s with a stale If-None-Match: %s", path, resp.Status)
	}
	// A new live snapshot changes every lot's observation time.
	s.extra++
	at := fixtureEnd.Add(time.Duration(s.extra) * 5 * time.Minute)
	if _, err := s.db.Apply(context.Background(), snapshot.Input{Key: fmt.Sprint("etag-", s.extra), Dataset: feed.Availability,
		FetchedAt: at, Availability: feedtest.SampleAvailability(uint64(1000 + s.extra))}); err != nil {
		t.Fatal(err)
	}
	resp, _ = do(t, "GET", s.url+path, "If-None-Match", tag)
	if resp.StatusCode != 200 || resp.Header.Get("ETag") == tag {
		t.Fatalf("%s after new data: %s, ETag %s (was %s)", path, resp.Status, resp.Header.Get("ETag"), tag)
	}
}

func (s *apiServer) testLot(t *testing.T) {
	file := s.file(t)
	var lot map[string]any
	getJSON(t, s.url+"/api/v1/lots/"+dbfixture.Deleted[0], &lot)
	if lot["id"] != dbfixture.Deleted[0] || lot["deleted_at"] == nil || lot["name"] == "" {
		t.Errorf("deleted lot: %v", lot)
	}
	noPos := dbtest.Query(t, file, "SELECT id, coord_note FROM parking_lots WHERE lon IS NULL LIMIT 1")
	if len(noPos) == 0 {
		t.Fatal("the fixture has no lot without a position")
	}
	lot = nil
	getJSON(t, s.url+"/api/v1/lots/"+noPos[0][0], &lot)
	if lot["lon"] != nil || lot["lat"] != nil || lot["coord_note"] != noPos[0][1] || lot["deleted_at"] != nil {
		t.Errorf("lot without a position: %v", lot)
	}
	active := dbtest.Query(t, file, `SELECT p.id, a.available_car, a.observed_at FROM parking_lots p
		JOIN availability_latest a ON a.parking_id = p.id WHERE a.available_car IS NOT NULL AND p.lon IS NOT NULL LIMIT 1`)
	lot = nil
	getJSON(t, s.url+"/api/v1/lots/"+active[0][0], &lot)
	if fmt.Sprint(lot["available_car"]) != active[0][1] || lot["observed_at"] != active[0][2] || lot["lon"] == nil {
		t.Errorf("lot %s: %v, want available_car %s at %s", active[0][0], lot, active[0][1], active[0][2])
	}
	resp, body := do(t, "GET", s.url+"/api/v1/lots/NOSUCH")
	if resp.StatusCode != 404 || !strings.Contains(body, "NOSUCH") || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Errorf("unknown lot: %s %s", resp.Status, body)
	}
}

func (s *apiServer) testHistory(t *testing.T) {
	file := s.file(t)
	id := dbtest.Query(t, file, "SELECT parking_id FROM availability GROUP BY parking_id ORDER BY count(*) DESC LIMIT 1")[0][0]
	from, to := "2026-11-26T06:00", "2026-11-26T12:00:00+08:00"
	var obs []struct {
		ObservedAt   string `json:"observed_at"`
		AvailableCar int64  `json:"available_car"`
	}
	getJSON(t, s.url+"/api/v1/lots/"+id+"/availability?from="+from+"&to="+strings.ReplaceAll(to, "+", "%2B"), &obs)
	want := dbtest.Query(t, file, `SELECT recorded_at, available_car FROM availability WHERE parking_id = ?
		AND recorded_at >= '2026-11-26T06:00:00+08:00' AND recorded_at < '2026-11-26T12:00:00+08:00' ORDER BY recorded_at`, id)
	if len(obs) != len(want) || len(want) < 20 {
		t.Fatalf("history of %s: %d observations, want %d", id, len(obs), len(want))
	}
	for i, o := range obs {
		if o.ObservedAt != want[i][0] || fmt.Sprint(o.AvailableCar) != want[i][1] {
			t.Fatalf("history row %d: %+v, want %v", i, o, want[i])
		}
	}
	// CSV: the same rows.
	resp, body := do(t, "GET", s.url+"/api/v1/lots/"+id+"/availability?format=csv&from="+from+"&to=2026-11-26T12:00")
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("CSV: %s %v: %.200s", resp.Status, err, body)
	}
	if len(recs) != len(want)+1 || strings.Join(recs[0], ",") != "parking_id,observed_at,available_car" ||
		recs[1][0] != id || recs[1][1] != want[0][0] || recs[1][2] != want[0][1] {
		t.Errorf("CSV: %d records, first %v, want %d rows from %v", len(recs), recs[:min(2, len(recs))], len(want), want[0])
	}
	// Without from and to: the 24 hours up to the server's clock.
	obs = nil
	getJSON(t, s.url+"/api/v1/lots/"+id+"/availability", &obs)
	day := dbtest.Count(t, file, "availability", "parking_id = ? AND recorded_at >= '2026-11-25T18:01:00+08:00'", id)
	if len(obs) != day {
		t.Errorf("default range: %d observations, want the last 24 hours' %d", len(obs), day)
	}
	for _, c := range []struct{ query, want string }{
		{"from=2026-10-01&to=2026-11-26", "31 days"},
		{"from=yesterday", "from: time \"yesterday\""},
		{"from=2026-11-26&to=2026-11-25", "before"},
		{"to=2026-13-01", "to: time"},
		{"format=xml", `format "xml"`},
	} {
		resp, body := do(t, "GET", s.url+"/api/v1/lots/"+id+"/availability?"+c.query)
		var e struct{ Error string }
		json.Unmarshal([]byte(body), &e)
		if resp.StatusCode != 400 || !strings.Contains(e.Error, c.want) {
			t.Errorf("?%s: %s %s, want 400 saying %q", c.query, resp.Status, body, c.want)
		}
	}
	if resp, body := do(t, "GET", s.url+"/api/v1/lots/NOSUCH/availability"); resp.StatusCode != 404 {
		t.Errorf("history of an unknown lot: %s %s", resp.Status, body)
	}
}

func (s *apiServer) testLatest(t *testing.T) {
	file := s.file(t)
	var doc struct {
		UpdatedAt  string `json:"updated_at"`
		TotalCount int    `json:"total_count"`
		Data       []struct {
			ParkingID    string `json:"parking_id"`
			AvailableCar int64  `json:"available_car"`
		} `json:"data"`
	}
	getJSON(t, s.url+"/api/v1/availability/latest", &doc)
	latest := dbtest.Query(t, file, `SELECT fetched_at, fetched_ms / 1000 FROM snapshots WHERE dataset = 'availability'
		AND outcome = 'applied' ORDER BY fetched_ms DESC LIMIT 1`)[0]
	want := dbtest.Count(t, file, "availability_latest", "available_car IS NOT NULL AND observed_unix = ?", latest[1])
	if doc.UpdatedAt != latest[0] || doc.TotalCount != want || len(doc.Data) != want || want == 0 {
		t.Errorf("latest: updated_at %s, total_count %d, %d rows; want %s and %d", doc.UpdatedAt, doc.TotalCount, len(doc.Data), latest[0], want)
	}
	s.testETag(t, "/api/v1/availability/latest")
}

func (s *apiServer) testStats(t *testing.T) {
	file := s.file(t)
	var st sqlite.Stats
	getJSON(t, s.url+"/api/v1/stats", &st)
	if st.Lots.Deleted != len(dbfixture.Deleted) || st.Lots.Active != dbtest.Count(t, file, "parking_lots", "deleted_at IS NULL") ||
		st.Observations != int64(dbtest.Count(t, file, "availability_obs", "")) {
		t.Errorf("stats: %+v", st.Lots)
	}
}

func (s *apiServer) testMethods(t *testing.T) {
	for _, path := range []string{"/api/v1/lots", "/api/v1/lots/010002", "/api/v1/lots/010002/availability",
		"/api/v1/availability/latest", "/api/v1/stats", "/api/v1/nothing", "/"} {
		for _, m := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS"} {
			resp, _ := do(t, m, s.url+path)
			if resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(resp.Header.Get("Allow"), "GET") {
				t.Errorf("%s %s: %s (Allow %q), want 405", m, path, resp.Status, resp.Header.Get("Allow"))
			}
			if strings.HasPrefix(path, "/api/") && resp.Header.Get("Access-Control-Allow-Origin") != "*" {
				t.Errorf("%s %s: no CORS header on the 405", m, path)
			}
		}
		if resp, _ := do(t, "HEAD", s.url+path); strings.HasSuffix(path, "nothing") != (resp.StatusCode == 404) {
			t.Errorf("HEAD %s: %s", path, resp.Status)
		}
	}
	// A CORS preflight is not "another method": it is how a page asks.
	resp, _ := do(t, "OPTIONS", s.url+"/api/v1/lots", "Origin", "https://example.org", "Access-Control-Request-Method", "GET")
	if resp.StatusCode != http.StatusNoContent || !strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "GET") {
		t.Errorf("preflight: %s %v", resp.Status, resp.Header)
	}
	resp, body := do(t, "GET", s.url+"/api/v1/nothing")
	if resp.StatusCode != 404 || !strings.Contains(body, "/api/v1/lots") {
		t.Errorf("unknown endpoint: %s %s", resp.Status, body)
	}
}
