package schedule

import (
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
