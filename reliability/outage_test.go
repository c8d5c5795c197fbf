package reliability

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/internal/awstest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/dbtest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/logtest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/tmpfs"
	"github.com/parking-newtaipei/parking-newtaipei/shared/clock"
	"github.com/parking-newtaipei/parking-newtaipei/shared/load/consume"
	"github.com/parking-newtaipei/parking-newtaipei/shared/ops/metrics"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue/sqlitequeue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue/sqsqueue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store/filestore"
)

// outageLength is how long the database's disk stays full: far past the
// ~3 minutes that the message backoff (10 s doubling) and 5 receives used
// to allow before every waiting message was dead-lettered.
const outageLength = 10*time.Minute + 30*time.Second

// TestFaultsDatabaseOutage (issue 13, item 5): the database's disk is full
// for over ten minutes while messages wait, on the embedded queue (redrive
// after 5 receives) and on SQS (fauxqs, redrive after 2). The loop's time
// runs on a fake clock (the queue's too, on the embedded one), so the ten
// minutes take a second. Nothing may be dead-lettered or received again:
// the loop holds its batch, receives nothing, logs the outage as an error
// once, and applies everything once the disk has room again; the database
// then equals a clean run.
func TestFaultsDatabaseOutage(t *testing.T) {
	for _, backend := range []string{"sqlite", "sqs"} {
		t.Run(backend, func(t *testing.T) { testDatabaseOutage(t, backend) })
	}
}

func testDatabaseOutage(t *testing.T, backend string) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed(t), 5))
	clk := clock.NewFake(time.Now())
	st, err := filestore.Open(filepath.Join(t.TempDir(), "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	// More snapshots than one batch: the first ten are held, the rest wait
	// in the queue, unreceived.
	bodies := publishAll(t, st, genHistory(rng, 2, 13))
	want := cleanDump(t, st, bodies)

	var q queue.Queue
	var deadLetters func() int
	switch backend {
	case "sqlite":
		sq, err := sqlitequeue.Open(ctx, filepath.Join(t.TempDir(), "queue.db"), sqlitequeue.Options{Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sq.Close() })
		q = sq
		deadLetters = func() int {
			dl, err := sq.DeadLetters(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return len(dl)
		}
	case "sqs":
		tq := awstest.NewQueue(t, awstest.QueueOptions{MaxReceiveCount: 2})
		q = sqsqueue.New(tq.Client, tq.URL, sqsqueue.Options{})
		deadLetters = func() int { v, f := sqsCounts(t, tq.Client, tq.DLQURL); return v + f }
	}
	send(t, q, bodies...)

	// The database opens with room, then its disk fills to the last byte.
	mnt := tmpfs.Mount(t, 1<<20)
	dbPath := filepath.Join(mnt, "parking.db")
	db, err := sqlite.Open(ctx, dbPath, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	filler := tmpfs.Fill(t, mnt, 0)

	var failing atomic.Bool
	rec := &receiveRecorder{Queue: q, failing: &failing, counts: map[string]int{}}
	firstFailure := make(chan error, 1)
	var failures, recoveries atomic.Int32
	logs := &logtest.Buffer{}
	reg := metrics.New(clk.Now)
	done := make(chan error, 1)
	go func() {
		done <- consume.Run(ctx, consume.Config{
			Queue: rec, Store: st, DB: db, Clock: clk, Drain: true, Visibility: 2 * time.Minute,
			Logger: slog.New(slog.NewJSONHandler(logs, nil)),
			OnEvent: func(ev consume.Event) {
				reg.Observe(ev)
				switch ev.Kind {
				case consume.DatabaseFailing:
					if failures.Add(1) == 1 {
						failing.Store(true)
						firstFailure <- ev.Err
					}
				case consume.DatabaseRecovered:
					recoveries.Add(1)
					failing.Store(false)
				}
			},
		})
	}()
	select {
	case err := <-firstFailure:
		if !strings.Contains(err.Error(), "full") {
			t.Errorf("the database failure does not say the disk is full: %v", err)
		}
		if g := databaseFailingGauge(t, reg); g != "1" {
			t.Errorf("parking_database_failing %s during the outage, want 1", g)
		}
	case err := <-done:
		t.Fatalf("the loop ended (%v) before the database failed; log:\n%s", err, logs)
	case <-time.After(guard):
		t.Fatalf("no database failure within %s; log:\n%s", guard, logs)
	}

	// Ten minutes and more of a full disk: each step waits until the loop
	// waits on the clock (its heartbeat and its database retry), then moves
	// the clock past the retry.
	const step = 15 * time.Second
	var elapsed time.Duration
	for elapsed < outageLength {
		blockUntil(t, clk, 2)
		clk.Advance(step)
		elapsed += step
	}
	blockUntil(t, clk, 2)
	if n := deadLetters(); n != 0 {
		t.Fatalf("%d messages dead-lettered during the outage", n)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	clk.Advance(step)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the loop ended with %v; log:\n%s", err, logs)
		}
	case <-time.After(guard):
		t.Fatalf("the loop did not drain within %s of the disk freed; log:\n%s", guard, logs)
	}
	db.Close()

	got := dbtest.Dump(t, dbPath)
	if got != want {
		t.Fatalf("after the outage the database differs from the clean run\n%s", diff(want, got))
	}
	if n := dbtest.Count(t, dbPath, "snapshots", "outcome = 'applied'"); n != len(bodies) {
		t.Fatalf("%d snapshots applied after the outage, want %d", n, len(bodies))
	}
	if n := deadLetters(); n != 0 {
		t.Fatalf("%d messages dead-lettered", n)
	}
	maxCount, during := rec.summary()
	if maxCount != 1 || len(rec.counts) != len(bodies) {
		t.Fatalf("%d messages received, up to %d times each; want each of the %d once", len(rec.counts), maxCount, len(bodies))
	}
	if during != 0 {
		t.Fatalf("%d receives while the database was failing; want none", during)
	}
	if recoveries.Load() != 1 {
		t.Fatalf("%d recoveries reported, want 1", recoveries.Load())
	}
	if g := databaseFailingGauge(t, reg); g != "0" {
		t.Errorf("parking_database_failing %s after the recovery, want 0", g)
	}
	log := logs.String()
	if n := strings.Count(log, `"level":"ERROR"`); n != 1 || !strings.Contains(log, "the database is failing") {
		t.Errorf("%d ERROR lines for one outage, want 1 saying the database is failing:\n%s", n, log)
	}
	if !strings.Contains(log, "the database works again") {
		t.Errorf("the recovery is not logged:\n%s", log)
	}
	if strings.Contains(log, "transient failure") {
		t.Errorf("the database failure spent the messages' retries:\n%s", log)
	}
	report(t, "database outage (%s): disk_full_for=%s failed_attempts=%d receives_during_outage=%d max_receive_count=%d dead_lettered=%d applied=%d/%d rows_lost=%d",
		backend, elapsed, failures.Load(), during, maxCount, deadLetters(), len(bodies), len(bodies), lostRows(want, got))
}

// receiveRecorder remembers how often each message was received, and how
// many receives happened while failing was set.
type receiveRecorder struct {
	queue.Queue
	failing *atomic.Bool

	mu     sync.Mutex
	counts map[string]int // message body -> highest ReceiveCount seen
	during int
}

func (r *receiveRecorder) Receive(ctx context.Context, n int, wait, vis time.Duration) ([]queue.Delivery, error) {
	r.mu.Lock()
	if r.failing.Load() {
		r.during++
	}
	r.mu.Unlock()
	ds, err := r.Queue.Receive(ctx, n, wait, vis)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range ds {
		r.counts[string(d.Body)] = max(r.counts[string(d.Body)], d.ReceiveCount)
	}
	return ds, err
}

func (r *receiveRecorder) summary() (maxCount, during int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.counts {
		maxCount = max(maxCount, n)
	}
	return maxCount, r.during
}

// databaseFailingGauge is the value of parking_database_failing on /metrics.
func databaseFailingGauge(t *testing.T, reg *metrics.Registry) string {
	t.Helper()
	var b strings.Builder
	if err := reg.WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, "parking_database_failing "); ok {
			return v
		}
	}
	t.Fatalf("no parking_database_failing in\n%s", b.String())
	return ""
}

// guard bounds how long a test waits for something the loop must do at
// once: passing it is a failure, not a synchronisation.
const guard = 30 * time.Second

func blockUntil(t *testing.T, c *clock.Fake, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if err := c.BlockUntil(ctx, n); err != nil {
		t.Fatal(err)
	}
}
