package schedule

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/clock"
)

func TestEveryAlignsToTheClock(t *testing.T) {
	e := Every{D: 5 * time.Minute}
	at := time.Date(2026, 11, 26, 10, 2, 31, 0, time.UTC)
	if got, want := e.Next(at), time.Date(2026, 11, 26, 10, 5, 0, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("Next(%v) = %v, want %v", at, got, want)
	}
	on := time.Date(2026, 11, 26, 10, 5, 0, 0, time.UTC)
	if got, want := e.Next(on), on.Add(5*time.Minute); !got.Equal(want) {
		t.Fatalf("Next(%v) = %v, want %v (never the same instant twice)", on, got, want)
	}
}

func TestDailyIsInTaipeiTime(t *testing.T) {
	d := Daily{Hour: 2, Loc: clock.Taipei}
	cases := []struct{ after, want time.Time }{
		// 17:59 UTC is 01:59 in Taipei: the run is a minute later, the same Taipei day.
		{time.Date(2026, 11, 25, 17, 59, 0, 0, time.UTC), time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC)},
		// 18:00 UTC is exactly 02:00 in Taipei: the next run is a day later.
		{time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC), time.Date(2026, 11, 26, 18, 0, 0, 0, time.UTC)},
		{time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC), time.Date(2026, 11, 26, 18, 0, 0, 0, time.UTC)},
	}
	for _, c := range cases {
		if got := d.Next(c.after); !got.Equal(c.want) {
			t.Errorf("Next(%v) = %v, want %v", c.after, got.UTC(), c.want)
		}
	}
}

// Run waits on its clock: each job runs when the clock reaches its time, in
// the order they fall due, and a failing job does not stop the others.
func TestRunWaitsOnTheClock(t *testing.T) {
	start := time.Date(2026, 11, 25, 17, 58, 30, 0, time.UTC) // 01:58:30 in Taipei
	clk := clock.NewFake(start)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type ran struct {
		job string
		at  time.Time
	}
	runs := make(chan ran, 10)
	job := func(name string, err error) func(context.Context) error {
		return func(context.Context) error { runs <- ran{name, clk.Now()}; return err }
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, slog.New(slog.DiscardHandler), clk,
			Job{Name: "lots", Spec: Daily{Hour: 2, Loc: clock.Taipei}, Run: job("lots", nil)},
			Job{Name: "availability", Spec: Every{D: time.Minute}, Run: job("availability", errors.New("feed down")),
				AtStart: func(context.Context) bool { return true }},
		)
	}()
	want := []ran{
		{"availability", start},
		{"availability", start.Add(30 * time.Second)},  // 17:59:00
		{"lots", start.Add(90 * time.Second)},          // 02:00 in Taipei; first of the two due: listed first
		{"availability", start.Add(90 * time.Second)},  // 18:00:00
		{"availability", start.Add(150 * time.Second)}, // 18:01:00
	}
	// next waits for a run; the guard only turns a missing run into a failure.
	next := func() ran {
		t.Helper()
		select {
		case r := <-runs:
			return r
		case <-time.After(30 * time.Second):
			t.Fatal("no job ran")
			return ran{}
		}
	}
	if got := next(); got != want[0] {
		t.Fatalf("at start: %+v, want %+v", got, want[0])
	}
	for _, w := range want[1:] {
		if d := w.at.Sub(clk.Now()); d > 0 {
			ctx, stop := context.WithTimeout(context.Background(), 30*time.Second)
			if err := clk.BlockUntil(ctx, 1); err != nil {
				t.Fatal(err)
			}
			stop()
			clk.Advance(d - time.Millisecond)
			select {
			case got := <-runs:
				t.Fatalf("%+v ran early", got)
			default:
			}
			clk.Advance(time.Millisecond)
		}
		if got := next(); got.job != w.job || !got.at.Equal(w.at) {
			t.Fatalf("ran %+v, want %+v", got, w)
		}
	}
	cancel()
	<-done
}
