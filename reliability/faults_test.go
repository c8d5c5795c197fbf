package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parking-newtaipei/parking-newtaipei/internal/dbtest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/feedtest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/tmpfs"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store/filestore"
)

func newProxy(t testing.TB, upstream string) *Proxy {
	t.Helper()
	p, err := NewProxy(upstream)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// storedSnapshots lists and decodes every snapshot in a directory store.
func storedSnapshots(t testing.TB, st *filestore.Store) []*snapshot.Snapshot {
	t.Helper()
	var out []*snapshot.Snapshot
	err := st.List(context.Background(), "", "", func(o store.Object) error {
		data, _, err := st.Get(context.Background(), st.Locate(o.Key), snapshot.MaxObjectBytes)
		if err != nil {
			return err
		}
		s, err := snapshot.Decode(data)
		if err != nil {
			return err
		}
		out = append(out, s)
		return nil
	})
	if err != nil {
		t.Fatalf("list the store: %v", err)
	}
	return out
}

// TestFaultsFeedExtractor: 5xx answers, resets, slow answers and truncated
// bodies between the extractor and the feed. The extractor retries boundedly
// and stores exactly the feed's rows, or exits 1 saying why; nothing partial
// is ever stored or enqueued, and the loader applies what was stored once.
func TestFaultsFeedExtractor(t *testing.T) {
	fd := feedtest.NewServer(t)
	px := newProxy(t, fd.URL)
	w := newWorld(t)
	env := baseEnv("PARKING_STORE=file://"+w.store.Dir(), "PARKING_QUEUE=sqlite://"+w.queuePath(),
		"PARKING_FEED_BASE_URL="+px.URL)
	lotsPath := func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, feedtest.JSONPath(feed.Lots)) }
	availPath := func(r *http.Request) bool {
		return strings.HasPrefix(r.URL.Path, feedtest.JSONPath(feed.Availability))
	}

	// One fault of each kind, then success: exit 0 and the whole feed stored.
	var exits []int
	extractor := func(dataset string) (int, string) {
		code, log := run(t, env, "extractor", "fetch", "-dataset", dataset)
		exits = append(exits, code)
		return code, log
	}
	px.SlowDelay = 1500 * 1e6
	px.Inject(Status5xx, 1, lotsPath)
	px.Inject(Reset, 1, lotsPath)
	px.Inject(Truncate, 1, lotsPath)
	px.Inject(Slow, 1, lotsPath)
	code, log := extractor("lots")
	if code != 0 {
		t.Fatalf("extractor exited %d after transient faults; log:\n%s", code, log)
	}
	// Go's transport itself retries a GET whose reused connection was reset
	// before any answer, so the reset may not reach the extractor's log; the
	// 503 and the truncated body must.
	if !strings.Contains(log, `"msg":"fetch retry"`) || !strings.Contains(log, "status 503") || !strings.Contains(log, "reading body after") {
		t.Errorf("the log does not say which faults were retried:\n%s", log)
	}
	// Availability: a truncated page then a 503.
	px.Inject(Truncate, 1, availPath)
	px.Inject(Status5xx, 1, availPath)
	if code, log := extractor("availability"); code != 0 {
		t.Fatalf("extractor exited %d; log:\n%s", code, log)
	}

	// A feed that keeps failing: bounded retries (1 + 4), then exit 1 with the status and URL.
	before := len(px.Requests())
	px.Inject(Status5xx, 100, availPath)
	code, log = extractor("availability")
	if code != 1 {
		t.Fatalf("extractor exited %d against a failing feed, want 1; log:\n%s", code, log)
	}
	tries := len(px.Requests()) - before
	if tries != 5 {
		t.Errorf("%d requests against a failing feed; want 5 (the first and 4 retries)", tries)
	}
	if !strings.Contains(log, "fetch failed") || !strings.Contains(log, "503") || !strings.Contains(log, feedtest.JSONPath(feed.Availability)) {
		t.Errorf("the failure log does not name the status and the URL:\n%s", log)
	}
	// Connection resets all the way: exit 1 as well.
	px.Clear()
	px.Inject(Reset, 100, availPath)
	if code, log := extractor("availability"); code != 1 || !strings.Contains(log, "fetch failed") {
		t.Fatalf("extractor exited %d against resets, want 1 with a clear log:\n%s", code, log)
	}
	injected := px.Injected()
	px.Clear()

	// Exactly two snapshots stored, each whole.
	snaps := storedSnapshots(t, w.store)
	if len(snaps) != 2 {
		t.Fatalf("%d snapshots stored, want 2 (failed runs store nothing)", len(snaps))
	}
	partial := 0
	for _, s := range snaps {
		switch s.Dataset {
		case feed.Lots:
			rows, err := s.Lots()
			if err != nil || len(rows) != feedtest.SampleLotsRows {
				partial++
				t.Errorf("stored lots snapshot: %d rows (%v), want %d", len(rows), err, feedtest.SampleLotsRows)
			}
		case feed.Availability:
			rows, err := s.Availability()
			if err != nil || len(rows) != feedtest.SampleAvailabilityRows {
				partial++
				t.Errorf("stored availability snapshot: %d rows (%v), want %d", len(rows), err, feedtest.SampleAvailabilityRows)
			}
		}
	}
	v, _, _ := w.queue.Len(context.Background())
	if v != 2 {
		t.Fatalf("%d messages enqueued, want 2", v)
	}
	code, log = run(t, loaderEnv(w.dir, "file://"+w.store.Dir(), "sqlite://"+w.queuePath(), "PARKING_POLL_WAIT=50ms"), "loader", "serve", "-drain")
	if code != 0 {
		t.Fatalf("loader exited %d; log:\n%s", code, log)
	}
	applied := dbtest.Count(t, w.db, "snapshots", "outcome = 'applied'")
	if applied != 2 {
		t.Errorf("%d snapshots applied, want 2", applied)
	}
	if n := dbtest.Count(t, w.db, "parking_lots", "deleted_at IS NULL"); n != feedtest.SampleLotIDs {
		t.Errorf("%d active lots, want %d", n, feedtest.SampleLotIDs)
	}
	report(t, "feed faults: injected=%v requests=%d extractor_runs=%d exits=%v requests_against_a_failing_feed=%d snapshots_stored=%d partial_stored=%d applied=%d",
		injected, len(px.Requests()), len(exits), exits, tries, len(snaps), partial, applied)
}

// TestFaultsDamagedDatabase: a file that is not a database, or a database
// whose pages are damaged: the loader refuses to start, names the file and
// the failed check, and leaves the file byte-identical.
func TestFaultsDamagedDatabase(t *testing.T) {
	forEachLocking(t, testFaultsDamagedDatabase)
}

func testFaultsDamagedDatabase(t *testing.T, mode sqlite.Locking) {
	w := newWorld(t)
	w.locking = mode
	send(t, w.queue, publish(t, w.store, lotsSnapshot(t0, baseLots(t)), 20))
	w.drain(nil)
	good, err := os.ReadFile(w.db)
	if err != nil {
		t.Fatal(err)
	}
	damagedPages := append([]byte{}, good...)
	rng := rand.New(rand.NewPCG(7, 7))
	// Keep the 100-byte header, scramble the rest of the first page and the
	// start of every other page: the schema and b-tree pages are garbage.
	for i := 100; i < len(damagedPages); i++ {
		if i < 4096 || i%4096 < 64 {
			damagedPages[i] = byte(rng.IntN(256))
		}
	}
	cases := []struct {
		name    string
		content []byte
		check   string
	}{
		{"not-a-database", []byte("id,name\n010056,遠東百貨停車場\n"), "header check"},
		{"html-page", []byte(feedtest.WAFPage), "header check"},
		{"truncated-header", good[:10], "header check"},
		{"damaged-pages", damagedPages, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			db := filepath.Join(dir, "parking.db")
			if err := os.WriteFile(db, c.content, 0o644); err != nil {
				t.Fatal(err)
			}
			code, log := run(t, loaderEnv(dir, "file://"+w.store.Dir(), "sqlite://"+filepath.Join(dir, "q.db"), "PARKING_POLL_WAIT=50ms",
				"PARKING_DB_LOCKING="+string(mode)), "loader", "serve", "-drain")
			if code != 1 {
				t.Fatalf("loader exited %d on a %s, want 1; log:\n%s", code, c.name, log)
			}
			if !strings.Contains(log, db) {
				t.Errorf("the refusal does not name the file %s:\n%s", db, log)
			}
			if c.check != "" && !strings.Contains(log, c.check) {
				t.Errorf("the refusal does not name the check %q:\n%s", c.check, log)
			}
			if c.check == "" && !strings.Contains(strings.ToLower(log), "malformed") && !strings.Contains(strings.ToLower(log), "integrity") &&
				!strings.Contains(strings.ToLower(log), "not a database") {
				t.Errorf("the refusal does not say which check failed:\n%s", log)
			}
			t.Logf("refusal: %s", lastLine(log))
			after, err := os.ReadFile(db)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(after, c.content) {
				t.Errorf("the loader modified the damaged file (%d bytes before, %d after)", len(c.content), len(after))
			}
			for _, side := range []string{"-journal", "-wal", "-shm"} {
				if _, err := os.Stat(db + side); err == nil {
					t.Errorf("the loader left %s%s next to the damaged file", db, side)
				}
			}
		})
	}
}

// TestFaultsDiskFull: the database's file system fills up while the real
// loader applies. The transaction fails cleanly, the loader holds its batch
// (logging the failure as an error once, /readyz 503 and /healthz 200
// meanwhile) and receives nothing; once space is freed the same process
// carries on by itself, nothing was dead-lettered, and the result equals a
// clean run.
func TestFaultsDiskFull(t *testing.T) {
	forEachLocking(t, testFaultsDiskFull)
}

func testFaultsDiskFull(t *testing.T, mode sqlite.Locking) {
	rng := rand.New(rand.NewPCG(seed(t), 3))
	w := newWorld(t)
	h := genHistory(rng, 6, 120)
	bodies := publishAll(t, w.store, h)
	want := cleanDump(t, w.store, bodies)

	// WAL mode needs headroom for its WAL (up to wal_autocheckpoint pages,
	// 4 MiB, before it is copied back) besides the database: a bigger disk.
	size := int64(512 << 10)
	// The filler leaves room enough to start, not to finish: ~128 KiB for a
	// rollback journal (the schema, every migration and its journal); WAL
	// mode starts with its 32 KiB shared-memory index and the migrations'
	// pages in the WAL besides the database, so more.
	room := int64(128 << 10)
	if mode == sqlite.LockingShared {
		size, room = 8<<20, 256<<10
	}
	mnt := tmpfs.Mount(t, size)
	filler := tmpfs.Fill(t, mnt, room)
	send(t, w.queue, bodies...)
	env := loaderEnv(w.dir, "file://"+w.store.Dir(), "sqlite://"+w.queuePath(),
		"PARKING_DB="+filepath.Join(mnt, "parking.db"), "PARKING_POLL_WAIT=1s", "PARKING_HTTP_ADDR=127.0.0.1:0",
		"PARKING_DB_LOCKING="+string(mode))
	p := start(t, env, "loader", "serve")
	line, ok := p.next(t, "http server listening")
	if !ok {
		t.Fatalf("the loader ended before serving HTTP; log:\n%s", p.log())
	}
	var listening struct{ Addr string }
	if err := json.Unmarshal([]byte(line), &listening); err != nil || listening.Addr == "" {
		t.Fatalf("listening line %q: %v", line, err)
	}
	line, ok = p.next(t, "the database is failing")
	if !ok {
		t.Fatalf("the loader ended before the disk filled up; log:\n%s", p.log())
	}
	if !strings.Contains(line, `"level":"ERROR"`) || !strings.Contains(line, "full") {
		t.Errorf("the failure is not an error saying the disk is full: %s", line)
	}
	readyz, readyBody := httpGet(t, listening.Addr, "/readyz")
	healthz, _ := httpGet(t, listening.Addr, "/healthz")
	if readyz != http.StatusServiceUnavailable || !strings.Contains(readyBody, "database failing") || healthz != http.StatusOK {
		t.Errorf("while the disk is full: /readyz %d %q, /healthz %d; want 503 naming the database, and 200", readyz, readyBody, healthz)
	}
	// Held, not handed back: nothing deleted that was not applied, nothing
	// dead-lettered, nothing put back to be received again.
	v, f, _ := w.queue.Len(context.Background())
	if v+f == 0 {
		t.Fatal("the queue is empty while the disk is full: a message was deleted without being applied")
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	// It recovers by itself: every snapshot is applied without a restart.
	if _, ok := p.next(t, "the database works again"); !ok {
		t.Fatalf("the loader ended before the database recovered; log:\n%s", p.log())
	}
	readyAfter, _ := httpGet(t, listening.Addr, "/readyz")
	if readyAfter != http.StatusOK {
		t.Errorf("/readyz after the recovery = %d, want 200", readyAfter)
	}
	applied := strings.Count(p.log(), `"msg":"snapshot `)
	for applied < len(bodies) {
		if _, ok := p.next(t, `"msg":"snapshot `); !ok {
			t.Fatalf("the loader ended after %d of %d snapshots; log:\n%s", applied, len(bodies), p.log())
		}
		applied++
	}
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	code := p.exit(t)
	if code != 0 {
		t.Fatalf("loader exited %d after SIGINT; log:\n%s", code, p.log())
	}
	log := p.log()
	if strings.Contains(log, "panic") {
		t.Errorf("the loader panicked:\n%s", log)
	}
	errors := strings.Count(log, `"level":"ERROR"`)
	if errors != 1 {
		t.Errorf("%d ERROR lines for one disk-full episode, want 1:\n%s", errors, log)
	}
	if n := strings.Count(log, "transient failure"); n != 0 {
		t.Errorf("%d messages put back with a backoff because the database failed, want 0:\n%s", n, log)
	}
	dead, err := w.queue.DeadLetters(context.Background())
	if err != nil || len(dead) != 0 {
		t.Fatalf("dead letters after the disk-full episode: %d (%v), want 0", len(dead), err)
	}
	got := dbtest.Dump(t, filepath.Join(mnt, "parking.db"))
	if got != want {
		t.Fatalf("after the disk-full episode the database differs from the clean run\n%s", diff(want, got))
	}
	checkLocking(t, log, mode)
	report(t, "disk full (%s): snapshots=%d error_lines=%d readyz_while_full=%d healthz_while_full=%d readyz_after=%d processes=%d exit=%d dead_lettered=%d rows_lost=%d",
		mode, len(bodies), errors, readyz, healthz, readyAfter, strings.Count(log, "loader started"), code, len(dead), lostRows(want, got))
}

// httpGet asks a running loader's endpoint and returns the status and body.
func httpGet(t testing.TB, addr, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
