package consume_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/internal/dbtest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/feedtest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/logtest"
	"github.com/parking-newtaipei/parking-newtaipei/shared/clock"
	"github.com/parking-newtaipei/parking-newtaipei/shared/extract"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/load/consume"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue/sqlitequeue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store/filestore"
)

// env is one pipeline on real files: a fixture feed over real HTTP, a
// snapshot directory, an embedded queue and a database.
type env struct {
	t     *testing.T
	dir   string
	feed  *feedtest.Server
	store *filestore.Store
	queue *sqlitequeue.Queue
	clock *clock.Fake
	logs  *logtest.Buffer
	job   *extract.Job
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dir: dir, feed: feedtest.NewServer(t), clock: clock.NewFake(time.Now()), logs: &logtest.Buffer{}}
	var err error
	if e.store, err = filestore.Open(filepath.Join(dir, "snapshots")); err != nil {
		t.Fatal(err)
	}
	if e.queue, err = sqlitequeue.Open(context.Background(), filepath.Join(dir, "queue.db"), sqlitequeue.Options{Now: e.clock.Now}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.queue.Close() })
	f, err := extract.NewClient(extract.ClientConfig{BaseURL: e.feed.URL, Retries: 1, BackoffBase: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e.job = &extract.Job{Fetcher: f, Store: e.store, Queue: e.queue}
	return e
}

func (e *env) dbPath() string { return filepath.Join(e.dir, "parking.db") }

func (e *env) queuePath() string { return filepath.Join(e.dir, "queue.db") }

// openDB opens the env's database, closed at the end of the test if not
// before (the loader's exclusive lock keeps a check out while it is open).
func (e *env) openDB() *sqlite.DB {
	e.t.Helper()
	db, err := sqlite.Open(context.Background(), e.dbPath(), sqlite.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { db.Close() })
	return db
}

// fetch runs the extractor's job once and returns what it stored.
func (e *env) fetch(d feed.Dataset) extract.Result {
	e.t.Helper()
	res, err := e.job.Run(context.Background(), extract.Request{Dataset: d, Format: feed.JSON, Force: true})
	if err != nil {
		e.t.Fatalf("fetch %s: %v", d, err)
	}
	return res
}

// drain runs the consume loop until the queue is empty, with the given queue
// (the env's own, or a fault-injecting wrapper of it).
func (e *env) drain(q queue.Queue) {
	e.t.Helper()
	db := e.openDB()
	defer db.Close()
	err := consume.Run(context.Background(), consume.Config{
		Queue: q, Store: e.store, DB: db, Drain: true,
		Wait: 10 * time.Millisecond, Visibility: time.Minute,
		Logger: slog.New(slog.NewJSONHandler(e.logs, nil)),
	})
	if err != nil {
		e.t.Fatalf("consume: %v", err)
	}
}

func (e *env) queueLen() (visible, inFlight int) {
	e.t.Helper()
	v, f, err := e.queue.Len(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return v, f
}

func TestAppliesBothDatasetsAndDeletesTheMessages(t *testing.T) {
	e := newEnv(t)
	lots := e.fetch(feed.Lots)
	avail := e.fetch(feed.Availability)
	e.drain(e.queue)

	if v, f := e.queueLen(); v+f != 0 {
		t.Fatalf("queue still holds %d visible and %d in-flight messages", v, f)
	}
	wantLots := uniqueIDs(feedtest.SampleLots())
	if got := dbtest.Count(t, e.dbPath(), "parking_lots", "deleted_at IS NULL"); got != wantLots {
		t.Errorf("active lots = %d, want %d (unique IDs in the feed)", got, wantLots)
	}
	wantObs := validLatest(feedtest.SampleAvailability(1))
	if got := dbtest.Count(t, e.dbPath(), "availability", ""); got != wantObs {
		t.Errorf("observations = %d, want %d (unique IDs with a value >= 0)", got, wantObs)
	}
	for _, key := range []string{lots.Key, avail.Key} {
		if got := dbtest.Count(t, e.dbPath(), "snapshots", "key = ? AND outcome = 'applied'", key); got != 1 {
			t.Errorf("ledger rows for %s = %d, want 1", key, got)
		}
	}
}

// A crash after COMMIT and before DeleteMessage: the message comes back, the
// ledger acknowledges it, and nothing is applied twice.
func TestCrashBetweenCommitAndDeleteAppliesOnce(t *testing.T) {
	e := newEnv(t)
	e.fetch(feed.Lots)
	e.fetch(feed.Availability)
	e.drain(&failingDelete{Queue: e.queue})
	before := dbtest.Dump(t, e.dbPath())
	if _, f := e.queueLen(); f != 2 {
		t.Fatalf("in-flight messages after the lost deletes = %d, want 2", f)
	}

	e.clock.Advance(2 * time.Minute) // past the visibility timeout: both come back
	e.drain(e.queue)
	if v, f := e.queueLen(); v+f != 0 {
		t.Fatalf("queue still holds %d visible and %d in-flight messages", v, f)
	}
	if after := dbtest.Dump(t, e.dbPath()); after != before {
		t.Fatal("redelivery after a lost delete changed the database")
	}
	if got := dbtest.Count(t, e.dbPath(), "snapshots", ""); got != 2 {
		t.Fatalf("ledger rows = %d, want 2", got)
	}
	if !strings.Contains(e.logs.String(), "already applied") {
		t.Error("the redelivered messages were not acknowledged as already applied")
	}
}

// The same snapshot announced twice is applied once.
func TestSameSnapshotTwiceAppliesOnce(t *testing.T) {
	e := newEnv(t)
	res := e.fetch(feed.Availability)
	e.drain(e.queue)
	before := dbtest.Dump(t, e.dbPath())

	body, err := queue.EncodeMessage(extract.Message(res, e.store.Locate(res.Key)))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.queue.Send(context.Background(), body, body); err != nil {
		t.Fatal(err)
	}
	e.drain(e.queue)
	if after := dbtest.Dump(t, e.dbPath()); after != before {
		t.Fatal("applying the same snapshot again changed the database")
	}
	if v, f := e.queueLen(); v+f != 0 {
		t.Fatalf("duplicates were not acknowledged: %d visible, %d in flight", v, f)
	}
}

// Forged or broken messages are refused with their reason, dead-lettered,
// and do not block the good message behind them.
func TestPoisonMessagesAreRefusedAndDoNotBlock(t *testing.T) {
	e := newEnv(t)
	good := e.fetch(feed.Availability)
	// Drop the good message for now: it is sent again behind the poison.
	ds, err := e.queue.Receive(context.Background(), 10, 0, time.Minute)
	if err != nil || len(ds) != 1 {
		t.Fatalf("receive: %v, %d messages", err, len(ds))
	}
	if err := e.queue.Delete(context.Background(), ds...); err != nil {
		t.Fatal(err)
	}
	msg := extract.Message(good, e.store.Locate(good.Key))

	outside := msg
	outside.Key = "../../etc/availability/2026/11/26/20261126T180000Z-0123456789abcdef.json.gz"
	otherBucket := msg
	otherBucket.Bucket = "someone-elses-bucket"
	badSum := msg
	badSum.SHA256 = strings.Repeat("0", 64)
	wrongDataset := msg
	wrongDataset.Dataset = feed.Lots

	cases := map[string][]byte{
		"garbage":        []byte("not json at all"),
		"future version": []byte(`{"version":99,"dataset":"availability"}`),
		"outside":        mustEncode(t, outside),
		"other bucket":   mustEncode(t, otherBucket),
		"checksum":       mustEncode(t, badSum),
		"wrong dataset":  mustEncode(t, wrongDataset),
	}
	for _, body := range cases {
		if err := e.queue.Send(context.Background(), body); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.queue.Send(context.Background(), mustEncode(t, msg)); err != nil {
		t.Fatal(err)
	}
	e.drain(e.queue)

	if got := dbtest.Count(t, e.dbPath(), "snapshots", "key = ? AND outcome = 'applied'", good.Key); got != 1 {
		t.Fatalf("the good message behind the poison was not applied (ledger rows %d)", got)
	}
	if got := dbtest.Count(t, e.dbPath(), "rejections", ""); got != len(cases) {
		t.Errorf("rejections recorded = %d, want %d", got, len(cases))
	}
	dead, err := e.queue.DeadLetters(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != len(cases) {
		t.Fatalf("dead letters = %d, want %d", len(dead), len(cases))
	}
	wantReasons := []string{"invalid message", "newer than this loader", "outside", "outside", "checksum mismatch", "dataset"}
	var reasons []string
	for _, d := range dead {
		reasons = append(reasons, d.Reason)
	}
	all := strings.Join(reasons, "\n")
	for _, w := range wantReasons {
		if !strings.Contains(all, w) {
			t.Errorf("no dead letter's reason mentions %q; reasons:\n%s", w, all)
		}
	}
	if v, f := e.queueLen(); v+f != 0 {
		t.Fatalf("queue still holds %d visible and %d in-flight messages", v, f)
	}
}

// A missing snapshot may yet appear (a restore in progress): the message is
// kept and retried later, never dead-lettered at once, and nothing is applied.
func TestMissingSnapshotIsRetriedNotLost(t *testing.T) {
	e := newEnv(t)
	res := e.fetch(feed.Availability)
	if err := os.Remove(filepath.Join(e.store.Dir(), filepath.FromSlash(res.Key))); err != nil {
		t.Fatal(err)
	}
	e.drain(e.queue)
	if _, f := e.queueLen(); f != 1 {
		t.Fatalf("the message was not kept for a retry (in flight %d)", f)
	}
	if dead, _ := e.queue.DeadLetters(context.Background()); len(dead) != 0 {
		t.Fatalf("a missing snapshot was dead-lettered at once: %+v", dead)
	}
	if got := dbtest.Count(t, e.dbPath(), "snapshots", ""); got != 0 {
		t.Fatalf("ledger rows = %d, want 0", got)
	}
	if !strings.Contains(e.logs.String(), res.Key) || !strings.Contains(e.logs.String(), "not found") {
		t.Errorf("the log does not name the missing key %s:\n%s", res.Key, e.logs.String())
	}
}

// A stored snapshot whose bytes were damaged after the message was sent is
// refused as corrupt and nothing of it is applied.
func TestCorruptSnapshotIsRefused(t *testing.T) {
	e := newEnv(t)
	res := e.fetch(feed.Availability)
	path := filepath.Join(e.store.Dir(), filepath.FromSlash(res.Key))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	e.drain(e.queue)
	if got := dbtest.Count(t, e.dbPath(), "availability", ""); got != 0 {
		t.Fatalf("observations from a corrupt snapshot = %d, want 0", got)
	}
	dead, err := e.queue.DeadLetters(context.Background())
	if err != nil || len(dead) != 1 || !strings.Contains(dead[0].Reason, "checksum mismatch") {
		t.Fatalf("dead letters = %+v, %v; want one with a checksum mismatch", dead, err)
	}
}

// A message whose snapshot says another fetch time than the message is a forgery.
func TestSnapshotMustMatchItsMessage(t *testing.T) {
	e := newEnv(t)
	res := e.fetch(feed.Availability)
	ds, _ := e.queue.Receive(context.Background(), 10, 0, time.Minute)
	_ = e.queue.Delete(context.Background(), ds...)
	msg := extract.Message(res, e.store.Locate(res.Key))
	msg.FetchedAt = msg.FetchedAt.Add(-time.Hour)
	if err := e.queue.Send(context.Background(), mustEncode(t, msg)); err != nil {
		t.Fatal(err)
	}
	e.drain(e.queue)
	dead, _ := e.queue.DeadLetters(context.Background())
	if len(dead) != 1 || !strings.Contains(dead[0].Reason, "fetched at") {
		t.Fatalf("dead letters = %+v; want one naming the fetch time", dead)
	}
}

// gatedReceive holds the first receive until released, to stop the loop
// while a long poll is in flight.
type gatedReceive struct {
	queue.Queue
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (g *gatedReceive) Receive(ctx context.Context, max int, wait, vis time.Duration) ([]queue.Delivery, error) {
	first := false
	g.once.Do(func() { first = true })
	if first {
		close(g.entered)
		<-g.release
	}
	return g.Queue.Receive(ctx, max, 0, vis)
}

// failingDelete loses every delete, as a crash between commit and delete would.
type failingDelete struct{ queue.Queue }

func (f *failingDelete) Delete(context.Context, ...queue.Delivery) error {
	return errors.New("injected: the process died before DeleteMessage")
}

func mustEncode(t *testing.T, m queue.Message) []byte {
	t.Helper()
	b, err := queue.EncodeMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func uniqueIDs(rows []feed.LotRow) int {
	ids := map[string]bool{}
	for _, r := range rows {
		ids[r.ID] = true
	}
	return len(ids)
}

// validLatest counts the lots whose last row in the snapshot has a value >= 0
// (duplicate IDs: the last row wins).
func validLatest(rows []feed.AvailabilityRow) int {
	last := map[string]string{}
	for _, r := range rows {
		last[r.ID] = r.AvailableCar
	}
	n := 0
	for _, v := range last {
		if !strings.HasPrefix(v, "-") && v != "" && strings.Trim(v, "0123456789") == "" {
			n++
		}
	}
	return n
}

// A forged message naming an applied key in another bucket is refused as
// outside the store, not acknowledged because the ledger knows the key.
func TestForgedLocationOfAnAppliedKeyIsRefused(t *testing.T) {
	e := newEnv(t)
	good := e.fetch(feed.Availability)
	e.drain(e.queue)
	forged := extract.Message(good, e.store.Locate(good.Key))
	forged.Bucket = "someone-elses-bucket"
	if err := e.queue.Send(context.Background(), mustEncode(t, forged)); err != nil {
		t.Fatal(err)
	}
	e.drain(e.queue)
	dead, err := e.queue.DeadLetters(context.Background())
	if err != nil || len(dead) != 1 || !strings.Contains(dead[0].Reason, "outside") {
		t.Fatalf("dead letters = %+v (%v); want the forged message, refused as outside the store", dead, err)
	}
	if n := dbtest.Count(t, e.dbPath(), "rejections", ""); n != 1 {
		t.Fatalf("rejections = %d, want 1", n)
	}
}

// Invalid settings are refused with the setting named, not corrected.
func TestConfigRefusesInvalidValues(t *testing.T) {
	e := newEnv(t)
	db := e.openDB()
	for want, tune := range map[string]func(*consume.Config){
		"MaxMessages 11":    func(c *consume.Config) { c.MaxMessages = 11 },
		"MaxMessages -1":    func(c *consume.Config) { c.MaxMessages = -1 },
		"Visibility 500ms":  func(c *consume.Config) { c.Visibility = 500 * time.Millisecond },
		"Wait -1s":          func(c *consume.Config) { c.Wait = -time.Second },
		"Concurrency -2":    func(c *consume.Config) { c.Concurrency = -2 },
		"Backoff":           func(c *consume.Config) { c.Backoff.First = time.Minute },
		"DB are required":   func(c *consume.Config) { c.DB = nil },
		"ShutdownTimeout -": func(c *consume.Config) { c.ShutdownTimeout = -time.Second },
	} {
		cfg := consume.Config{Queue: e.queue, Store: e.store, DB: db, Drain: true, Wait: time.Millisecond}
		tune(&cfg)
		if err := consume.Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: Run returned %v", want, err)
		}
	}
	// Zero values are the defaults: this drains the empty queue.
	if err := consume.Run(context.Background(), consume.Config{Queue: e.queue, Store: e.store, DB: db, Drain: true, Wait: time.Millisecond}); err != nil {
		t.Fatalf("zero values: %v", err)
	}
}
