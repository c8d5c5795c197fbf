// Package queuetest is the conformance suite of the queue contract: the
// tests every queue.Queue backend must pass, run by each backend's own tests
// (sqlitequeue on a file with a fake clock, sqsqueue against the SQS test
// server in real time), so that the embedded queue behaves as SQS does. A
// backend's own test file keeps only what is specific to it (a SQLite file
// shared by processes, SQS queue URLs and dead-letter attributes).
package queuetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/queue"
)

// Backend is one new, empty queue under test, with what the suite needs to
// make time pass and to look into the dead-letter queue.
type Backend struct {
	Queue queue.Queue
	// MaxReceive is the queue's redrive limit: a message received this many
	// times without a delete is moved to the dead-letter queue by the next
	// receive. The suite expects 2, and so receives no message a third time
	// except to see it moved.
	MaxReceive int
	// Now is the clock SentAt is read from.
	Now func() time.Time
	// Advance moves the queue's clock on by d, for a backend with a fake
	// clock. Nil for a real clock (SQS): the suite then lets time pass by
	// long-polling, never by sleeping.
	Advance func(d time.Duration)
	// DeadLetters returns every message in the dead-letter queue, and leaves
	// them there.
	DeadLetters func(t *testing.T) []DeadLetter
	// Waiting returns a context for one Receive and a channel that is closed
	// once that Receive has begun to wait for messages, so a test can send
	// while a receiver waits, not before.
	Waiting func(ctx context.Context) (context.Context, <-chan struct{})
}

// DeadLetter is a message in the dead-letter queue.
type DeadLetter struct {
	Body []byte
	// Reason is why it was dead-lettered ("" when the backend's own redrive
	// moved it without one, as SQS does).
	Reason string
}

// Open returns a new Backend for one test; it is called once per subtest.
type Open func(t *testing.T) Backend

// Run runs the whole suite, each test on a queue of its own.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(*testing.T, *suite)
	}{
		{"SendReceiveDeleteInBatches", testSendReceiveDeleteInBatches},
		{"ReceiveLimits", testReceiveLimits},
		{"SendRefusesUnsendable", testSendRefusesUnsendable},
		{"SendLargestBodies", testSendLargestBodies},
		{"InFlightIsHidden", testInFlightIsHidden},
		{"RedeliveryAfterVisibilityTimeout", testRedeliveryAfterVisibilityTimeout},
		{"ChangeVisibilityExtendAndRelease", testChangeVisibilityExtendAndRelease},
		{"StaleHandleAfterRedelivery", testStaleHandleAfterRedelivery},
		{"ChangeVisibilityPerMessage", testChangeVisibilityPerMessage},
		{"DeadLetterWithReason", testDeadLetterWithReason},
		{"RedriveAfterMaxReceive", testRedriveAfterMaxReceive},
		{"LongPollReturnsWhenAMessageArrives", testLongPollReturnsWhenAMessageArrives},
		{"CanceledReceive", testCanceledReceive},
		{"Close", testClose},
		{"EmptyWaitTellsAnEmptyQueue", testEmptyWait},
	}
	// What a backend promises of an interrupted Receive is tested where it
	// promises it; the others promise nothing (SQS may have taken messages).
	interruptible := []struct {
		name string
		fn   func(*testing.T, *suite)
	}{
		{"InterruptedReceiveTakesNothing", testInterruptedReceiveTakesNothing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := open(t)
			if b.MaxReceive != 2 {
				t.Fatalf("the backend's redrive limit is %d; the suite expects 2", b.MaxReceive)
			}
			tc.fn(t, &suite{t: t, Backend: b, q: b.Queue})
		})
	}
	for _, tc := range interruptible {
		t.Run(tc.name, func(t *testing.T) {
			b := open(t)
			if !b.Queue.Polling().Interruptible {
				// Not a skip: the backend makes no such promise, and the
				// consumer never interrupts its Receive.
				t.Logf("%s does not say its Receive can be interrupted; nothing to check", b.Queue)
				return
			}
			tc.fn(t, &suite{t: t, Backend: b, q: b.Queue})
		})
	}
}

// timeSlack allows for SQS's whole seconds and milliseconds and for clocks
// read a little apart.
const timeSlack = 2 * time.Second

// guardTime bounds how long the suite waits for a Receive that should
// already have returned. It is half of queue.MaxWait, so a Receive that sat
// out its whole wait instead of returning at once cannot pass for one that
// returned; it is a safety net, not synchronisation.
const guardTime = queue.MaxWait / 2

type suite struct {
	t *testing.T
	Backend
	q queue.Queue
}

func (s *suite) send(bodies ...string) {
	s.t.Helper()
	bs := make([][]byte, len(bodies))
	for i, b := range bodies {
		bs[i] = []byte(b)
	}
	if err := s.q.Send(context.Background(), bs...); err != nil {
		s.t.Fatal(err)
	}
}

func (s *suite) receive(wait, visibility time.Duration) []queue.Delivery {
	s.t.Helper()
	ds, err := s.q.Receive(context.Background(), queue.MaxBatch, wait, visibility)
	if err != nil {
		s.t.Fatal(err)
	}
	if ds == nil {
		s.t.Fatal("Receive returned a nil slice; want an empty one when nothing came")
	}
	return ds
}

func (s *suite) receiveOne(wait, visibility time.Duration) queue.Delivery {
	s.t.Helper()
	ds := s.receive(wait, visibility)
	if len(ds) != 1 {
		s.t.Fatalf("received %d messages, want 1: %+v", len(ds), ds)
	}
	return ds[0]
}

// receiveAll receives until n messages came, each receive returning 1 to
// MaxBatch of them and none twice, and returns them all.
func (s *suite) receiveAll(n int) []queue.Delivery {
	s.t.Helper()
	var got []queue.Delivery
	ids := map[string]bool{}
	for len(got) < n {
		ds := s.receive(s.after(0)+time.Second, time.Hour)
		if len(ds) == 0 || len(ds) > queue.MaxBatch {
			s.t.Fatalf("a receive returned %d messages after %d of %d", len(ds), len(got), n)
		}
		for _, d := range ds {
			if ids[d.ID] {
				s.t.Fatalf("message %s delivered twice while in flight", d.ID)
			}
			ids[d.ID] = true
		}
		got = append(got, ds...)
	}
	return got
}

// after lets d pass on the queue's clock and returns the wait for a receive
// that must see what became visible meanwhile: none with a fake clock, which
// moves at once; with a real one the receive's long poll waits for it.
func (s *suite) after(d time.Duration) time.Duration {
	if s.Advance != nil {
		s.Advance(d)
		return 0
	}
	return min(d+5*time.Second, queue.MaxWait)
}

// nothingFor checks that no message is delivered while d passes.
func (s *suite) nothingFor(d time.Duration) {
	s.t.Helper()
	wait := d
	if s.Advance != nil {
		s.Advance(d)
		wait = 0
	}
	if ds := s.receive(wait, time.Minute); len(ds) != 0 {
		s.t.Fatalf("delivered while it should be hidden: %+v", ds)
	}
}

type result struct {
	ds  []queue.Delivery
	err error
}

// waitingReceive starts a Receive of up to the longest wait and returns once
// it waits, with the channel its result arrives on.
func (s *suite) waitingReceive(ctx context.Context) <-chan result {
	s.t.Helper()
	ctx, waiting := s.Waiting(ctx)
	ch := make(chan result, 1)
	go func() {
		ds, err := s.q.Receive(ctx, queue.MaxBatch, queue.MaxWait, time.Minute)
		ch <- result{ds, err}
	}()
	select {
	case <-waiting:
	case r := <-ch:
		s.t.Fatalf("Receive on an empty queue returned before waiting: %+v, %v", r.ds, r.err)
	case <-time.After(guardTime):
		s.t.Fatal("Receive did not begin to wait")
	}
	return ch
}

func (s *suite) result(ch <-chan result) result {
	s.t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(guardTime):
		s.t.Fatalf("a waiting Receive did not return within %s", guardTime)
		return result{}
	}
}

func bodies(ds []queue.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = string(d.Body)
	}
	slices.Sort(out)
	return out
}

// More than a batch is sent in one call, received at most MaxBatch at a
// time, and deleted in one call.
func testSendReceiveDeleteInBatches(t *testing.T, s *suite) {
	ctx := context.Background()
	var want []string
	for i := range 25 {
		want = append(want, fmt.Sprintf(`{"n":%02d}`, i))
	}
	before := s.Now()
	s.send(want...)
	after := s.Now()

	got := s.receiveAll(len(want))
	for _, d := range got {
		if d.ID == "" || d.Handle == "" || d.ReceiveCount != 1 ||
			d.SentAt.Before(before.Add(-timeSlack)) || d.SentAt.After(after.Add(timeSlack)) {
			t.Errorf("delivery %+v: want an ID, a handle, ReceiveCount 1 and SentAt between %v and %v", d, before, after)
		}
	}
	if !slices.Equal(bodies(got), want) {
		t.Fatalf("bodies %q, want %q", bodies(got), want)
	}
	if err := s.q.Delete(ctx, got...); err != nil {
		t.Fatal(err)
	}
	// Deleted for good: their handles are stale, so they cannot be made
	// visible again, and nothing is left to receive.
	err := s.q.ChangeVisibility(ctx, 0, got...)
	if !errors.Is(err, queue.ErrStaleHandle) {
		t.Fatalf("ChangeVisibility of deleted messages: %v, want ErrStaleHandle", err)
	}
	if ds := s.receive(0, time.Minute); len(ds) != 0 {
		t.Fatalf("after deleting all, received %q", bodies(ds))
	}
}

// Receive's arguments outside SQS's limits are refused, not clamped; max
// bounds what one receive returns.
func testReceiveLimits(t *testing.T, s *suite) {
	ctx := context.Background()
	bad := []struct {
		max       int
		wait, vis time.Duration
		what      string
	}{
		{0, 0, time.Minute, "max 0"},
		{-1, 0, time.Minute, "max -1"},
		{queue.MaxBatch + 1, 0, time.Minute, "max 11"},
		{1, -time.Second, time.Minute, "negative wait"},
		{1, queue.MaxWait + time.Second, time.Minute, "wait over 20s"},
		{1, 0, -time.Second, "negative visibility"},
		{1, 0, queue.MaxVisibility + time.Second, "visibility over 12h"},
	}
	for _, b := range bad {
		if ds, err := s.q.Receive(ctx, b.max, b.wait, b.vis); err == nil {
			t.Errorf("Receive with %s succeeded: %+v", b.what, ds)
		}
	}
	if ds := s.receive(0, time.Minute); len(ds) != 0 {
		t.Fatalf("an empty queue delivered %+v", ds)
	}
	s.send("1", "2", "3", "4", "5")
	ds, err := s.q.Receive(ctx, 3, s.after(0)+time.Second, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) < 1 || len(ds) > 3 {
		t.Fatalf("Receive of at most 3 returned %d", len(ds))
	}
	if err := s.q.ChangeVisibility(ctx, queue.MaxVisibility+time.Second, ds...); err == nil {
		t.Error("ChangeVisibility over 12h succeeded")
	}
	if err := s.q.ChangeVisibility(ctx, -time.Second, ds...); err == nil {
		t.Error("ChangeVisibility with a negative timeout succeeded")
	}
}

// A body SQS would refuse fails the whole Send before anything is sent.
func testSendRefusesUnsendable(t *testing.T, s *suite) {
	ctx := context.Background()
	for name, body := range map[string][]byte{
		"empty":         {},
		"NUL":           []byte("bad \x00 body"),
		"not UTF-8":     []byte("caf\xe9"),
		"U+FFFE":        []byte("x\uFFFEx"),
		"over the size": bytes.Repeat([]byte("x"), queue.MaxBodyBytes+1),
	} {
		err := s.q.Send(ctx, []byte(`{"ok":0}`), body, []byte(`{"ok":2}`))
		if !errors.Is(err, queue.ErrUnsendable) || !strings.Contains(err.Error(), "message 1 ") {
			t.Errorf("Send with a body %s: %v, want ErrUnsendable naming message 1", name, err)
		}
	}
	if ds := s.receive(0, time.Minute); len(ds) != 0 {
		t.Fatalf("refused sends enqueued %q", bodies(ds))
	}
	// What SQS takes, the backend takes too. (SQS also takes characters
	// beyond U+FFFF, which the SQS test server refuses: they are left out.)
	ok := []string{"tab\tnewline\ncr\r", "新北市 板橋區", "\uE000\uFFFD"}
	s.send(ok...)
	want := slices.Clone(ok)
	slices.Sort(want)
	if got := s.receiveAll(len(ok)); !slices.Equal(bodies(got), want) {
		t.Fatalf("bodies %q, want %q", bodies(got), want)
	}
}

// Bodies of the largest size, more of them than fit in one SQS batch call
// by size, are all sent.
func testSendLargestBodies(t *testing.T, s *suite) {
	var want []string
	for i := range 5 {
		want = append(want, fmt.Sprintf("%d", i)+strings.Repeat("x", queue.MaxBodyBytes-1))
	}
	s.send(want...)
	if got := s.receiveAll(len(want)); !slices.Equal(bodies(got), want) {
		t.Fatal("the bodies received are not the bodies sent")
	}
}

// A message in flight is not delivered to anyone else.
func testInFlightIsHidden(t *testing.T, s *suite) {
	s.send("m")
	s.receiveOne(s.after(0)+time.Second, time.Hour)
	s.nothingFor(2 * time.Second)
}

// A message not deleted comes back after its visibility timeout: the same
// message with a new handle and one more receive.
func testRedeliveryAfterVisibilityTimeout(t *testing.T, s *suite) {
	s.send("again")
	first := s.receiveOne(s.after(0)+time.Second, time.Second)
	second := s.receiveOne(s.after(time.Second), time.Hour)
	if second.ID != first.ID || string(second.Body) != "again" || second.ReceiveCount != 2 || !second.SentAt.Equal(first.SentAt) {
		t.Fatalf("redelivery %+v, want message %s again with ReceiveCount 2 and SentAt %v", second, first.ID, first.SentAt)
	}
	if second.Handle == first.Handle {
		t.Fatal("a redelivery must have a new receipt handle")
	}
}

// ChangeVisibility extends a lease (the heartbeat) and releases a message at
// once (0: a retry without delay, or a graceful stop).
func testChangeVisibilityExtendAndRelease(t *testing.T, s *suite) {
	ctx := context.Background()
	s.send("m")
	d := s.receiveOne(s.after(0)+time.Second, time.Second)
	// Received for 1 s, extended to an hour: past the second it stays hidden.
	if err := s.q.ChangeVisibility(ctx, time.Hour, d); err != nil {
		t.Fatal(err)
	}
	s.nothingFor(2 * time.Second)
	if err := s.q.ChangeVisibility(ctx, 0, d); err != nil {
		t.Fatalf("release with the handle of an extended lease: %v", err)
	}
	again := s.receiveOne(s.after(0)+time.Second, time.Hour)
	if again.ID != d.ID || again.ReceiveCount != 2 {
		t.Fatalf("after the release received %+v, want message %s with ReceiveCount 2", again, d.ID)
	}
}

// The handle of an earlier receive no longer acts on the message: Delete
// quietly does nothing, ChangeVisibility and DeadLetter report
// ErrStaleHandle, and the current holder keeps the message.
func testStaleHandleAfterRedelivery(t *testing.T, s *suite) {
	ctx := context.Background()
	s.send("m")
	old := s.receiveOne(s.after(0)+time.Second, time.Second)
	cur := s.receiveOne(s.after(time.Second), time.Hour)
	if cur.ReceiveCount != 2 {
		t.Fatalf("ReceiveCount %d, want 2", cur.ReceiveCount)
	}
	if err := s.q.Delete(ctx, old); err != nil {
		t.Fatalf("Delete with a stale handle: %v, want nil and no effect", err)
	}
	if err := s.q.ChangeVisibility(ctx, 0, old); !errors.Is(err, queue.ErrStaleHandle) {
		t.Fatalf("ChangeVisibility with a stale handle: %v, want ErrStaleHandle", err)
	}
	if err := s.q.DeadLetter(ctx, old, "with a stale handle"); !errors.Is(err, queue.ErrStaleHandle) {
		t.Fatalf("DeadLetter with a stale handle: %v, want ErrStaleHandle", err)
	}
	if dl := s.DeadLetters(t); len(dl) != 0 {
		t.Fatalf("a stale DeadLetter moved %+v", dl)
	}
	// Still the current holder's, and still hidden for it.
	s.nothingFor(time.Second)
	if err := s.q.ChangeVisibility(ctx, time.Hour, cur); err != nil {
		t.Fatalf("the current handle after the stale calls: %v", err)
	}
	if err := s.q.Delete(ctx, cur); err != nil {
		t.Fatal(err)
	}
	if err := s.q.Delete(ctx, cur); err != nil {
		t.Fatalf("a second Delete: %v, want nil", err)
	}
	if err := s.q.ChangeVisibility(ctx, 0, cur); !errors.Is(err, queue.ErrStaleHandle) {
		t.Fatalf("ChangeVisibility after Delete: %v, want ErrStaleHandle", err)
	}
	if ds := s.receive(0, time.Minute); len(ds) != 0 {
		t.Fatalf("a deleted message came back: %+v", ds)
	}
}

// One stale handle among several does not stop the others from changing: a
// heartbeat keeps extending the messages it still holds.
func testChangeVisibilityPerMessage(t *testing.T, s *suite) {
	ctx := context.Background()
	s.send("a")
	a1 := s.receiveOne(s.after(0)+time.Second, time.Second)
	s.send("b")
	b1 := s.receiveOne(s.after(0)+time.Second, time.Hour)
	a2 := s.receiveOne(s.after(time.Second), time.Hour) // a1 is stale now
	if string(a2.Body) != "a" || string(b1.Body) != "b" {
		t.Fatalf("received %q then %q, want b then a", b1.Body, a2.Body)
	}
	err := s.q.ChangeVisibility(ctx, 0, a1, b1)
	if !errors.Is(err, queue.ErrStaleHandle) {
		t.Fatalf("ChangeVisibility with one stale handle of two: %v, want ErrStaleHandle", err)
	}
	// b was released all the same; a stays with a2's holder.
	ds := s.receive(s.after(0)+time.Second, time.Hour)
	if len(ds) != 1 || string(ds[0].Body) != "b" || ds[0].ReceiveCount != 2 {
		t.Fatalf("after the release received %+v, want b alone, received twice", ds)
	}
}

// DeadLetter moves a message that can never succeed out of the queue at
// once, with its reason; the messages behind it go on.
func testDeadLetterWithReason(t *testing.T, s *suite) {
	ctx := context.Background()
	s.send("poison", "good")
	ds := s.receiveAll(2)
	poison, good := ds[0], ds[1]
	if string(poison.Body) != "poison" {
		poison, good = good, poison
	}
	const reason = "sha256 mismatch: got 00ff, message says ffee"
	if err := s.q.DeadLetter(ctx, poison, reason); err != nil {
		t.Fatal(err)
	}
	dl := s.DeadLetters(t)
	if len(dl) != 1 || string(dl[0].Body) != "poison" || dl[0].Reason != reason {
		t.Fatalf("dead letters %+v, want poison with the reason %q", dl, reason)
	}
	if err := s.q.Delete(ctx, poison); err != nil {
		t.Fatalf("Delete with the handle of a dead-lettered message: %v, want nil", err)
	}
	if err := s.q.ChangeVisibility(ctx, 0, good); err != nil {
		t.Fatal(err)
	}
	if d := s.receiveOne(s.after(0)+time.Second, time.Hour); string(d.Body) != "good" {
		t.Fatalf("received %q, want the good message", d.Body)
	}
	s.nothingFor(time.Second)
	if dl := s.DeadLetters(t); len(dl) != 1 {
		t.Fatalf("dead letters after the rest went on: %+v", dl)
	}
}

// A message received MaxReceive times without a delete is moved to the
// dead-letter queue by the next receive instead of being delivered again.
func testRedriveAfterMaxReceive(t *testing.T, s *suite) {
	s.send("crashes the loader")
	var n int
	for i := 1; i <= s.MaxReceive; i++ {
		wait := s.after(0) + time.Second
		if i > 1 {
			wait = s.after(time.Second)
		}
		d := s.receiveOne(wait, time.Second)
		if n = d.ReceiveCount; n != i {
			t.Fatalf("receive %d: ReceiveCount %d", i, n)
		}
	}
	s.nothingFor(3 * time.Second)
	dl := s.DeadLetters(t)
	if len(dl) != 1 || string(dl[0].Body) != "crashes the loader" {
		t.Fatalf("dead letters %+v after %d receives, want the message", dl, n)
	}
}

// A Receive waiting for messages returns as soon as one is sent, not at the
// end of its wait.
func testLongPollReturnsWhenAMessageArrives(t *testing.T, s *suite) {
	ch := s.waitingReceive(context.Background())
	s.send("wake up")
	r := s.result(ch)
	if r.err != nil || len(r.ds) != 1 || string(r.ds[0].Body) != "wake up" {
		t.Fatalf("the waiting Receive returned %+v, %v", r.ds, r.err)
	}
}

func testCanceledReceive(t *testing.T, s *suite) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := s.waitingReceive(ctx)
	cancel()
	if r := s.result(ch); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("a Receive whose context was canceled: %+v, %v; want context.Canceled", r.ds, r.err)
	}
}

// A Receive that waits Polling().EmptyWait finds a visible message, and
// comes back empty only when none is: a drain stops on such an answer.
func testEmptyWait(t *testing.T, s *suite) {
	wait := s.q.Polling().EmptyWait
	if wait < 0 || wait > queue.MaxWait {
		t.Fatalf("EmptyWait %s: want 0 to %s", wait, queue.MaxWait)
	}
	for i := range 3 {
		s.send(fmt.Sprintf("m%d", i))
		ds := s.receive(wait, time.Hour)
		if len(ds) != 1 {
			t.Fatalf("a receive waiting %s after send %d returned %d messages, want the one visible", wait, i, len(ds))
		}
		if err := s.q.Delete(context.Background(), ds...); err != nil {
			t.Fatal(err)
		}
	}
	if ds := s.receive(wait, time.Hour); len(ds) != 0 {
		t.Fatalf("a receive waiting %s on an empty queue returned %q", wait, bodies(ds))
	}
}

// Where Polling says a Receive can be interrupted, one cancelled while it
// waits, or called with a context already done, takes no message: the
// message is then delivered as if that Receive had never been.
func testInterruptedReceiveTakesNothing(t *testing.T, s *suite) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := s.waitingReceive(ctx)
	cancel()
	if r := s.result(ch); !errors.Is(r.err, context.Canceled) || len(r.ds) != 0 {
		t.Fatalf("a Receive interrupted while it waited: %+v, %v; want nothing and context.Canceled", r.ds, r.err)
	}
	s.send("stays")
	if ds, err := s.q.Receive(ctx, queue.MaxBatch, queue.MaxWait, time.Hour); !errors.Is(err, context.Canceled) || len(ds) != 0 {
		t.Fatalf("a Receive with its context already done: %+v, %v; want nothing and context.Canceled", ds, err)
	}
	d := s.receiveOne(s.after(0)+time.Second, time.Hour)
	if string(d.Body) != "stays" || d.ReceiveCount != 1 {
		t.Fatalf("after the interrupted receives: %q with ReceiveCount %d; want it untouched (1)", d.Body, d.ReceiveCount)
	}
}

// Close ends a waiting Receive; every later call fails with ErrClosed; a
// second Close is harmless.
func testClose(t *testing.T, s *suite) {
	ctx := context.Background()
	s.send("m")
	d := s.receiveOne(s.after(0)+time.Second, time.Hour)
	ch := s.waitingReceive(ctx)
	if err := s.q.Close(); err != nil {
		t.Fatal(err)
	}
	if r := s.result(ch); !errors.Is(r.err, queue.ErrClosed) {
		t.Fatalf("a Receive waiting during Close: %+v, %v; want ErrClosed", r.ds, r.err)
	}
	if err := s.q.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
	checks := map[string]error{
		"Send":             s.q.Send(ctx, []byte("x")),
		"Delete":           s.q.Delete(ctx, d),
		"ChangeVisibility": s.q.ChangeVisibility(ctx, 0, d),
		"DeadLetter":       s.q.DeadLetter(ctx, d, "closed"),
	}
	_, checks["Receive"] = s.q.Receive(ctx, 1, 0, time.Minute)
	for name, err := range checks {
		if !errors.Is(err, queue.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}
