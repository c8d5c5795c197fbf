package consume_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/internal/dbtest"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/load/consume"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue"
)

// recordingReceive reports each Receive as it begins (its wait) and as it
// returns (how many messages, or its error).
type recordingReceive struct {
	queue.Queue
	polling *queue.Polling // overrides the backend's, when set
	began   chan time.Duration
	ended   chan receiveResult
}

type receiveResult struct {
	n   int
	err error
}

func newRecordingReceive(q queue.Queue) *recordingReceive {
	return &recordingReceive{Queue: q, began: make(chan time.Duration, 100), ended: make(chan receiveResult, 100)}
}

func (r *recordingReceive) Receive(ctx context.Context, max int, wait, vis time.Duration) ([]queue.Delivery, error) {
	r.began <- wait
	ds, err := r.Queue.Receive(ctx, max, wait, vis)
	r.ended <- receiveResult{len(ds), err}
	return ds, err
}

func (r *recordingReceive) Polling() queue.Polling {
	if r.polling != nil {
		return *r.polling
	}
	return r.Queue.Polling()
}

// A stop while the loop waits in a long poll on an empty local queue ends
// the poll at once: the receive returns interrupted, not empty after its
// 20 seconds, and nothing was taken. (A fake clock cannot shorten the
// queue's real wait, so what is asserted is how the receive ended.)
func TestStopInterruptsAnIdleLongPoll(t *testing.T) {
	e := newEnv(t)
	q := newRecordingReceive(e.queue)
	ctx, cancel := context.WithCancel(context.Background())
	done, _ := e.start(ctx, consume.Config{Queue: q, Wait: queue.MaxWait})
	if wait := await(t, q.began, "the long poll"); wait != queue.MaxWait {
		t.Fatalf("the loop polls with a wait of %s, want %s", wait, queue.MaxWait)
	}
	cancel()
	r := await(t, q.ended, "the end of the long poll")
	if !errors.Is(r.err, context.Canceled) || r.n != 0 {
		t.Fatalf("the long poll ended with %d messages and %v; want it interrupted (context.Canceled)", r.n, r.err)
	}
	if err := await(t, done, "the stop"); err != nil {
		t.Fatalf("Run returned %v after a stop while idle", err)
	}
	select {
	case w := <-q.began:
		t.Fatalf("the loop polled again (wait %s) after the stop", w)
	default:
	}
	if !strings.Contains(e.logs.String(), "the long poll was interrupted") {
		t.Errorf("the log does not say the poll was interrupted:\n%s", e.logs)
	}
	// Logged before Run returned, so never after what its caller logs next
	// ("local pipeline stopped" used to come first).
	if !strings.Contains(e.logs.String(), "stopping: finishing the current batch") {
		t.Errorf("Run returned before logging its stop:\n%s", e.logs)
	}
}

// A drain stops as soon as a receive finds the queue empty: on the local
// queue the last receive does not wait at all (Polling().EmptyWait), where
// it used to wait out the whole poll (20 s by default) before returning.
func TestDrainReturnsWithoutWaitingOutThePoll(t *testing.T) {
	e := newEnv(t)
	res := e.fetch(feed.Availability)
	q := newRecordingReceive(e.queue)
	done, db := e.start(context.Background(), consume.Config{Queue: q, Drain: true, Wait: queue.MaxWait})
	if err := await(t, done, "the drain"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	close(q.began)
	var waits []time.Duration
	for w := range q.began {
		waits = append(waits, w)
	}
	if len(waits) != 2 {
		t.Fatalf("%d receives (waits %v), want 2: the message, then the empty queue", len(waits), waits)
	}
	for i, w := range waits {
		if w != e.queue.Polling().EmptyWait {
			t.Errorf("drain receive %d waited %s, want %s: the local queue says at once that it is empty", i+1, w, e.queue.Polling().EmptyWait)
		}
	}
	if n := dbtest.Count(t, e.dbPath(), "snapshots", "key = ? AND outcome = 'applied'", res.Key); n != 1 {
		t.Fatalf("ledger rows for the drained snapshot = %d, want 1", n)
	}
}

// A backend whose long poll cannot be interrupted safely (SQS) is let
// return by itself: the receive in flight when the stop came is not
// cancelled, and what it brought is handed back at once.
func TestStopLetsAnUninterruptiblePollReturn(t *testing.T) {
	e := newEnv(t)
	gate := &gatedReceive{Queue: e.queue, entered: make(chan struct{}), release: make(chan struct{})}
	q := newRecordingReceive(gate)
	q.polling = &queue.Polling{Interruptible: false, EmptyWait: time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	done, db := e.start(ctx, consume.Config{Queue: q, Wait: time.Minute, Visibility: time.Hour})
	<-gate.entered
	e.fetch(feed.Availability)
	cancel()
	close(gate.release)
	if r := await(t, q.ended, "the poll"); r.err != nil || r.n != 1 {
		t.Fatalf("the poll in flight at the stop returned %d messages and %v; want it left to return the message", r.n, r.err)
	}
	if err := await(t, done, "the stop"); err != nil {
		t.Fatalf("graceful stop returned %v", err)
	}
	if v, f := e.queueLen(); v != 1 || f != 0 {
		t.Fatalf("after the stop: %d visible, %d in flight; want the message visible again at once", v, f)
	}
	db.Close()
	if got := dbtest.Count(t, e.dbPath(), "snapshots", ""); got != 0 {
		t.Fatalf("a message received after the stop signal was applied")
	}
}

// damageQueue damages the queue file at path under the open queues, as a
// failing disk would: another connection folds the WAL into the file, its
// pages after the first are overwritten, and a write through that
// connection makes every open queue reread them.
func damageQueue(t *testing.T, path string) {
	t.Helper()
	other, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	var pageSize int64
	if err := other.QueryRow("PRAGMA page_size").Scan(&pageSize); err != nil {
		t.Fatal(err)
	}
	var busy, logged, moved int
	if err := other.QueryRow("PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logged, &moved); err != nil || busy != 0 {
		t.Fatalf("checkpoint %s: busy %d, %v", path, busy, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	junk := make([]byte, pageSize)
	for i := range junk {
		junk[i] = byte(i*31 + 7)
	}
	for off := pageSize; off < fi.Size(); off += pageSize {
		if _, err := f.WriteAt(junk, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Exec("PRAGMA user_version = 7"); err != nil {
		t.Fatal(err)
	}
}

// A queue file damaged under a running loader stops it with the error
// (queue.ErrCorrupt, naming the file) at the first receive: no retry at
// WARN, which a damaged file never gets past, and no message refused for it.
func TestDamagedQueueStopsTheLoopAtReceive(t *testing.T) {
	e := newEnv(t)
	e.fetch(feed.Availability)
	damageQueue(t, e.queuePath())
	done, db := e.start(context.Background(), consume.Config{Wait: time.Millisecond})
	err := await(t, done, "the stop on a damaged queue")
	if !errors.Is(err, queue.ErrCorrupt) || !strings.Contains(err.Error(), e.queuePath()) {
		t.Fatalf("Run returned %v; want queue.ErrCorrupt naming %s", err, e.queuePath())
	}
	if strings.Contains(e.logs.String(), "receive failed; retrying") {
		t.Errorf("the damaged queue was retried:\n%s", e.logs)
	}
	db.Close()
	if n := dbtest.Count(t, e.dbPath(), "rejections", ""); n != 0 {
		t.Fatalf("%d messages refused because the queue is damaged", n)
	}
}

// Damage found by the calls that settle a batch (the delete after commit,
// the heartbeat) lets the batch finish, then stops the loop with the error:
// what was applied stays applied, and nothing is refused or dead-lettered
// for it.
func TestDamagedQueueStopsTheLoopAfterTheBatch(t *testing.T) {
	e := newEnv(t)
	res := e.fetch(feed.Availability)
	slow := &gatedStore{Store: e.store, entered: make(chan struct{}), release: make(chan struct{})}
	beats := &heartbeatErrors{Queue: e.queue, seen: make(chan error, 10)}
	done, db := e.start(context.Background(), consume.Config{Queue: beats, Store: slow, Wait: time.Millisecond, Visibility: 2 * time.Minute})
	await(t, slow.entered, "the read")
	blockUntil(t, e.clock, 1) // the heartbeat's ticker
	damageQueue(t, e.queuePath())
	e.clock.Advance(time.Minute)
	if err := await(t, beats.seen, "the heartbeat"); !errors.Is(err, queue.ErrCorrupt) {
		t.Fatalf("the heartbeat on the damaged queue returned %v, want queue.ErrCorrupt", err)
	}
	close(slow.release)
	err := await(t, done, "the stop after the batch")
	if !errors.Is(err, queue.ErrCorrupt) || !strings.Contains(err.Error(), e.queuePath()) {
		t.Fatalf("Run returned %v; want queue.ErrCorrupt naming %s", err, e.queuePath())
	}
	db.Close()
	if n := dbtest.Count(t, e.dbPath(), "snapshots", "key = ? AND outcome = 'applied'", res.Key); n != 1 {
		t.Fatalf("ledger rows of the batch in hand = %d, want 1: the batch is finished before the stop", n)
	}
	if n := dbtest.Count(t, e.dbPath(), "rejections", ""); n != 0 {
		t.Fatalf("%d messages refused because the queue is damaged", n)
	}
	if strings.Contains(e.logs.String(), "dead-letter queue") {
		t.Errorf("a message was sent to the dead-letter queue because the queue is damaged:\n%s", e.logs)
	}
}

// heartbeatErrors reports the error of every visibility change.
type heartbeatErrors struct {
	queue.Queue
	seen chan error
}

func (h *heartbeatErrors) ChangeVisibility(ctx context.Context, d time.Duration, ds ...queue.Delivery) error {
	err := h.Queue.ChangeVisibility(ctx, d, ds...)
	select {
	case h.seen <- err:
	default:
	}
	return err
}
