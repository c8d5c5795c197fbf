package clock

import (
	"context"
	"testing"
	"time"
)

func TestFakeFiresInTimeOrder(t *testing.T) {
	start := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	f := NewFake(start)
	ctx := context.Background()

	timer := f.NewTimer(3 * time.Second)
	ticker := f.NewTicker(time.Second)
	fired := make(chan struct{})
	f.AfterFunc(2500*time.Millisecond, func() { close(fired) })
	stopped := f.NewTimer(time.Second)
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop of a pending timer must report true once")
	}
	if err := f.BlockUntil(ctx, 3); err != nil {
		t.Fatal(err)
	}

	f.Advance(999 * time.Millisecond)
	select {
	case <-ticker.C():
		t.Fatal("the ticker fired before its period")
	default:
	}
	f.Advance(time.Millisecond)
	if got := <-ticker.C(); !got.Equal(start.Add(time.Second)) {
		t.Fatalf("tick at %v, want %v", got, start.Add(time.Second))
	}
	if f.Waiters() != 3 {
		t.Fatalf("%d waiters after the first tick, want 3 (a ticker stays)", f.Waiters())
	}
	// Three more periods pass with nobody reading: one tick waits, the rest are dropped.
	f.Advance(2 * time.Second)
	if got := <-ticker.C(); !got.Equal(start.Add(2 * time.Second)) {
		t.Fatalf("kept tick at %v, want the first unread one at %v", got, start.Add(2*time.Second))
	}
	if got := <-timer.C(); !got.Equal(start.Add(3 * time.Second)) {
		t.Fatalf("timer fired at %v", got)
	}
	<-fired
	if !f.Now().Equal(start.Add(3 * time.Second)) {
		t.Fatalf("now %v", f.Now())
	}
	if timer.Stop() {
		t.Error("Stop of a fired timer reported true")
	}
	ticker.Stop()
	if n := f.Waiters(); n != 0 {
		t.Fatalf("%d waiters left", n)
	}

	// A timer of zero fires at once, as package time's does.
	if got := <-f.NewTimer(0).C(); !got.Equal(f.Now()) {
		t.Fatalf("zero timer fired at %v", got)
	}

	short, cancel := context.WithCancel(ctx)
	cancel()
	if err := f.BlockUntil(short, 1); err == nil {
		t.Fatal("BlockUntil returned nil with no waiter and a cancelled context")
	}
}

// BlockUntil returns as soon as a goroutine starts waiting.
func TestFakeBlockUntilSeesANewWaiter(t *testing.T) {
	f := NewFake(time.Unix(0, 0))
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-f.NewTimer(time.Minute).C()
	}()
	if err := f.BlockUntil(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	f.Advance(time.Minute)
	<-done
}
