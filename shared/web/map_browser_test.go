package web_test

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/internal/browsertest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/dbfixture"
	"github.com/parking-newtaipei/parking-newtaipei/internal/dbtest"
	"github.com/parking-newtaipei/parking-newtaipei/shared/export"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
	"github.com/parking-newtaipei/parking-newtaipei/shared/web"
	"github.com/parking-newtaipei/parking-newtaipei/shared/web/livemap"
)

// tileServer serves one plain tile for every request and counts them: the
// map's background without the internet.
func tileServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	img := image.NewRGBA(image.Rect(0, 0, 256, 256))
	for y := range 256 {
		for x := range 256 {
			c := color.RGBA{0xf2, 0xef, 0xe9, 0xff}
			if x%64 == 0 || y%64 == 0 {
				c = color.RGBA{0xdd, 0xd8, 0xcf, 0xff}
			}
			img.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	png.Encode(&b, img)
	var n atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", "image/png")
		w.Write(b.Bytes())
	}))
	t.Cleanup(ts.Close)
	return ts, &n
}

// saveScreenshot writes a PNG under the test's artifact directory (kept with
// go test -artifacts), and into $PARKING_SCREENSHOTS when set (how
// docs/img/map.png is made).
func saveScreenshot(t *testing.T, b *browsertest.Browser, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	shot, err := b.Screenshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.DecodeConfig(bytes.NewReader(shot)); err != nil {
		t.Fatalf("screenshot %s is not a PNG: %v", name, err)
	}
	for _, dir := range []string{t.ArtifactDir(), os.Getenv("PARKING_SCREENSHOTS")} {
		if dir == "" {
			continue
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, shot, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s (%d bytes)", path, len(shot))
	}
}

// TestMapInBrowser drives the live map in headless Chromium against the
// loader's HTTP server on a fixture database: every active lot with a
// position is a marker, a click opens its details with the 24-hour chart,
// the search narrows the markers, English is one click away.
func TestMapInBrowser(t *testing.T) {
	began := time.Now()
	step := func(what string) { t.Logf("%6.1fs %s", time.Since(began).Seconds(), what) }
	b := browsertest.Start(t, 1280, 800)
	path := filepath.Join(t.TempDir(), "parking.db")
	db := dbfixture.Build(t, path, time.Now(), sqlite.Options{Locking: sqlite.LockingShared})
	step("fixture")
	tiles, tileRequests := tileServer(t)
	srv := web.New(web.Config{Addr: "127.0.0.1:0", Reads: db, Map: livemap.Config{Tiles: tiles.URL + "/{z}/{x}/{y}.png"}})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := b.Navigate(ctx, "http://"+srv.Addr()+"/"); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFor(ctx, `document.documentElement.dataset.state === "ready"`); err != nil {
		t.Fatal(err)
	}
	step("page ready")
	var mode, errText string
	b.Eval(ctx, `document.documentElement.dataset.mode || ""`, &mode)
	b.Eval(ctx, `document.documentElement.dataset.error || ""`, &errText)
	if mode != "api" || errText != "" {
		t.Fatalf("page mode %q, error %q; want the API", mode, errText)
	}

	// Markers: exactly the active lots with a position.
	var ids []string
	if err := b.Eval(ctx, `[...document.querySelectorAll(".leaflet-marker-pane [data-parking-id]")].map(e => e.dataset.parkingId)`, &ids); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, r := range dbtest.Query(t, path, "SELECT id FROM parking_lots WHERE deleted_at IS NULL AND lon IS NOT NULL") {
		want = append(want, r[0])
	}
	sort.Strings(ids)
	sort.Strings(want)
	if strings.Join(ids, ",") != strings.Join(want, ",") || len(want) < 900 {
		t.Fatalf("%d markers, want the %d active lots with a position", len(ids), len(want))
	}
	var levels map[string]int
	b.Eval(ctx, `[...document.querySelectorAll("[data-parking-id]")].reduce((m, e) => (m[e.dataset.level] = (m[e.dataset.level] || 0) + 1, m), {})`, &levels)
	unknown := dbtest.Count(t, path, "parking_lots p LEFT JOIN availability_latest a ON a.parking_id = p.id",
		"p.deleted_at IS NULL AND p.lon IS NOT NULL AND a.available_car IS NULL")
	if levels["unknown"] != unknown || levels["many"] == 0 || levels["full"]+levels["few"] == 0 {
		t.Errorf("marker colours %v; want %d unknown and some of each other level", levels, unknown)
	}
	if tileRequests.Load() == 0 {
		t.Error("no tile was requested from -map-tiles")
	}

	step("markers counted")
	// Search by district: the markers narrow to the lots that match.
	if err := b.Click(ctx, "#search"); err != nil {
		t.Fatal(err)
	}
	b.Type(ctx, "板橋區")
	district := dbtest.Count(t, path, "parking_lots", "deleted_at IS NULL AND lon IS NOT NULL AND instr(name || ' ' || address || ' ' || area || ' ' || id, '板橋區') > 0")
	if err := b.WaitFor(ctx, fmt.Sprintf(`document.querySelectorAll("[data-parking-id]").length === %d`, district)); err != nil {
		t.Fatalf("search 板橋區: want %d markers of %d: %v", district, len(want), err)
	}
	if district == 0 || district >= len(want) {
		t.Fatalf("the fixture has %d lots in 板橋區 of %d: the search proves nothing", district, len(want))
	}

	step("district search")
	// A lot with a value now and a day of history: search it by name, click it.
	lot := dbtest.Query(t, path, `SELECT p.id, p.name, a.available_car FROM parking_lots p JOIN availability_latest a ON a.parking_id = p.id
		WHERE p.deleted_at IS NULL AND p.lon IS NOT NULL AND a.available_car IS NOT NULL
		AND (SELECT count(*) FROM parking_lots q WHERE instr(q.name, p.name) > 0) = 1 ORDER BY p.id LIMIT 1`)[0]
	b.Eval(ctx, `(() => { const s = document.getElementById("search"); s.value = ""; s.focus(); })()`, nil)
	b.Type(ctx, lot[1])
	if err := b.WaitFor(ctx, `document.querySelectorAll("[data-parking-id]").length === 1`); err != nil {
		t.Fatalf("search %s: %v", lot[1], err)
	}
	// The page asks for the 24 hours before its own now, some time after
	// the click: the day it charts starts between these two bounds.
	clicked := time.Now()
	if err := b.Click(ctx, fmt.Sprintf(`[data-parking-id=%q]`, lot[0])); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFor(ctx, `!document.getElementById("details").hidden && document.querySelector("#chart svg.chart polyline")`); err != nil {
		t.Fatalf("clicking lot %s did not open its details with a chart: %v", lot[0], err)
	}
	var details struct {
		Name, Free, Fees, Hours, Address string
		Points                           int
	}
	b.Eval(ctx, `({Name: document.getElementById("d-name").textContent, Free: document.getElementById("d-free").textContent,
		Fees: document.getElementById("d-fees").textContent, Hours: document.getElementById("d-hours").textContent,
		Address: document.getElementById("d-address").textContent,
		Points: Number(document.querySelector("#chart svg").dataset.points)})`, &details)
	most := dbtest.Count(t, path, "availability", "parking_id = ? AND recorded_at >= ?", lot[0], sqlite.FormatTime(clicked.Add(-24*time.Hour-time.Second)))
	day := dbtest.Count(t, path, "availability", "parking_id = ? AND recorded_at > ?", lot[0], sqlite.FormatTime(time.Now().Add(-24*time.Hour)))
	if details.Name != lot[1] || !strings.HasPrefix(details.Free, lot[2]+" ") || details.Address == "" || details.Fees == "" || details.Hours == "" {
		t.Errorf("details of %s: %+v; want its name, %s free spaces, address, fees and hours", lot[0], details, lot[2])
	}
	if details.Points < day || details.Points > most || day < 10 {
		t.Errorf("chart of %s: %d points, the database holds %d to %d for the last 24 hours", lot[0], details.Points, day, most)
	}
	step("details")
	saveScreenshot(t, b, "map-details.png")

	// Clear the search: every marker is back. Then English.
	b.Eval(ctx, `(() => { const s = document.getElementById("search"); s.value = ""; s.dispatchEvent(new Event("input")); })()`, nil)
	if err := b.WaitFor(ctx, fmt.Sprintf(`document.querySelectorAll("[data-parking-id]").length === %d`, len(want))); err != nil {
		t.Fatal(err)
	}
	if err := b.Click(ctx, "#lang"); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFor(ctx, `document.querySelector("h1").textContent.startsWith("New Taipei") && document.documentElement.lang === "en"`); err != nil {
		t.Fatal(err)
	}
	b.Click(ctx, "#lang")
	b.Click(ctx, "#close")
	saveScreenshot(t, b, "map.png")

	// A phone: the page fits, the details become a bottom sheet.
	b.Viewport(390, 844, true)
	b.Eval(ctx, `window.dispatchEvent(new Event("resize"))`, nil)
	var overflow bool
	b.Eval(ctx, `document.documentElement.scrollWidth > window.innerWidth`, &overflow)
	if overflow {
		t.Error("the page is wider than a phone's screen")
	}
	saveScreenshot(t, b, "map-phone.png")
}

// TestMapStatic: the same page published as files (no API) reads
// lots.geojson and availability.json beside it, places every marker on a
// plain background (no tiles), and says the chart needs the live server.
func TestMapStatic(t *testing.T) {
	b := browsertest.Start(t, 1024, 700)
	path := filepath.Join(t.TempDir(), "parking.db")
	db := dbfixture.Build(t, path, time.Now(), sqlite.Options{Locking: sqlite.LockingShared})
	site := t.TempDir()
	files, err := livemap.Files(livemap.Config{Tiles: livemap.NoTiles})
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(site, name)), 0o755)
		if err := os.WriteFile(filepath.Join(site, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := export.WriteFile(ctx, db, export.GeoJSON, filepath.Join(site, "lots.geojson")); err != nil {
		t.Fatal(err)
	}
	if err := export.WriteFile(ctx, db, export.JSON, filepath.Join(site, "availability.json")); err != nil {
		t.Fatal(err)
	}
	// A plain file server under a prefix, as a bucket would serve it.
	ts := httptest.NewServer(http.StripPrefix("/parking/", http.FileServer(http.Dir(site))))
	defer ts.Close()
	if err := b.Navigate(ctx, ts.URL+"/parking/"); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFor(ctx, `document.documentElement.dataset.state === "ready"`); err != nil {
		t.Fatal(err)
	}
	var mode string
	var markers int
	b.Eval(ctx, `document.documentElement.dataset.mode`, &mode)
	b.Eval(ctx, `document.querySelectorAll("[data-parking-id]").length`, &markers)
	want := dbtest.Count(t, path, "parking_lots", "deleted_at IS NULL AND lon IS NOT NULL")
	if mode != "static" || markers != want {
		t.Fatalf("static site: mode %q, %d markers; want static and %d", mode, markers, want)
	}
	var tiles int
	b.Eval(ctx, `document.querySelectorAll(".leaflet-tile").length`, &tiles)
	if tiles != 0 {
		t.Errorf("%d tiles with -map-tiles none", tiles)
	}
	if err := b.Click(ctx, "[data-parking-id]"); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFor(ctx, `!document.getElementById("details").hidden && document.getElementById("chart").textContent.includes("即時伺服器")`); err != nil {
		t.Fatalf("static details: %v", err)
	}
	saveScreenshot(t, b, "map-static.png")
}
