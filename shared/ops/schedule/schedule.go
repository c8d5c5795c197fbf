// Package schedule holds the built-in schedule of `loader local`: jobs at
// fixed intervals aligned to the wall clock, or daily at a local time.
package schedule

import (
	"context"
	"log/slog"
	"time"
)

// Spec says when a job runs next after a given time.
type Spec interface {
	Next(after time.Time) time.Time
}

// Every runs at multiples of D since the Unix epoch (every 5 minutes: :00, :05, ...).
type Every struct{ D time.Duration }

func (e Every) Next(after time.Time) time.Time {
	return after.Truncate(e.D).Add(e.D)
}

// Daily runs once a day at Hour:Minute in Loc.
type Daily struct {
	Hour, Minute int
	Loc          *time.Location
}

func (d Daily) Next(after time.Time) time.Time {
	t := after.In(d.Loc)
	next := time.Date(t.Year(), t.Month(), t.Day(), d.Hour, d.Minute, 0, 0, d.Loc)
	if !next.After(t) {
		next = next.AddDate(0, 0, 1)
	}
	return next
}

// Job is a named task on a schedule.
type Job struct {
	Name string
	Spec Spec
	// AtStart, when set, decides whether the job also runs at once on start.
	AtStart func(ctx context.Context) bool
	Run     func(ctx context.Context) error
}

// Run runs each job on its schedule until ctx is done. Jobs run one at a
// time, in the order they fall due; a job's error is logged, not fatal.
func Run(ctx context.Context, log *slog.Logger, now func() time.Time, jobs ...Job) {
	if now == nil {
		now = time.Now
	}
	next := make([]time.Time, len(jobs))
	for i, j := range jobs {
		if j.AtStart != nil && j.AtStart(ctx) {
			run(ctx, log, j)
		}
		next[i] = j.Spec.Next(now())
	}
	for {
		i := 0
		for k := range jobs {
			if next[k].Before(next[i]) {
				i = k
			}
		}
		timer := time.NewTimer(time.Until(next[i]))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		run(ctx, log, jobs[i])
		next[i] = jobs[i].Spec.Next(now())
	}
}

func run(ctx context.Context, log *slog.Logger, j Job) {
	start := time.Now()
	if err := j.Run(ctx); err != nil {
		log.Error("scheduled job failed", "job", j.Name, "err", err)
		return
	}
	log.Info("scheduled job done", "job", j.Name, "duration_ms", time.Since(start).Milliseconds())
}
