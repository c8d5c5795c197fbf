// Package scalebench holds what the benchmarks over a large database
// (internal/cmd/bench-read, internal/cmd/bench-scale) share: the read API's
// endpoints with realistic arguments, live applies of the feed's shape, and
// percentiles.
package scalebench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
	"github.com/parking-newtaipei/parking-newtaipei/shared/web"
)

// Data is what the benchmarks ask about: the lots, those with a live
// history, and the time of the newest observation.
type Data struct {
	Lots []sqlite.Lot
	IDs  []string
	// Live are lots with more than 100 observations in the week before
	// Last: those whose history is worth asking for (a benchmark's own
	// applies leave random lots with a value at the end).
	Live []string
	Last time.Time
}

// Load reads Data from db.
func Load(ctx context.Context, db *sqlite.DB) (Data, error) {
	var d Data
	if err := db.Read(ctx, func(r *sqlite.DB) (err error) { d.Lots, err = r.MapLots(ctx); return err }); err != nil {
		return d, err
	}
	var live []string
	for _, l := range d.Lots {
		d.IDs = append(d.IDs, l.ID)
		if l.HasAvailable {
			live = append(live, l.ID)
			if at, err := time.Parse(time.RFC3339, l.ObservedAt); err == nil && at.After(d.Last) {
				d.Last = at
			}
		}
	}
	// The week before Last, or before a month earlier when a benchmark's
	// applies (a few days' worth) made Last newer than the written history.
	for _, end := range []time.Time{d.Last, d.Last.AddDate(0, -1, 0)} {
		for _, id := range live {
			var h []sqlite.HistoryPoint
			if err := db.Read(ctx, func(r *sqlite.DB) (err error) {
				h, err = r.History(ctx, id, end.Add(-7*24*time.Hour), end)
				return err
			}); err != nil {
				return d, err
			}
			if len(h) > 100 {
				d.Live = append(d.Live, id)
			}
		}
		if len(d.Live) > 0 {
			break
		}
	}
	if len(d.Live) == 0 {
		return d, fmt.Errorf("%s: no lot with a live history", db.Path())
	}
	return d, nil
}

// Serve starts the loader's HTTP server on db (on a free loopback port), as
// a running loader serves it: the read API and /stats through read views.
func Serve(db *sqlite.DB) (*web.Server, error) {
	srv := web.New(web.Config{Addr: "127.0.0.1:0", Reads: db, Stats: func(ctx context.Context) (st sqlite.Stats, err error) {
		err = db.Read(ctx, func(r *sqlite.DB) error { st, err = r.Stats(ctx); return err })
		return st, err
	}})
	return srv, srv.Start()
}

// Endpoint is one read API request, its path drawn anew for each request.
type Endpoint struct {
	Name string
	Path func() string
}

// Endpoints are the read API's endpoints; histories are of random live lots
// at random times of the last 300 days.
func (d Data) Endpoints(rng *rand.Rand) []Endpoint {
	history := func(days int) func() string {
		return func() string {
			to := d.Last.Add(-time.Duration(rng.IntN(300*24)) * time.Hour)
			from := to.Add(-time.Duration(days) * 24 * time.Hour)
			return fmt.Sprintf("/api/v1/lots/%s/availability?from=%s&to=%s", d.Live[rng.IntN(len(d.Live))],
				url.QueryEscape(from.Format(time.RFC3339)), url.QueryEscape(to.Format(time.RFC3339)))
		}
	}
	return []Endpoint{
		{"GET /api/v1/lots", func() string { return "/api/v1/lots" }},
		{"GET /api/v1/lots/{id}", func() string { return "/api/v1/lots/" + d.IDs[rng.IntN(len(d.IDs))] }},
		{"GET /api/v1/availability/latest", func() string { return "/api/v1/availability/latest" }},
		{"history, 24 hours of one lot", history(1)},
		{"history, 7 days of one lot", history(7)},
		{"history, 31 days of one lot", history(31)},
		{"GET /api/v1/stats", func() string { return "/api/v1/stats" }},
	}
}

// Measure requests e n times from base and returns the durations and the
// size of the last answer.
func Measure(base string, e Endpoint, n int) ([]time.Duration, int, error) {
	var ds []time.Duration
	size := 0
	for range n {
		d, s, err := Get(base + e.Path())
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", e.Name, err)
		}
		ds = append(ds, d)
		size = s
	}
	return ds, size, nil
}

// Get reads u whole and says how long it took and how many bytes came.
func Get(u string) (time.Duration, int, error) {
	t0 := time.Now()
	resp, err := http.Get(u)
	if err != nil {
		return 0, 0, err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(t0)
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return d, int(n), err
}

// Live applies live snapshots of the feed's shape (every lot, ~30% with a
// value, the rest -9), five minutes apart from Next on.
type Live struct {
	Next time.Time
}

// Apply applies up to n snapshots back to back, stopping early when done
// closes (nil: never), and returns each apply's duration, waiting for the
// connection included.
func (l *Live) Apply(ctx context.Context, db *sqlite.DB, lots []sqlite.Lot, n int, done <-chan struct{}) ([]time.Duration, error) {
	rng := rand.New(rand.NewPCG(uint64(l.Next.Unix()), 3))
	var ds []time.Duration
	for i := 0; i < n; i++ {
		select {
		case <-done:
			return ds, nil
		default:
		}
		in := snapshot.Input{Key: fmt.Sprintf("bench/availability/%d", l.Next.Unix()), Dataset: feed.Availability,
			FetchedAt: l.Next, Availability: Rows(rng, lots)}
		l.Next = l.Next.Add(5 * time.Minute)
		t0 := time.Now()
		if _, err := db.Apply(ctx, in); err != nil {
			return nil, err
		}
		ds = append(ds, time.Since(t0))
	}
	return ds, nil
}

// Rows are one live snapshot's rows for lots: ~30% with a value.
func Rows(rng *rand.Rand, lots []sqlite.Lot) []feed.AvailabilityRow {
	rows := make([]feed.AvailabilityRow, len(lots))
	for j, l := range lots {
		v := "-9"
		if rng.IntN(10) < 3 {
			v = strconv.Itoa(rng.IntN(int(l.TotalCar) + 1))
		}
		rows[j] = feed.AvailabilityRow{ID: l.ID, AvailableCar: v}
	}
	return rows
}

// Pct is the p-th percentile of ds (100: the maximum), for a table.
func Pct(ds []time.Duration, p int) string {
	return Format(Percentile(ds, p))
}

// Percentile is the p-th percentile of ds (nearest rank).
func Percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration{}, ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	if i > 0 {
		i--
	}
	return s[i]
}

// Format renders a duration for a table: milliseconds with a decimal below
// 100 ms, rounded above.
func Format(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d >= 100*time.Millisecond:
		return d.Round(time.Millisecond).String()
	}
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64) + " ms"
}
