package clock

import (
	"testing"
	"time"
)

func TestParsePython(t *testing.T) {
	want := time.Date(2026, 1, 31, 23, 55, 0, 123456000, Taipei)
	for _, s := range []string{"2026-01-31T23:55:00.123456+08:00", "2026-01-31T23:55:00.123456", "2026-01-31 23:55:00.123456"} {
		got, err := ParsePython(s)
		if err != nil || !got.Equal(want) {
			t.Errorf("%q: %v, %v", s, got, err)
		}
	}
	if _, err := ParsePython("yesterday"); err == nil {
		t.Error("no error for a bad time")
	}
}

// TestBackoff covers the three shapes the code retries with: the consume
// loop's message backoff (doubling, ±20%), its receive-failure delay
// (linear, no jitter) and the feed client's full jitter.
func TestBackoff(t *testing.T) {
	message := Backoff{First: 10 * time.Second, Max: 15 * time.Minute, Jitter: 0.2}
	receive := Backoff{First: time.Second, Max: 30 * time.Second, Linear: true}
	feed := Backoff{First: 500 * time.Millisecond, Max: 30 * time.Second, FullJitter: true}
	const top = 1 - 1e-9 // the largest draw, just under 1
	cases := []struct {
		name    string
		b       Backoff
		attempt int
		r       float64
		want    time.Duration
	}{
		{"message first, low", message, 1, 0, 8 * time.Second},
		{"message first, middle", message, 1, 0.5, 10 * time.Second},
		{"message third, middle", message, 3, 0.5, 40 * time.Second},
		{"message capped", message, 50, 0.5, 15 * time.Minute},
		{"message capped, high", message, 50, 1, 18 * time.Minute},
		{"receive first", receive, 1, 0.9, time.Second},
		{"receive fifth", receive, 5, 0.9, 5 * time.Second},
		{"receive capped", receive, 31, 0.9, 30 * time.Second},
		{"feed first, none", feed, 1, 0, 0},
		{"feed first, half", feed, 1, 0.5, 250 * time.Millisecond},
		{"feed fourth, half", feed, 4, 0.5, 2 * time.Second},
		{"feed capped, half", feed, 40, 0.5, 15 * time.Second},
		{"zero value", Backoff{}, 3, 0.5, 0},
	}
	for _, c := range cases {
		if got := c.b.delay(c.attempt, c.r); got != c.want {
			t.Errorf("%s: delay(%d, %v) = %v, want %v", c.name, c.attempt, c.r, got, c.want)
		}
	}
	if got := feed.delay(1, top); got >= 500*time.Millisecond {
		t.Errorf("full jitter reached its ceiling: %v", got)
	}
	// The random draw stays inside the bounds.
	for range 1000 {
		if d := message.Delay(2); d < 16*time.Second || d >= 24*time.Second {
			t.Fatalf("message Delay(2) = %v, outside [16s, 24s)", d)
		}
		if d := feed.Delay(2); d < 0 || d >= time.Second {
			t.Fatalf("feed Delay(2) = %v, outside [0, 1s)", d)
		}
	}
}
