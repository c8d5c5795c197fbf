package consume_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/internal/dbtest"
	"github.com/parking-newtaipei/parking-newtaipei/shared/clock"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/load/consume"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue/sqlitequeue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
)

// These tests drive the loop's timing (the heartbeat, the backoff, the
// receive retry, the shutdown deadline) with a fake clock shared by the loop
// and the embedded queue (a real SQLite file): time moves only when the test
// advances it, and the test waits for the loop to be waiting, never sleeps.

// guard bounds how long a test waits for something the loop must do at once;
// passing it means the loop did not do it (a failure, not a synchronisation).
const guard = 30 * time.Second

// blockUntil waits until n timers or tickers of the loop are pending.
func blockUntil(t *testing.T, c *clock.Fake, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if err := c.BlockUntil(ctx, n); err != nil {
		t.Fatal(err)
	}
}

func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(guard):
		t.Fatalf("%s did not happen within %s", what, guard)
		panic("unreachable")
	}
}

// start runs the loop in the background on the env's clock.
func (e *env) start(ctx context.Context, cfg consume.Config) (<-chan error, *sqlite.DB) {
	e.t.Helper()
	db := e.openDB()
	cfg.DB, cfg.Clock = db, e.clock
	if cfg.Queue == nil {
		cfg.Queue = e.queue
	}
	if cfg.Store == nil {
		cfg.Store = e.store
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewJSONHandler(e.logs, nil))
	}
	done := make(chan error, 1)
	go func() { done <- consume.Run(ctx, cfg) }()
	return done, db
}

// secondConsumer opens the same queue file as another loader would.
func (e *env) secondConsumer() *sqlitequeue.Queue {
	e.t.Helper()
	q, err := sqlitequeue.Open(context.Background(), filepath.Join(e.dir, "queue.db"), sqlitequeue.Options{Now: e.clock.Now})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { q.Close() })
	return q
}

// receiveNothing asserts that q has no message to deliver now.
func receiveNothing(t *testing.T, q queue.Queue, when string) {
	t.Helper()
	ds, err := q.Receive(context.Background(), 10, 0, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 0 {
		t.Fatalf("%s: a second consumer received %d messages", when, len(ds))
	}
}

// While a slow read holds a message, the heartbeat extends its visibility at
// half the timeout, so a second consumer never receives it, even long after
// the first visibility timeout.
func TestHeartbeatKeepsASlowMessageFromASecondConsumer(t *testing.T) {
	e := newEnv(t)
	res := e.fetch(feed.Availability)
	slow := &gatedStore{Store: e.store, entered: make(chan struct{}), release: make(chan struct{})}
	q := &watchedQueue{Queue: e.queue, changed: make(chan time.Duration, 10)}
	done, db := e.start(context.Background(), consume.Config{Queue: q, Store: slow, Drain: true,
		Wait: time.Millisecond, Visibility: 2 * time.Minute})
	await(t, slow.entered, "the read")
	blockUntil(t, e.clock, 1) // the heartbeat's ticker
	second := e.secondConsumer()

	// Three half-timeouts: past the first timeout (2m) and the one after
	// the first extension (3m) too.
	for i := 1; i <= 3; i++ {
		e.clock.Advance(time.Minute)
		if d := await(t, q.changed, "a heartbeat"); d != 2*time.Minute {
			t.Fatalf("heartbeat %d extended by %s, want the visibility timeout", i, d)
		}
		receiveNothing(t, second, "while the heartbeat runs")
	}

	close(slow.release)
	if err := await(t, done, "the end of the drain"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if n := dbtest.Count(t, e.dbPath(), "snapshots", "key = ? AND outcome = 'applied'", res.Key); n != 1 {
		t.Fatalf("ledger rows for the slow snapshot = %d, want 1", n)
	}
	if v, f := e.queueLen(); v+f != 0 {
		t.Fatalf("queue holds %d visible and %d in-flight messages after the apply", v, f)
	}
}

// A transient failure hides the message for the backoff, growing with each
// receive: it comes back exactly when the backoff ends, not before.
func TestTransientFailureComesBackAfterTheBackoff(t *testing.T) {
	e := newEnv(t)
	res := e.fetch(feed.Availability)
	second := e.secondConsumer()
	failing := &failingStore{Store: e.store}
	backoff := clock.Backoff{First: 10 * time.Second, Max: time.Minute} // no jitter: exact

	// The first receive hides it for 10s, the second for 20s.
	for _, hidden := range []time.Duration{10 * time.Second, 20 * time.Second} {
		done, db := e.start(context.Background(), consume.Config{Store: failing, Drain: true,
			Wait: time.Millisecond, Visibility: time.Minute, Backoff: backoff})
		if err := await(t, done, "the drain"); err != nil {
			t.Fatal(err)
		}
		db.Close()
		e.clock.Advance(hidden - time.Millisecond)
		receiveNothing(t, second, "before the backoff ended")
		e.clock.Advance(time.Millisecond)
		if v, _ := e.queueLen(); v != 1 {
			t.Fatalf("after a backoff of %s: %d visible messages, want the failed one back", hidden, v)
		}
	}
	if failing.gets() != 2 {
		t.Fatalf("%d reads, want 2", failing.gets())
	}

	done, db := e.start(context.Background(), consume.Config{Drain: true, Wait: time.Millisecond, Visibility: time.Minute})
	if err := await(t, done, "the drain"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if n := dbtest.Count(t, e.dbPath(), "snapshots", "key = ? AND outcome = 'applied'", res.Key); n != 1 {
		t.Fatalf("ledger rows after the store recovered = %d, want 1", n)
	}
}

// When the stop begins during a read that does not end, Run gives up at the
// shutdown deadline, not before, and hands the unapplied message back: it is
// visible again at once, for the next loader, instead of stranded for its
// visibility timeout. Nothing is lost, so the stop is still graceful.
func TestShutdownDeadline(t *testing.T) {
	e := newEnv(t)
	e.fetch(feed.Availability)
	stuck := &gatedStore{Store: e.store, entered: make(chan struct{}), release: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done, _ := e.start(ctx, consume.Config{Store: stuck, Wait: time.Millisecond, Visibility: 2 * time.Minute,
		ShutdownTimeout: 25 * time.Second})
	await(t, stuck.entered, "the read")
	blockUntil(t, e.clock, 1) // the heartbeat's ticker
	cancel()
	blockUntil(t, e.clock, 2) // and the shutdown deadline

	e.clock.Advance(25*time.Second - time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Run returned %v before the deadline", err)
	default:
	}
	e.clock.Advance(time.Millisecond)
	if err := await(t, done, "the return at the deadline"); err != nil {
		t.Fatalf("Run returned %v at the deadline; want a graceful stop, the message handed back", err)
	}
	if dead, _ := e.queue.DeadLetters(context.Background()); len(dead) != 0 {
		t.Fatalf("the unfinished message was dead-lettered: %+v", dead)
	}
	if v, f := e.queueLen(); v != 1 || f != 0 {
		t.Fatalf("queue holds %d visible and %d in-flight messages at the deadline, want the unfinished one visible again at once", v, f)
	}
	// The next loader takes it at once, not a visibility timeout later.
	ds, err := e.secondConsumer().Receive(context.Background(), 10, 0, time.Minute)
	if err != nil || len(ds) != 1 || ds[0].ReceiveCount != 2 {
		t.Fatalf("the next loader received %+v (%v); want the message, on its second receive", ds, err)
	}
	if !strings.Contains(e.logs.String(), "shutdown deadline passed") || !strings.Contains(e.logs.String(), `"handed_back":1`) {
		t.Errorf("the log does not say the deadline passed and one message was handed back:\n%s", e.logs)
	}
}

// A failing queue is retried after 1s, 2s, 3s... on the clock, never in a
// tight loop.
func TestReceiveFailuresAreRetriedWithAGrowingDelay(t *testing.T) {
	e := newEnv(t)
	q := &failingReceive{Queue: e.queue, calls: make(chan struct{}, 10), fail: 3}
	done, _ := e.start(context.Background(), consume.Config{Queue: q, Drain: true, Wait: time.Millisecond})
	await(t, q.calls, "the first receive")
	for n := 1; n <= 3; n++ {
		delay := time.Duration(n) * time.Second
		blockUntil(t, e.clock, 1)
		e.clock.Advance(delay - time.Millisecond)
		select {
		case <-q.calls:
			t.Fatalf("receive %d came before its delay of %s", n+1, delay)
		default:
		}
		e.clock.Advance(time.Millisecond)
		await(t, q.calls, "the receive after the delay")
	}
	if err := await(t, done, "the drain"); err != nil {
		t.Fatal(err)
	}
}

// gatedStore holds every Get until released or until its context ends.
type gatedStore struct {
	store.Store
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (g *gatedStore) Get(ctx context.Context, loc store.Location, max int64) ([]byte, time.Time, error) {
	g.once.Do(func() { close(g.entered) })
	select {
	case <-g.release:
	case <-ctx.Done():
		return nil, time.Time{}, ctx.Err()
	}
	return g.Store.Get(ctx, loc, max)
}

// failingStore fails every Get as an unreachable store would.
type failingStore struct {
	store.Store
	mu sync.Mutex
	n  int
}

func (f *failingStore) Get(context.Context, store.Location, int64) ([]byte, time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	return nil, time.Time{}, errors.New("injected: store unreachable")
}

func (f *failingStore) gets() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

// watchedQueue reports each visibility change it passes on.
type watchedQueue struct {
	queue.Queue
	changed chan time.Duration
}

func (w *watchedQueue) ChangeVisibility(ctx context.Context, d time.Duration, ds ...queue.Delivery) error {
	err := w.Queue.ChangeVisibility(ctx, d, ds...)
	if err == nil {
		w.changed <- d
	}
	return err
}

// failingReceive fails its first receives, reporting every call.
type failingReceive struct {
	queue.Queue
	calls chan struct{}
	mu    sync.Mutex
	fail  int
}

func (f *failingReceive) Receive(ctx context.Context, max int, wait, vis time.Duration) ([]queue.Delivery, error) {
	f.calls <- struct{}{}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail > 0 {
		f.fail--
		return nil, errors.New("injected: queue unreachable")
	}
	return f.Queue.Receive(ctx, max, wait, vis)
}
