package sqlitequeue

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/queue"
)

// clock is a settable clock for Options.Now: visibility timeouts expire when
// the test says so, never by sleeping.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 3, 4, 5, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func openQueue(t *testing.T, path string, opts Options) *Queue {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "queue.db")
	}
	q, err := Open(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func send(t *testing.T, q *Queue, bodies ...string) {
	t.Helper()
	bs := make([][]byte, len(bodies))
	for i, b := range bodies {
		bs[i] = []byte(b)
	}
	if err := q.Send(context.Background(), bs...); err != nil {
		t.Fatal(err)
	}
}

// receive does a non-waiting receive.
func receive(t *testing.T, q *Queue, max int, visibility time.Duration) []queue.Delivery {
	t.Helper()
	ds, err := q.Receive(context.Background(), max, 0, visibility)
	if err != nil {
		t.Fatal(err)
	}
	if ds == nil {
		t.Fatal("Receive returned a nil slice; want an empty one")
	}
	return ds
}

func receiveOne(t *testing.T, q *Queue, visibility time.Duration) queue.Delivery {
	t.Helper()
	ds := receive(t, q, 1, visibility)
	if len(ds) != 1 {
		t.Fatalf("received %d messages, want 1", len(ds))
	}
	return ds[0]
}

func assertLen(t *testing.T, q *Queue, visible, inFlight int) {
	t.Helper()
	v, f, err := q.Len(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if v != visible || f != inFlight {
		t.Fatalf("Len = %d visible, %d in flight; want %d, %d", v, f, visible, inFlight)
	}
}

func TestSendReceiveDelete(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "data", "queue.db") // Open creates data/
	q := openQueue(t, path, Options{Now: clk.Now})
	if q.String() != "sqlite://"+path {
		t.Fatalf("String() = %q", q.String())
	}
	ctx := context.Background()
	send(t, q, "a", "b", "c")
	assertLen(t, q, 3, 0)

	ds := receive(t, q, 10, time.Minute)
	if len(ds) != 3 {
		t.Fatalf("received %d, want 3", len(ds))
	}
	for i, d := range ds {
		if want := string(rune('a' + i)); string(d.Body) != want {
			t.Errorf("message %d body %q, want %q (send order)", i, d.Body, want)
		}
		if d.ReceiveCount != 1 || d.ID == "" || d.Handle == "" || !d.SentAt.Equal(clk.Now()) {
			t.Errorf("message %d: %+v", i, d)
		}
	}
	assertLen(t, q, 0, 3)
	if got := receive(t, q, 10, time.Minute); len(got) != 0 {
		t.Fatalf("in-flight messages delivered again: %d", len(got))
	}
	if err := q.Delete(ctx, ds...); err != nil {
		t.Fatal(err)
	}
	assertLen(t, q, 0, 0)
	clk.Advance(time.Hour)
	if got := receive(t, q, 10, time.Minute); len(got) != 0 {
		t.Fatalf("deleted messages delivered again: %d", len(got))
	}
}

func TestReceiveMax(t *testing.T) {
	q := openQueue(t, "", Options{Now: newClock().Now})
	send(t, q, "1", "2", "3", "4", "5")
	if got := receive(t, q, 2, time.Minute); len(got) != 2 || string(got[0].Body) != "1" {
		t.Fatalf("first receive: %d messages", len(got))
	}
	if got := receive(t, q, 0, time.Minute); len(got) != 1 || string(got[0].Body) != "3" {
		t.Fatalf("max 0 is taken as 1: got %d", len(got))
	}
	assertLen(t, q, 2, 3)
}

func TestVisibilityTimeoutRedelivers(t *testing.T) {
	clk := newClock()
	q := openQueue(t, "", Options{Now: clk.Now})
	send(t, q, "m")
	first := receiveOne(t, q, 30*time.Second)

	clk.Advance(29 * time.Second)
	if got := receive(t, q, 1, 30*time.Second); len(got) != 0 {
		t.Fatal("delivered again before its visibility timeout ran out")
	}
	clk.Advance(time.Second)
	second := receiveOne(t, q, 30*time.Second)
	if second.ID != first.ID || string(second.Body) != "m" || second.ReceiveCount != 2 {
		t.Fatalf("redelivery: %+v, first %+v", second, first)
	}
	if second.Handle == first.Handle {
		t.Fatal("a new receive must get a new receipt handle")
	}
	if !second.SentAt.Equal(first.SentAt) {
		t.Fatalf("SentAt changed: %v, %v", second.SentAt, first.SentAt)
	}
}

func TestChangeVisibility(t *testing.T) {
	clk := newClock()
	q := openQueue(t, "", Options{Now: clk.Now})
	ctx := context.Background()
	send(t, q, "m")
	d := receiveOne(t, q, time.Hour)

	if err := q.ChangeVisibility(ctx, 0, d); err != nil {
		t.Fatal(err)
	}
	assertLen(t, q, 1, 0)
	d2 := receiveOne(t, q, time.Minute) // no clock change needed
	if d2.ReceiveCount != 2 {
		t.Fatalf("ReceiveCount %d, want 2", d2.ReceiveCount)
	}

	// Extending a lease (a heartbeat): the original timeout passes, the message stays hidden.
	if err := q.ChangeVisibility(ctx, 10*time.Minute, d2); err != nil {
		t.Fatal(err)
	}
	clk.Advance(5 * time.Minute)
	if got := receive(t, q, 1, time.Minute); len(got) != 0 {
		t.Fatal("extended message delivered before its new timeout")
	}
	clk.Advance(5 * time.Minute)
	if d3 := receiveOne(t, q, time.Minute); d3.ReceiveCount != 3 {
		t.Fatalf("ReceiveCount %d, want 3", d3.ReceiveCount)
	}
}

func TestStaleHandle(t *testing.T) {
	clk := newClock()
	q := openQueue(t, "", Options{Now: clk.Now})
	ctx := context.Background()
	send(t, q, "m")
	old := receiveOne(t, q, time.Minute)
	clk.Advance(time.Minute)
	cur := receiveOne(t, q, time.Minute)

	if err := q.Delete(ctx, old); err != nil {
		t.Fatalf("Delete with a stale handle: %v, want nil (no effect)", err)
	}
	assertLen(t, q, 0, 1) // still there, still in flight for the current holder
	if err := q.ChangeVisibility(ctx, 0, old); !errors.Is(err, ErrStaleHandle) {
		t.Fatalf("ChangeVisibility with a stale handle: %v, want ErrStaleHandle", err)
	}
	assertLen(t, q, 0, 1)
	if err := q.DeadLetter(ctx, old, "x"); !errors.Is(err, ErrStaleHandle) {
		t.Fatalf("DeadLetter with a stale handle: %v, want ErrStaleHandle", err)
	}
	if dls, _ := q.DeadLetters(ctx); len(dls) != 0 {
		t.Fatalf("stale DeadLetter moved the message: %+v", dls)
	}

	if err := q.Delete(ctx, cur); err != nil {
		t.Fatal(err)
	}
	assertLen(t, q, 0, 0)
	// Deleting twice is harmless; extending a deleted message is not.
	if err := q.Delete(ctx, cur); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	if err := q.ChangeVisibility(ctx, time.Minute, cur); !errors.Is(err, ErrStaleHandle) {
		t.Fatalf("ChangeVisibility after Delete: %v, want ErrStaleHandle", err)
	}

	for _, bad := range []queue.Delivery{{Handle: ""}, {Handle: "x.y"}, {Handle: "1"}, {ID: "2", Handle: cur.Handle}} {
		if err := q.Delete(ctx, bad); !errors.Is(err, ErrStaleHandle) {
			t.Errorf("Delete(%+v): %v, want ErrStaleHandle for a malformed handle", bad, err)
		}
	}
}

// A handle stays good after its visibility timeout as long as nobody received
// the message again: the slow worker's Delete still counts.
func TestHandleValidAfterTimeoutUntilReceivedAgain(t *testing.T) {
	clk := newClock()
	q := openQueue(t, "", Options{Now: clk.Now})
	send(t, q, "m")
	d := receiveOne(t, q, time.Minute)
	clk.Advance(2 * time.Minute)
	assertLen(t, q, 1, 0)
	if err := q.Delete(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	assertLen(t, q, 0, 0)
}

func TestMaxReceiveDeadLettersAndRedrive(t *testing.T) {
	clk := newClock()
	q := openQueue(t, "", Options{Now: clk.Now, MaxReceive: 3})
	ctx := context.Background()
	send(t, q, "poison", "fine")
	var poisonID string
	for i := 1; i <= 3; i++ {
		ds := receive(t, q, 10, time.Minute)
		for _, d := range ds {
			if string(d.Body) == "fine" {
				if err := q.Delete(ctx, d); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if d.ReceiveCount != i {
				t.Fatalf("receive %d: ReceiveCount %d", i, d.ReceiveCount)
			}
			poisonID = d.ID
		}
		clk.Advance(time.Minute)
	}
	// The fourth attempt moves it aside instead of delivering it.
	if got := receive(t, q, 10, time.Minute); len(got) != 0 {
		t.Fatalf("delivered after MaxReceive: %+v", got)
	}
	assertLen(t, q, 0, 0)
	dls, err := q.DeadLetters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 || dls[0].ID != poisonID || string(dls[0].Body) != "poison" || dls[0].ReceiveCount != 3 ||
		!strings.Contains(dls[0].Reason, "received 3 times") || !dls[0].DeadAt.Equal(clk.Now()) {
		t.Fatalf("dead letters: %+v", dls)
	}

	n, err := q.Redrive(ctx)
	if err != nil || n != 1 {
		t.Fatalf("Redrive = %d, %v; want 1", n, err)
	}
	if dls, _ := q.DeadLetters(ctx); len(dls) != 0 {
		t.Fatalf("dead letters after redrive: %+v", dls)
	}
	d := receiveOne(t, q, time.Minute)
	if d.ID != poisonID || string(d.Body) != "poison" || d.ReceiveCount != 1 {
		t.Fatalf("redriven message: %+v", d)
	}
	// A new message after a redrive does not reuse the redriven ID.
	send(t, q, "new")
	if n := receiveOne(t, q, time.Minute); n.ID == poisonID {
		t.Fatalf("new message reused ID %s", n.ID)
	}
}

func TestDeadLetterWithReason(t *testing.T) {
	clk := newClock()
	q := openQueue(t, "", Options{Now: clk.Now})
	ctx := context.Background()
	send(t, q, "not json", "ok")
	d := receiveOne(t, q, time.Minute)
	if err := q.DeadLetter(ctx, d, "invalid message: not JSON"); err != nil {
		t.Fatal(err)
	}
	assertLen(t, q, 1, 0)
	dls, err := q.DeadLetters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 || dls[0].Reason != "invalid message: not JSON" || dls[0].ID != d.ID || dls[0].ReceiveCount != 1 {
		t.Fatalf("dead letters: %+v", dls)
	}
	// Its handle is dead with it.
	if err := q.Delete(ctx, d); err != nil {
		t.Fatalf("Delete after DeadLetter: %v", err)
	}
	if dls, _ := q.DeadLetters(ctx); len(dls) != 1 {
		t.Fatal("Delete with the old handle removed the dead letter")
	}
	if got := receiveOne(t, q, time.Minute); string(got.Body) != "ok" {
		t.Fatalf("next message %q", got.Body)
	}
}

// Two Queues on one file, as two processes would be: every message is
// delivered exactly once while the visibility timeout holds.
func TestConcurrentReceiversNeverShareAMessage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	qs := []*Queue{openQueue(t, path, Options{}), openQueue(t, path, Options{})}
	const n = 300
	bodies := make([]string, n)
	for i := range bodies {
		bodies[i] = fmt.Sprintf("m%03d", i)
	}
	// Send in batches from both, so sends also contend with each other.
	var wg sync.WaitGroup
	for i := 0; i < n; i += 10 {
		q := qs[(i/10)%2]
		wg.Go(func() {
			var batch [][]byte
			for _, b := range bodies[i : i+10] {
				batch = append(batch, []byte(b))
			}
			if err := q.Send(context.Background(), batch...); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()

	var mu sync.Mutex
	seen := map[string]int{}
	for w := range 4 {
		q := qs[w%2]
		wg.Go(func() {
			ctx := context.Background()
			for {
				ds, err := q.Receive(ctx, 7, 0, time.Hour)
				if err != nil {
					t.Error(err)
					return
				}
				if len(ds) == 0 {
					return // the rest is in flight with the other workers
				}
				mu.Lock()
				for _, d := range ds {
					seen[string(d.Body)]++
				}
				mu.Unlock()
				if err := q.Delete(ctx, ds...); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("%d distinct messages delivered, want %d", len(seen), n)
	}
	for b, c := range seen {
		if c != 1 {
			t.Errorf("%s delivered %d times", b, c)
		}
	}
	assertLen(t, qs[0], 0, 0)
}

type result struct {
	ds  []queue.Delivery
	err error
}

func receiveAsync(q *Queue, ctx context.Context, wait time.Duration) <-chan result {
	ch := make(chan result, 1)
	go func() {
		ds, err := q.Receive(ctx, 10, wait, time.Minute)
		ch <- result{ds, err}
	}()
	return ch
}

// guard fails the test instead of hanging it if the result never comes. It is
// a safety net, not synchronisation: a correct Receive answers long before.
func guard(t *testing.T, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("Receive did not return")
		return result{}
	}
}

// A Send through the same Queue wakes a waiting Receive at once: with an
// hour-long poll interval, only the wake-up can deliver the message.
func TestReceiveWakesOnSend(t *testing.T) {
	q := openQueue(t, "", Options{PollInterval: time.Hour})
	ch := receiveAsync(q, context.Background(), time.Hour)
	send(t, q, "wake")
	r := guard(t, ch)
	if r.err != nil || len(r.ds) != 1 || string(r.ds[0].Body) != "wake" {
		t.Fatalf("Receive: %+v, %v", r.ds, r.err)
	}
}

// ChangeVisibility(0) wakes waiters too (a retry made visible at once).
func TestReceiveWakesOnChangeVisibilityZero(t *testing.T) {
	q := openQueue(t, "", Options{PollInterval: time.Hour})
	send(t, q, "m")
	d := receiveOne(t, q, time.Hour)
	ch := receiveAsync(q, context.Background(), time.Hour)
	if err := q.ChangeVisibility(context.Background(), 0, d); err != nil {
		t.Fatal(err)
	}
	r := guard(t, ch)
	if r.err != nil || len(r.ds) != 1 || r.ds[0].ReceiveCount != 2 {
		t.Fatalf("Receive: %+v, %v", r.ds, r.err)
	}
}

// Another process's Send is found by polling.
func TestReceivePollsForOtherWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	consumer := openQueue(t, path, Options{PollInterval: 5 * time.Millisecond})
	producer := openQueue(t, path, Options{})
	ch := receiveAsync(consumer, context.Background(), time.Hour)
	send(t, producer, "from elsewhere")
	r := guard(t, ch)
	if r.err != nil || len(r.ds) != 1 {
		t.Fatalf("Receive: %+v, %v", r.ds, r.err)
	}
}

func TestReceiveCancel(t *testing.T) {
	q := openQueue(t, "", Options{PollInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	ch := receiveAsync(q, ctx, time.Hour)
	cancel()
	r := guard(t, ch)
	if !errors.Is(r.err, context.Canceled) {
		t.Fatalf("Receive after cancel: %v, want context.Canceled", r.err)
	}
}

func TestReceiveClose(t *testing.T) {
	q := openQueue(t, "", Options{PollInterval: time.Hour})
	ch := receiveAsync(q, context.Background(), time.Hour)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	r := guard(t, ch)
	if !errors.Is(r.err, ErrClosed) {
		t.Fatalf("Receive after Close: %v, want ErrClosed", r.err)
	}
	if err := q.Send(context.Background(), []byte("x")); err == nil {
		t.Fatal("Send after Close succeeded")
	}
}

func TestReceiveWaitExpiresEmpty(t *testing.T) {
	q := openQueue(t, "", Options{PollInterval: time.Millisecond})
	ds, err := q.Receive(context.Background(), 10, 10*time.Millisecond, time.Minute)
	if err != nil || ds == nil || len(ds) != 0 {
		t.Fatalf("Receive on an empty queue: %v, %v; want an empty slice and nil", ds, err)
	}
}

func TestPersistsAcrossOpen(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "queue.db")
	q, err := Open(context.Background(), path, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	send(t, q, "a", "b")
	d := receiveOne(t, q, time.Minute)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q2 := openQueue(t, path, Options{Now: clk.Now})
	assertLen(t, q2, 1, 1) // the in-flight one stays in flight
	if err := q2.Delete(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	if got := receiveOne(t, q2, time.Minute); string(got.Body) != "b" {
		t.Fatalf("got %q", got.Body)
	}
}

func TestOpenRejectsBadPath(t *testing.T) {
	for _, p := range []string{"", "x.db?mode=ro", "a#b"} {
		if _, err := Open(context.Background(), p, Options{}); err == nil {
			t.Errorf("Open(%q) succeeded", p)
		}
	}
}
