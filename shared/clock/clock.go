// Package clock holds time as this system reads and writes it: the zone its
// users live in, the time formats of the original Python project, the clock
// the long-running loops wait on (real, or a fake that tests advance by
// hand), and the backoff of every retry.
package clock

import (
	"fmt"
	"strings"
	"time"
)

// Taipei is Asia/Taipei, the zone of the city, its feeds and their users.
// Taiwan has had no daylight saving time since 1979, so a fixed zone needs no
// tzdata in the binary.
var Taipei = time.FixedZone("Asia/Taipei", 8*3600)

// ParsePython reads a time the original project wrote: Python's isoformat()
// with the +08:00 offset (and microseconds when not zero), or without an
// offset, which the original meant as Taipei time.
func ParsePython(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	for _, layout := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999", "20060102_150405"} {
		if t, err := time.ParseInLocation(layout, s, Taipei); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q: not ISO 8601", s)
}

// Clock is what a loop reads the time from and waits on. Code that waits
// takes a Clock instead of calling package time, so that its tests can
// advance time by hand (Fake) instead of sleeping.
type Clock interface {
	Now() time.Time
	// NewTimer fires once, d from now, on its channel.
	NewTimer(d time.Duration) Timer
	// NewTicker fires every d on its channel; d must be positive.
	NewTicker(d time.Duration) Ticker
	// AfterFunc calls f in its own goroutine d from now. The timer's C is nil.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a *time.Timer behind an interface.
type Timer interface {
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it was pending.
	Stop() bool
}

// Ticker is a *time.Ticker behind an interface.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

// Real is the system clock.
type Real struct{}

var _ Clock = Real{}

func (Real) Now() time.Time { return time.Now() }

func (Real) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

func (Real) NewTicker(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }

func (Real) AfterFunc(d time.Duration, f func()) Timer { return realTimer{time.AfterFunc(d, f)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time { return r.t.C }
func (r realTimer) Stop() bool          { return r.t.Stop() }

type realTicker struct{ t *time.Ticker }

func (r realTicker) C() <-chan time.Time { return r.t.C }
func (r realTicker) Stop()               { r.t.Stop() }

// Or returns c, or the real clock when c is nil: the default of every
// configuration's Clock field.
func Or(c Clock) Clock {
	if c == nil {
		return Real{}
	}
	return c
}
