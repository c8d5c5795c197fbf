package clock

import (
	"math/rand/v2"
	"time"
)

// Backoff says how long to wait before each retry of something that failed:
// First before the first, then doubling (or growing by First, when Linear)
// up to Max, spread by jitter so that clients failing together do not retry
// together. The zero value never waits.
type Backoff struct {
	First, Max time.Duration
	// Linear makes the n-th delay n×First instead of First×2^(n-1).
	Linear bool
	// Jitter spreads each delay d uniformly over [d×(1-Jitter), d×(1+Jitter)).
	Jitter float64
	// FullJitter draws each delay uniformly from [0, d) instead ("full
	// jitter"): the widest spread, for clients that all fail at once.
	FullJitter bool
}

// Delay is the wait before retry number attempt (counted from 1).
func (b Backoff) Delay(attempt int) time.Duration {
	return b.delay(attempt, rand.Float64())
}

// delay is Delay with the random draw r in [0, 1) given.
func (b Backoff) delay(attempt int, r float64) time.Duration {
	d := b.First
	for i := 1; i < attempt && d < b.Max; i++ {
		if b.Linear {
			d += b.First
		} else {
			d *= 2
		}
	}
	d = min(d, b.Max)
	switch {
	case b.FullJitter:
		return time.Duration(float64(d) * r)
	case b.Jitter > 0:
		return time.Duration(float64(d) * (1 - b.Jitter + 2*b.Jitter*r))
	}
	return d
}
