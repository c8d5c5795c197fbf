package clock

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Fake is a Clock for tests: time stands still until Advance moves it, and
// Advance fires, in time order, every timer and ticker that falls due. A
// test waits for the code under test to be waiting (Waiters, BlockUntil)
// instead of sleeping.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	waiters []*fakeWaiter
	// changed is closed and replaced whenever the set of waiters changes.
	changed chan struct{}
}

var _ Clock = (*Fake)(nil)

// NewFake returns a fake clock standing at now.
func NewFake(now time.Time) *Fake {
	return &Fake{now: now, changed: make(chan struct{})}
}

// fakeWaiter is a pending timer, ticker or AfterFunc.
type fakeWaiter struct {
	f      *Fake
	when   time.Time
	period time.Duration // a ticker's; 0 for a timer
	c      chan time.Time
	fn     func()
}

func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *Fake) NewTimer(d time.Duration) Timer {
	return f.add(&fakeWaiter{when: f.Now().Add(d), c: make(chan time.Time, 1)})
}

func (f *Fake) NewTicker(d time.Duration) Ticker {
	if d <= 0 {
		panic(fmt.Sprintf("clock: non-positive ticker interval %v", d))
	}
	return fakeTicker{f.add(&fakeWaiter{when: f.Now().Add(d), period: d, c: make(chan time.Time, 1)})}
}

type fakeTicker struct{ w *fakeWaiter }

func (t fakeTicker) C() <-chan time.Time { return t.w.c }
func (t fakeTicker) Stop()               { t.w.Stop() }

func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	return f.add(&fakeWaiter{when: f.Now().Add(d), fn: fn})
}

// add registers w, or fires it at once when it is already due (a timer of
// zero or less, as package time fires it).
func (f *Fake) add(w *fakeWaiter) *fakeWaiter {
	w.f = f
	f.mu.Lock()
	defer f.mu.Unlock()
	if w.period == 0 && !w.when.After(f.now) {
		w.fire(f.now)
		return w
	}
	f.waiters = append(f.waiters, w)
	f.notify()
	return w
}

// fire delivers a timer's time or runs its function.
func (w *fakeWaiter) fire(now time.Time) {
	if w.fn != nil {
		go w.fn()
		return
	}
	w.c <- now
}

// notify wakes BlockUntil; f.mu is held.
func (f *Fake) notify() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// remove drops w from the pending set and reports whether it was there; f.mu is held.
func (f *Fake) remove(w *fakeWaiter) bool {
	for i, x := range f.waiters {
		if x == w {
			f.waiters = append(f.waiters[:i], f.waiters[i+1:]...)
			f.notify()
			return true
		}
	}
	return false
}

func (w *fakeWaiter) C() <-chan time.Time { return w.c }

func (w *fakeWaiter) Stop() bool {
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	return w.f.remove(w)
}

// Advance moves the clock forward by d, firing on the way every timer and
// ticker that falls due, each at its own time. A tick that finds the
// ticker's channel full is dropped, as package time drops it.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	end := f.now.Add(d)
	for {
		var next *fakeWaiter
		for _, w := range f.waiters {
			if !w.when.After(end) && (next == nil || w.when.Before(next.when)) {
				next = w
			}
		}
		if next == nil {
			break
		}
		f.now = next.when
		if next.period > 0 {
			next.when = next.when.Add(next.period)
			select {
			case next.c <- f.now:
			default:
			}
			continue
		}
		f.remove(next)
		next.fire(f.now)
	}
	f.now = end
}

// Waiters is the number of timers, tickers and AfterFuncs pending.
func (f *Fake) Waiters() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.waiters)
}

// BlockUntil returns once at least n timers, tickers or AfterFuncs are
// pending: the goroutines under test have reached the point where they wait
// on the clock, so an Advance now reaches them. It fails when ctx ends first.
func (f *Fake) BlockUntil(ctx context.Context, n int) error {
	for {
		f.mu.Lock()
		have, changed := len(f.waiters), f.changed
		f.mu.Unlock()
		if have >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("clock: %d waiters after %w, want %d", have, ctx.Err(), n)
		case <-changed:
		}
	}
}
