package publish

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/internal/feedtest"
	"github.com/parking-newtaipei/parking-newtaipei/shared/clock"
	"github.com/parking-newtaipei/parking-newtaipei/shared/export"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store/filestore"
)

// now is the test clock's start: late November, so October is a closed month.
var now = time.Date(2026, 11, 26, 18, 0, 0, 0, clock.Taipei)

// october and november are fetch times in a closed and in the current month.
var (
	october  = time.Date(2026, 10, 30, 9, 0, 0, 0, clock.Taipei)
	november = time.Date(2026, 11, 26, 17, 0, 0, 0, clock.Taipei)
)

// put is one upload the destination received.
type put struct {
	key  string
	opts store.ObjectOptions
	body []byte
}

// recorder is a directory destination that records every upload (the
// headers a directory cannot keep included), and can fail or hold them.
type recorder struct {
	store.Destination
	mu    sync.Mutex
	puts  []put
	fail  error
	hold  map[string]chan struct{} // key -> closed when its uploads may proceed
	done  chan string              // each completed upload's key
	held  chan string              // each upload that reached its hold
	tries int
}

func (r *recorder) PutObject(ctx context.Context, key string, body io.ReadSeeker, opts store.ObjectOptions) error {
	r.mu.Lock()
	r.tries++
	fail, gate := r.fail, r.hold[key]
	r.mu.Unlock()
	if gate != nil {
		r.held <- key
		<-gate
	}
	if fail != nil {
		return fail
	}
	if err := r.Destination.PutObject(ctx, key, body, opts); err != nil {
		return err
	}
	body.Seek(0, io.SeekStart)
	b, _ := io.ReadAll(body)
	r.mu.Lock()
	r.puts = append(r.puts, put{key, opts, b})
	r.mu.Unlock()
	select {
	case r.done <- key:
	default:
	}
	return nil
}

func (r *recorder) setFail(err error) { r.mu.Lock(); r.fail = err; r.mu.Unlock() }

// count is how many times key was uploaded.
func (r *recorder) count(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, p := range r.puts {
		if p.key == key {
			n++
		}
	}
	return n
}

func (r *recorder) keys() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ks []string
	for _, p := range r.puts {
		ks = append(ks, p.key)
	}
	return ks
}

// last is the last upload of key.
func (r *recorder) last(t *testing.T, key string) put {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.puts) - 1; i >= 0; i-- {
		if r.puts[i].key == key {
			return r.puts[i]
		}
	}
	t.Fatalf("%s was never published", key)
	return put{}
}

// timers hands out timers that fire only when the test fires them, and
// reports each one asked for.
type timers struct {
	mu    sync.Mutex
	chans []chan time.Time
	asked chan time.Duration
}

func (ts *timers) After(d time.Duration) <-chan time.Time {
	c := make(chan time.Time, 1)
	ts.mu.Lock()
	ts.chans = append(ts.chans, c)
	ts.mu.Unlock()
	select {
	case ts.asked <- d:
	default:
	}
	return c
}

func (ts *timers) fire() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, c := range ts.chans {
		select {
		case c <- time.Time{}:
		default:
		}
	}
	ts.chans = nil
}

// recMetrics records what the publisher reports.
type recMetrics struct {
	mu                 sync.Mutex
	succeeded, failed  map[string]int
	oldest             time.Time
	started            bool
	pendingReports     int
	failedNotification chan string
}

func (m *recMetrics) PublishStarted([]string) { m.mu.Lock(); m.started = true; m.mu.Unlock() }
func (m *recMetrics) PublishSucceeded(o string, _ int64) {
	m.mu.Lock()
	m.succeeded[o]++
	m.mu.Unlock()
}

func (m *recMetrics) PublishFailed(o string) {
	m.mu.Lock()
	m.failed[o]++
	m.mu.Unlock()
	select {
	case m.failedNotification <- o:
	default:
	}
}

func (m *recMetrics) PublishPending(t time.Time) {
	m.mu.Lock()
	m.oldest = t
	m.pendingReports++
	m.mu.Unlock()
}

func (m *recMetrics) oldestPending() time.Time { m.mu.Lock(); defer m.mu.Unlock(); return m.oldest }

// env is a database, a destination directory and the fakes around a publisher.
type env struct {
	t       *testing.T
	db      *sqlite.DB
	dir     string
	dest    *recorder
	clock   *clock.Fake
	timers  *timers
	metrics *recMetrics
	backoff []int // the n of every Backoff call
	mu      sync.Mutex
}

func newEnv(t *testing.T) *env {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "parking.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &env{t: t, db: db, dir: filepath.Join(t.TempDir(), "public"), clock: clock.NewFake(now),
		timers:  &timers{asked: make(chan time.Duration, 100)},
		metrics: &recMetrics{succeeded: map[string]int{}, failed: map[string]int{}, failedNotification: make(chan string, 100)}}
	e.dest = e.newDest()
	return e
}

func (e *env) newDest() *recorder {
	d, err := filestore.Open(e.dir)
	if err != nil {
		e.t.Fatal(err)
	}
	return &recorder{Destination: d, hold: map[string]chan struct{}{}, done: make(chan string, 1000), held: make(chan string, 10)}
}

func (e *env) publisher(site fs.FS) *Publisher {
	e.t.Helper()
	p, err := New(Config{
		Destination: e.dest, DB: e.db, Site: site, Now: e.clock.Now, After: e.timers.After, TempDir: e.t.TempDir(),
		Metrics: e.metrics,
		Backoff: func(n int) time.Duration {
			e.mu.Lock()
			e.backoff = append(e.backoff, n)
			e.mu.Unlock()
			return time.Duration(n) * time.Second
		},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// publishOnce runs a publisher from start to stop: its start-up work and
// the final publication.
func (e *env) publishOnce(site fs.FS) {
	e.t.Helper()
	p := e.publisher(site)
	p.Start(context.Background())
	e.close(p)
}

// close stops a publisher with its final publication.
func (e *env) close(p *Publisher) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		e.t.Fatal(err)
	}
}

// apply applies a snapshot of d fetched at at, as the consume loop would.
func (e *env) apply(d feed.Dataset, at time.Time, seed uint64) []snapshot.Result {
	e.t.Helper()
	in := snapshot.Input{Dataset: d, FetchedAt: at}
	switch d {
	// A slice of the real feed's size keeps the tests quick under the race
	// detector, where SQLite is slow.
	case feed.Availability:
		in.Availability = feedtest.SampleAvailability(seed)[:200]
	case feed.Lots:
		in.Lots = feedtest.SampleLots()[:200]
	}
	in.SHA256 = fmt.Sprintf("%064x", uint64(at.Unix())*1000+seed)
	in.Key = snapshot.Key(d, at, in.SHA256)
	res, err := e.db.Apply(context.Background(), in)
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

// fill gives the database lots and availability in October and November.
func (e *env) fill() {
	e.apply(feed.Lots, october.Add(-time.Hour), 0)
	for i := range 3 {
		e.apply(feed.Availability, october.Add(time.Duration(i)*5*time.Minute), uint64(i))
		e.apply(feed.Availability, november.Add(time.Duration(i)*5*time.Minute), uint64(10+i))
	}
}

// wait returns once key was uploaded (again), or fails the test after a
// generous bound: the workers run in this process, so this is not a sleep.
func (e *env) wait(key string) {
	e.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case k := <-e.dest.done:
			if k == key {
				return
			}
		case <-deadline:
			e.t.Fatalf("%s not published within 30s; published: %v", key, e.dest.keys())
		}
	}
}

var site = fstest.MapFS{
	"index.html":        {Data: []byte("<!doctype html><title>map</title><script src=assets/app.js></script>")},
	"assets/app.js":     {Data: []byte("fetch('lots.geojson')")},
	"assets/style.css":  {Data: []byte("body{margin:0}")},
	"assets/marker.png": {Data: []byte("\x89PNG")},
	"vendor/LICENSE":    {Data: []byte("BSD 2-Clause License")},
}

// The contract of every object: Content-Type and Cache-Control by key.
func TestEverythingPublishedWithItsHeaders(t *testing.T) {
	e := newEnv(t)
	e.fill()
	e.publishOnce(site)

	want := map[string][2]string{
		"availability.json":         {TypeJSON, CacheLive},
		"lots.geojson":              {TypeGeoJSON, CacheLive},
		"parquet/lots/lots.parquet": {TypeParquet, CacheLots},
		MonthKey("2026-10"):         {TypeParquet, CacheClosed},
		MonthKey("2026-11"):         {TypeParquet, CacheOpenMonth},
		"parking.db":                {TypeSQLite, CacheDB},
		"db/parking-2026-11-26.db":  {TypeSQLite, CacheDaily},
		"index.html":                {"text/html; charset=utf-8", CacheSite},
		"assets/app.js":             {"application/javascript", CacheSite},
		"assets/style.css":          {"text/css", CacheSite},
		"assets/marker.png":         {"image/png", CacheSite},
		"vendor/LICENSE":            {"text/plain; charset=utf-8", CacheSite},
	}
	for key, h := range want {
		if n := e.dest.count(key); n != 1 {
			t.Errorf("%s published %d times, want once", key, n)
			continue
		}
		got := e.dest.last(t, key)
		if got.opts.ContentType != h[0] || got.opts.CacheControl != h[1] {
			t.Errorf("%s: Content-Type %q, Cache-Control %q; want %q, %q", key, got.opts.ContentType, got.opts.CacheControl, h[0], h[1])
		}
		if _, err := os.Stat(filepath.Join(e.dir, filepath.FromSlash(key))); err != nil {
			t.Errorf("%s is not in the destination: %v", key, err)
		}
	}
	if ks := e.dest.keys(); len(ks) != len(want) {
		t.Errorf("published %v, want exactly the %d objects of the contract", ks, len(want))
	}
	if !e.dest.last(t, "db/parking-2026-11-26.db").opts.IfAbsent {
		t.Error("the daily copy was not written IfAbsent: it is served as immutable")
	}
	// The page last, after the assets it references.
	if ks := e.dest.keys(); slices.Index(ks, "index.html") < slices.Index(ks, "assets/app.js") {
		t.Errorf("index.html published before its assets: %v", ks)
	}

	// The live files are the exports, byte for byte.
	for key, f := range map[string]export.Format{"availability.json": export.JSON, "lots.geojson": export.GeoJSON} {
		var buf bytes.Buffer
		if err := export.Write(context.Background(), e.db, f, &buf); err != nil {
			t.Fatal(err)
		}
		if got := e.dest.last(t, key).body; !bytes.Equal(got, buf.Bytes()) {
			t.Errorf("%s differs from the export", key)
		}
	}
	// The published database is a complete copy.
	copyDB, err := sql.Open("sqlite", "file:"+filepath.Join(e.dir, "parking.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer copyDB.Close()
	var n int
	if err := copyDB.QueryRow("SELECT count(*) FROM availability").Scan(&n); err != nil {
		t.Fatal(err)
	}
	want6 := countRows(t, e.db, october.Add(-24*time.Hour), november.Add(24*time.Hour))
	if int64(n) != want6 {
		t.Errorf("the published database holds %d observations, the loader's %d", n, want6)
	}
	if !e.metrics.started || e.metrics.succeeded[ObjectMonth] != 2 || e.metrics.succeeded[ObjectSite] != 5 || len(e.metrics.failed) != 0 {
		t.Errorf("metrics: started %v, succeeded %v, failed %v", e.metrics.started, e.metrics.succeeded, e.metrics.failed)
	}
	if !e.metrics.oldestPending().IsZero() {
		t.Errorf("everything is published, yet the oldest pending change is %v", e.metrics.oldestPending())
	}
}

func countRows(t *testing.T, db *sqlite.DB, from, to time.Time) int64 {
	t.Helper()
	s, err := db.ObservationStats(context.Background(), from, to)
	if err != nil {
		t.Fatal(err)
	}
	return s.Rows
}

// A restart publishes nothing that did not change; a late snapshot for a
// closed month rewrites that month only; the same rows give the same bytes.
func TestLateSnapshotRewritesItsMonthOnly(t *testing.T) {
	e := newEnv(t)
	e.fill()
	e.apply(feed.Availability, time.Date(2026, 9, 15, 12, 0, 0, 0, clock.Taipei), 7)
	e.publishOnce(site)
	first := map[string][]byte{}
	for _, m := range []string{"2026-09", "2026-10", "2026-11"} {
		first[m] = e.dest.last(t, MonthKey(m)).body
	}

	// Restart: the state in the database says everything is published.
	e.dest = e.newDest()
	p := e.publisher(site)
	p.Start(context.Background())
	// The bulk worker asks for its next timer once its start-up scan found
	// nothing stale: from here on only Notify can tell it of the late snapshot.
	<-e.timers.asked
	late := october.Add(24 * time.Hour) // fetched on Oct 31, applied now
	p.Notify(e.apply(feed.Availability, late, 99))
	e.close(p)
	for _, m := range []string{"2026-09", "2026-11"} {
		if n := e.dest.count(MonthKey(m)); n != 0 {
			t.Errorf("month %s published %d times after the restart; nothing changed in it", m, n)
		}
	}
	if n := e.dest.count(MonthKey("2026-10")); n != 1 {
		t.Fatalf("October published %d times after its late snapshot, want once", n)
	}
	for _, key := range []string{"index.html", "assets/app.js"} {
		if n := e.dest.count(key); n != 0 {
			t.Errorf("%s published again though the page did not change", key)
		}
	}
	oct := e.dest.last(t, MonthKey("2026-10"))
	if bytes.Equal(oct.body, first["2026-10"]) || oct.opts.CacheControl != CacheClosed {
		t.Errorf("October's new file: same bytes %v, Cache-Control %q", bytes.Equal(oct.body, first["2026-10"]), oct.opts.CacheControl)
	}

	// Another destination built from the same database gets the same bytes:
	// a month's file is a function of its observations.
	e.dir = filepath.Join(t.TempDir(), "elsewhere")
	e.dest = e.newDest()
	e.publishOnce(nil)
	if !bytes.Equal(e.dest.last(t, MonthKey("2026-09")).body, first["2026-09"]) ||
		!bytes.Equal(e.dest.last(t, MonthKey("2026-10")).body, oct.body) {
		t.Error("rebuilding a month gave different bytes")
	}
}

// Observations added without the publisher hearing of them (a crash before
// publication, a backfill, a legacy import) are found by the scan at start.
func TestRestartCatchesUp(t *testing.T) {
	e := newEnv(t)
	e.fill()
	e.publishOnce(nil)
	e.apply(feed.Availability, october.Add(time.Hour), 50) // never notified

	e.dest = e.newDest()
	p := e.publisher(nil)
	p.Start(context.Background())
	e.wait(MonthKey("2026-10"))
	e.close(p)
	if n := e.dest.count(MonthKey("2026-11")); n != 0 {
		t.Errorf("November published %d times, though it did not change", n)
	}
}

// A burst of applies while the worker is busy becomes one upload per
// object, and Notify returns at once however stuck the destination is.
func TestBurstCoalesces(t *testing.T) {
	e := newEnv(t)
	e.fill()
	gate := make(chan struct{})
	e.dest.hold["availability.json"] = gate
	p := e.publisher(nil)
	p.Start(context.Background())
	<-e.dest.held // the live worker is stuck in its first upload
	for i := range 20 {
		p.Notify(e.apply(feed.Availability, november.Add(time.Hour+time.Duration(i)*5*time.Minute), uint64(100+i)))
	}
	close(gate)
	e.wait("availability.json")
	e.wait("availability.json")
	e.close(p)
	if n := e.dest.count("availability.json"); n != 2 {
		t.Errorf("availability.json published %d times for 20 applies behind a stuck upload, want 2 (the stuck one, then one for the burst)", n)
	}
	if n := e.dest.count(MonthKey("2026-11")); n > 2 {
		t.Errorf("November published %d times for one burst", n)
	}
	var buf bytes.Buffer
	if err := export.Write(context.Background(), e.db, export.JSON, &buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(e.dest.last(t, "availability.json").body, buf.Bytes()) {
		t.Error("the last availability.json is not the latest")
	}
}

// A failing destination: failures are counted, retried after a growing
// backoff (new changes wait for it), the pending age shows, and everything
// is published once it is back.
func TestFailingDestinationRetriesWithBackoff(t *testing.T) {
	e := newEnv(t)
	e.fill()
	e.dest.setFail(errors.New("connection refused"))
	p := e.publisher(nil)
	p.Start(context.Background())
	// Both workers fail and ask for a backoff.
	backoffs := func(d time.Duration) {
		for range 2 {
			<-e.metrics.failedNotification
			if got := <-e.timers.asked; got != d {
				t.Errorf("a worker asked for a %s timer, want the %s backoff", got, d)
			}
		}
	}
	backoffs(time.Second)
	e.clock.Advance(10 * time.Minute)
	p.Notify(e.apply(feed.Availability, november.Add(time.Hour), 77))
	if got := e.metrics.oldestPending(); !got.Equal(now) {
		t.Errorf("oldest pending change = %v, want the start %v", got, now)
	}
	e.dest.mu.Lock()
	tries := e.dest.tries
	e.dest.mu.Unlock()
	// Still failing: each retry waits longer.
	e.timers.fire()
	backoffs(2 * time.Second)
	e.mu.Lock()
	seen := slices.Clone(e.backoff)
	e.mu.Unlock()
	if !slices.Contains(seen, 1) || !slices.Contains(seen, 2) {
		t.Errorf("backoff asked for %v failures, want 1 then 2 for each worker", seen)
	}
	e.dest.mu.Lock()
	if e.dest.tries <= tries {
		t.Error("no retry after the backoff")
	}
	e.dest.mu.Unlock()

	e.dest.setFail(nil)
	e.timers.fire()
	e.wait("availability.json")
	e.close(p)
	for _, key := range []string{"availability.json", "lots.geojson", KeyLotsParquet, MonthKey("2026-10"), MonthKey("2026-11"), KeyDB} {
		if e.dest.count(key) == 0 {
			t.Errorf("%s not published after the destination came back", key)
		}
	}
	if e.metrics.failed[ObjectAvailability] < 2 {
		t.Errorf("failures counted: %v", e.metrics.failed)
	}
	if !e.metrics.oldestPending().IsZero() {
		t.Errorf("after catching up the oldest pending change is %v", e.metrics.oldestPending())
	}
}

// The database is copied every DBEvery; the day's copy only once a day.
func TestDatabaseCopies(t *testing.T) {
	e := newEnv(t)
	e.fill()
	p := e.publisher(nil)
	p.Start(context.Background())
	e.wait(KeyDB)
	// The next copy is due in an hour: the bulk worker waits for its timer.
	e.clock.Advance(time.Hour)
	p.Notify(e.apply(feed.Availability, november.Add(2*time.Hour), 5)) // wakes the worker
	e.wait(KeyDB)
	e.clock.Advance(24 * time.Hour) // the next Taipei day
	e.timers.fire()
	e.wait(KeyDB)
	e.close(p) // and a last copy at the stop
	if n := e.dest.count(KeyDB); n != 4 {
		t.Errorf("parking.db published %d times, want 4 (start, an hour later, a day later, stop)", n)
	}
	for day, want := range map[string]int{"2026-11-26": 1, "2026-11-27": 1} {
		if n := e.dest.count(DailyKey(day)); n != want {
			t.Errorf("%s published %d times, want %d", DailyKey(day), n, want)
		}
	}
}

// Notify ignores what changed nothing: redeliveries, refusals, duplicates.
func TestNotifyIgnoresNonChanges(t *testing.T) {
	e := newEnv(t)
	p := e.publisher(nil)
	key := snapshot.Key(feed.Availability, november, strings.Repeat("ab", 32))
	p.Notify([]snapshot.Result{
		{Key: key, Outcome: snapshot.Applied, AlreadyApplied: true, Changed: 5},
		{Key: key, Outcome: snapshot.Refused},
		{Key: key, Outcome: snapshot.Duplicate},
		{Key: "not a key", Outcome: snapshot.Applied, Changed: 3},
	})
	if len(p.pending) != 0 {
		t.Errorf("pending after non-changes: %v", p.pending)
	}
	p.Notify([]snapshot.Result{{Key: key, Outcome: snapshot.Applied, Changed: 0}})
	if _, ok := p.pending[jobMonth+"2026-11"]; ok || len(p.pending) != 2 {
		t.Errorf("an apply that changed nothing: pending %v, want the live files only", p.pending)
	}
}

func TestSiteChecks(t *testing.T) {
	e := newEnv(t)
	for name, s := range map[string]fs.FS{
		"no index.html": fstest.MapFS{"assets/app.js": {Data: []byte("x")}},
		"unknown type":  fstest.MapFS{"index.html": {Data: []byte("x")}, "data.bin": {Data: []byte("x")}},
		"bad name":      fstest.MapFS{"index.html": {Data: []byte("x")}, "a b.css": {Data: []byte("x")}},
	} {
		if _, err := New(Config{Destination: e.dest, DB: e.db, Site: s}); err == nil {
			t.Errorf("%s: New accepted the page", name)
		}
	}
	// A changed page: only the changed file goes up again.
	e.publishOnce(site)
	changed := fstest.MapFS{}
	for k, v := range site {
		changed[k] = v
	}
	changed["assets/app.js"] = &fstest.MapFile{Data: []byte("fetch('availability.json')")}
	e.dest = e.newDest()
	e.publishOnce(changed)
	var siteKeys []string
	for _, k := range e.dest.keys() {
		if _, ok := changed[k]; ok {
			siteKeys = append(siteKeys, k)
		}
	}
	if !slices.Equal(siteKeys, []string{"assets/app.js"}) {
		t.Errorf("after changing one file the page uploads were %v", siteKeys)
	}
}

func TestCheckURL(t *testing.T) {
	for _, c := range []struct {
		publish, store string
		ok             bool
	}{
		{"s3://b/public", "s3://b/snapshots", true},
		{"file://./data/public", "file://./data/snapshots", true},
		{"s3://b/snapshots/public", "s3://b/snapshots", false},
		{"s3://b/snapshots", "s3://b/snapshots/", false},
		{"file://./data/snapshots/x", "file://data/snapshots", false},
		{"s3://b", "s3://b/snapshots", false},
		{"s3://other/snapshots", "s3://b/snapshots", true},
		{"s3://b/snapshots-public", "s3://b/snapshots", true},
		{"https://example.com/x", "s3://b/s", false},
		{"public", "s3://b/s", false},
		{"s3://b/p?x=1", "s3://b/s", false},
	} {
		if err := CheckURL(c.publish, c.store); (err == nil) != c.ok {
			t.Errorf("CheckURL(%q, %q) = %v, want ok %v", c.publish, c.store, err, c.ok)
		}
	}
}

// A month's file is a function of its observations, wherever the database
// stores them: lots whose ordinals are past 16 bits (their rows in
// availability_obs_overflow, migration 0002) give the same bytes as the
// same lots packed, sorted among the others by time then ID.
func TestMonthFileOfLotsPast16Bits(t *testing.T) {
	ctx := context.Background()
	ids := map[string]bool{}
	for _, r := range feedtest.SampleAvailability(0)[:200] {
		ids[r.ID] = true
	}
	build := func(high bool) ([]byte, sqlite.ObservationStats) {
		path := filepath.Join(t.TempDir(), "parking.db")
		db, err := sqlite.Open(ctx, path, sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if high {
			// Every other lot gets an ordinal past 16 bits, as after a
			// flood of ~65,000 IDs; the others keep packed ones.
			db.Close()
			raw, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			for i, id := range slices.Sorted(maps.Keys(ids)) {
				n := i + 1
				if i%2 == 1 {
					n = 70000 + i
				}
				if _, err := raw.ExecContext(ctx, "INSERT INTO lot_ids (n, id) VALUES (?, ?)", n, id); err != nil {
					t.Fatal(err)
				}
			}
			raw.Close()
			if db, err = sqlite.Open(ctx, path, sqlite.Options{}); err != nil {
				t.Fatal(err)
			}
		}
		e := &env{t: t, db: db}
		for i := range 3 {
			e.apply(feed.Availability, october.Add(time.Duration(i)*5*time.Minute), uint64(i))
		}
		var buf bytes.Buffer
		stats, err := WriteMonth(ctx, db, "2026-10", &buf)
		if err != nil {
			t.Fatal(err)
		}
		want, err := db.ObservationStats(ctx, time.Date(2026, 10, 1, 0, 0, 0, 0, clock.Taipei), time.Date(2026, 11, 1, 0, 0, 0, 0, clock.Taipei))
		if err != nil {
			t.Fatal(err)
		}
		if stats != want || stats.Rows == 0 {
			t.Errorf("high ordinals %v: the file holds %+v, the month %+v", high, stats, want)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		raw, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		var overflow int64
		if err := raw.QueryRowContext(ctx, "SELECT count(*) FROM availability_obs_overflow").Scan(&overflow); err != nil {
			t.Fatal(err)
		}
		if (overflow > 0) != high || overflow >= stats.Rows {
			t.Fatalf("high ordinals %v: %d of %d rows in the overflow table", high, overflow, stats.Rows)
		}
		return buf.Bytes(), stats
	}
	packed, packedStats := build(false)
	mixed, mixedStats := build(true)
	if packedStats != mixedStats || !bytes.Equal(packed, mixed) {
		t.Errorf("the same observations stored in both tables gave another file: %+v, %d bytes; packed %+v, %d bytes",
			mixedStats, len(mixed), packedStats, len(packed))
	}
}
