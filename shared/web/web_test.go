package web_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/clock"
	"github.com/parking-newtaipei/parking-newtaipei/shared/extract"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/load/consume"
	"github.com/parking-newtaipei/parking-newtaipei/shared/ops/metrics"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue/sqlitequeue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store/filestore"
	"github.com/parking-newtaipei/parking-newtaipei/shared/web"
)

type pipeline struct {
	db    *sqlite.DB
	store *filestore.Store
	queue *sqlitequeue.Queue
	job   *extract.Job
}

func newPipeline(t *testing.T) *pipeline {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "parking.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st, err := filestore.Open(filepath.Join(dir, "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	q, err := sqlitequeue.Open(ctx, filepath.Join(dir, "queue.db"), sqlitequeue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return &pipeline{db: db, store: st, queue: q, job: &extract.Job{Store: st, Queue: q}}
}

// publish stores and enqueues a snapshot with one JSON page, as the extractor does.
func (p *pipeline) publish(t *testing.T, d feed.Dataset, at time.Time, body string) {
	t.Helper()
	snap := &snapshot.Snapshot{Format: snapshot.FormatName, Version: snapshot.Version, Dataset: d, Source: feed.JSON,
		FetchedAt: at, Responses: []snapshot.Response{{Method: "GET", URL: "https://data.ntpc.gov.tw/test", Status: 200,
			RequestedAt: at, ReceivedAt: at, Body: []byte(body)}}}
	res, data, err := extract.Prepare(snap, strings.Count(body, "{"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.job.Publish(context.Background(), &res, data, snap); err != nil {
		t.Fatal(err)
	}
}

// drain runs the real consume loop until the queue is empty.
func (p *pipeline) drain(t *testing.T, reg *metrics.Registry) {
	t.Helper()
	err := consume.Run(context.Background(), consume.Config{
		Queue: p.queue, Store: p.store, DB: p.db, Drain: true,
		// Drain ends at the first empty receive; keep its long poll short.
		Wait: 100 * time.Millisecond, OnEvent: reg.Observe,
	})
	if err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestEndpointsBeforeAndAfterTheFirstApply(t *testing.T) {
	p := newPipeline(t)
	reg := metrics.New(nil)
	srv := web.New(web.Config{Addr: "127.0.0.1:0", Metrics: reg, LiveWithin: time.Hour, Stats: p.db.Stats})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	addr := srv.Addr()

	// Not ready until the loader says the database is open and checked.
	if code, _ := get(t, addr, "/readyz"); code != 503 {
		t.Errorf("/readyz before SetReady = %d", code)
	}
	srv.SetReady(true)
	if code, body := get(t, addr, "/readyz"); code != 200 || body != "ok\n" {
		t.Errorf("/readyz = %d %q", code, body)
	}
	if code, _ := get(t, addr, "/healthz"); code != 200 {
		t.Errorf("/healthz before any poll = %d (a loop that just started is alive)", code)
	}
	// A failing database makes the loader not ready, not dead: the loop is
	// alive and retrying, and a restart would not help.
	srv.SetFailing("database failing: database or disk is full")
	if code, body := get(t, addr, "/readyz"); code != 503 || body != "not ready: database failing: database or disk is full\n" {
		t.Errorf("/readyz while the database fails = %d %q", code, body)
	}
	if code, _ := get(t, addr, "/healthz"); code != 200 {
		t.Errorf("/healthz while the database fails = %d, want 200", code)
	}
	srv.SetFailing("")
	if code, _ := get(t, addr, "/readyz"); code != 200 {
		t.Errorf("/readyz once the database works again = %d", code)
	}
	code, body := get(t, addr, "/metrics")
	if code != 200 || strings.Contains(body, "parking_snapshots_total{") ||
		!strings.Contains(body, `parking_messages_total{event="received"} 0`) ||
		strings.Contains(body, "parking_seconds_since_last_apply{") {
		t.Errorf("/metrics before the first apply = %d\n%s", code, body)
	}

	// A lots snapshot and two availability snapshots, through the real consume loop.
	t0 := time.Date(2026, 11, 26, 18, 0, 0, 0, time.UTC)
	lots := `[{"ID":"000001","AREA":"板橋區","NAME":"府中停車場","TYPE":"1","SUMMARY":"","ADDRESS":"府中路","TEL":"","PAYEX":"","SERVICETIME":"","TW97X":"297079","TW97Y":"2770183","TOTALCAR":"120","TOTALMOTOR":"0","TOTALBIKE":"0"}]`
	p.publish(t, feed.Lots, t0, lots)
	p.publish(t, feed.Availability, t0.Add(time.Minute), `[{"ID":"000001","AVAILABLECAR":"40"},{"ID":"999999","AVAILABLECAR":"-9"}]`)
	p.publish(t, feed.Availability, t0.Add(6*time.Minute), `[{"ID":"000001","AVAILABLECAR":"41"}]`)
	p.drain(t, reg)

	code, body = get(t, addr, "/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{
		`parking_snapshots_total{dataset="availability",outcome="applied"} 2`,
		`parking_snapshots_total{dataset="lots",outcome="applied"} 1`,
		`parking_messages_total{event="received"} 3`,
		`parking_messages_total{event="deleted"} 3`,
		`parking_messages_total{event="dead_lettered"} 0`,
		`parking_apply_seconds_count 3`,
		`parking_store_read_seconds_count 3`,
		`parking_seconds_since_last_apply{dataset="availability"} `,
		`parking_seconds_since_last_apply{dataset="lots"} `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	if code, _ := get(t, addr, "/healthz"); code != 200 {
		t.Errorf("/healthz after applies = %d", code)
	}

	// /stats is the database's Stats, and FetchStats reads it back.
	st, err := web.FetchStats(context.Background(), addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if st.Lots.Active != 1 || len(st.Datasets) != 2 || st.Datasets[1].Quality == nil ||
		st.Datasets[1].Quality.Availability == nil || st.Datasets[1].Applied != 2 {
		t.Errorf("stats = %+v", st)
	}
	code, body = get(t, addr, "/stats")
	var raw map[string]any
	if code != 200 || json.Unmarshal([]byte(body), &raw) != nil || raw["lots"] == nil {
		t.Errorf("/stats = %d %s", code, body)
	}

	// Stopping: not ready any more, and the port is closed.
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get("http://" + addr + "/readyz"); err == nil {
		t.Error("server still answers after Shutdown")
	}
}

func TestHealthzFailsWhenTheLoopIsSilent(t *testing.T) {
	c := clock.NewFake(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))
	reg := metrics.New(c.Now)
	window := web.LiveWindow(20 * time.Second)
	if window != 70*time.Second {
		t.Errorf("LiveWindow(20s) = %s", window)
	}
	srv := web.New(web.Config{Addr: "127.0.0.1:0", Metrics: reg, LiveWithin: window, Now: c.Now})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	addr := srv.Addr()

	c.Advance(window)
	if code, _ := get(t, addr, "/healthz"); code != 200 {
		t.Errorf("at the limit: %d", code)
	}
	c.Advance(time.Second)
	code, body := get(t, addr, "/healthz")
	if code != 503 || !strings.Contains(body, "silent") {
		t.Errorf("silent loop: %d %q", code, body)
	}
	if err := web.Check(context.Background(), addr, time.Second); err == nil {
		t.Error("Check passed a silent loop")
	}
	reg.Observe(consume.Event{Kind: consume.Polled})
	if code, _ := get(t, addr, "/healthz"); code != 200 {
		t.Errorf("after a poll: %d", code)
	}
	if err := web.Check(context.Background(), addr, time.Second); err != nil {
		t.Errorf("Check = %v", err)
	}
	// No Stats function: /stats is not served.
	if code, _ := get(t, addr, "/stats"); code != 404 {
		t.Errorf("/stats without a database = %d", code)
	}
}

// Maintenance that stops the loop from polling (a long backup on EFS) keeps
// /healthz answering 200 while it runs and for a full window after it ends;
// the loop must then report again, as before.
func TestHealthzStaysOKWhileMaintenanceRuns(t *testing.T) {
	c := clock.NewFake(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))
	reg := metrics.New(c.Now)
	window := web.LiveWindow(20 * time.Second)
	var (
		mu    sync.Mutex
		what  string
		ended time.Time
	)
	busy := func() (string, time.Time) { mu.Lock(); defer mu.Unlock(); return what, ended }
	set := func(w string) {
		mu.Lock()
		defer mu.Unlock()
		if what != "" && w == "" {
			ended = c.Now()
		}
		what = w
	}
	srv := web.New(web.Config{Addr: "127.0.0.1:0", Metrics: reg, LiveWithin: window, Now: c.Now, Busy: busy})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	addr := srv.Addr()

	set("backup")
	c.Advance(10 * window)
	code, body := get(t, addr, "/healthz")
	if code != 200 || !strings.Contains(body, "backup") {
		t.Errorf("during a backup ten windows long: %d %q, want 200 naming the backup", code, body)
	}
	if err := web.Check(context.Background(), addr, time.Second); err != nil {
		t.Errorf("the container health check fails during maintenance: %v", err)
	}
	set("")
	c.Advance(window)
	if code, _ := get(t, addr, "/healthz"); code != 200 {
		t.Errorf("one window after the backup ended: %d, want 200", code)
	}
	c.Advance(time.Second)
	if code, _ := get(t, addr, "/healthz"); code != 503 {
		t.Errorf("a silent loop after the backup: %d, want 503", code)
	}
}

func TestCheck(t *testing.T) {
	ctx := context.Background()
	status := http.StatusOK
	var mu sync.Mutex
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
	}))
	addr := strings.TrimPrefix(ts.URL, "http://")
	if err := web.Check(ctx, addr, time.Second); err != nil {
		t.Errorf("200: %v", err)
	}
	mu.Lock()
	status = http.StatusInternalServerError
	mu.Unlock()
	if err := web.Check(ctx, addr, time.Second); err == nil || !strings.Contains(err.Error(), "500") {
		t.Errorf("500: %v", err)
	}
	ts.Close()
	if err := web.Check(ctx, addr, time.Second); err == nil {
		t.Error("unreachable: no error")
	}

	// A server that never answers: the timeout decides.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	start := time.Now()
	if err := web.Check(ctx, ln.Addr().String(), 200*time.Millisecond); err == nil {
		t.Error("silent server: no error")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Check took %s despite its timeout", d)
	}
}

func TestStartFailsOnATakenAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv := web.New(web.Config{Addr: ln.Addr().String()})
	if err := srv.Start(); err == nil {
		srv.Shutdown(context.Background())
		t.Fatal("Start on a taken address succeeded")
	}
}
