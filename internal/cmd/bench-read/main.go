// Command bench-read measures the read API on a large database (see
// internal/scaledb and gen-scale-db) in both locking modes: each endpoint's
// latency over real HTTP, and how long live applies take while readers
// hammer the API and while /api/v1/stats runs. It prints Markdown tables
// for docs/OBSERVABILITY.md.
//
//	go run ./internal/cmd/gen-scale-db -out /tmp/year.db
//	go run ./internal/cmd/bench-read -db /tmp/year.db
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
	"github.com/parking-newtaipei/parking-newtaipei/shared/web"
)

func main() {
	path := flag.String("db", "", "database to measure (written by gen-scale-db; it is modified: live snapshots are applied)")
	n := flag.Int("n", 40, "requests per endpoint")
	applies := flag.Int("applies", 40, "live snapshots applied per apply measurement")
	modes := flag.String("modes", "exclusive,shared", "locking modes to measure")
	stats := flag.Bool("stats", true, "also measure /api/v1/stats (a full scan: seconds at a year)")
	flag.Parse()
	if *path == "" {
		fmt.Fprintln(os.Stderr, "bench-read: -db is required")
		os.Exit(2)
	}
	ctx := context.Background()
	b := &bench{path: *path, n: *n, applies: *applies, stats: *stats}
	for _, m := range splitComma(*modes) {
		if err := b.run(ctx, sqlite.Locking(m)); err != nil {
			fmt.Fprintln(os.Stderr, "bench-read:", err)
			os.Exit(1)
		}
	}
}

type bench struct {
	path       string
	n, applies int
	stats      bool
	// next is the fetch time of the next live snapshot applied.
	next time.Time
}

func (b *bench) run(ctx context.Context, mode sqlite.Locking) error {
	t0 := time.Now()
	db, err := sqlite.Open(ctx, b.path, sqlite.Options{Locking: mode, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer db.Close()
	opened := time.Since(t0)
	srv := web.New(web.Config{Addr: "127.0.0.1:0", Reads: db, Stats: func(ctx context.Context) (st sqlite.Stats, err error) {
		err = db.Read(ctx, func(r *sqlite.DB) error { st, err = r.Stats(ctx); return err })
		return st, err
	}})
	if err := srv.Start(); err != nil {
		return err
	}
	defer srv.Shutdown(ctx)
	base := "http://" + srv.Addr()

	var lots []sqlite.Lot
	if err := db.Read(ctx, func(r *sqlite.DB) (err error) { lots, err = r.MapLots(ctx); return err }); err != nil {
		return err
	}
	var live, ids []string
	var last time.Time
	for _, l := range lots {
		ids = append(ids, l.ID)
		if l.HasAvailable {
			live = append(live, l.ID)
			if at, err := time.Parse(time.RFC3339, l.ObservedAt); err == nil && at.After(last) {
				last = at
			}
		}
	}
	// Lots with a history: those live over the last day (a benchmark's own
	// applies leave random lots with a value at the end).
	var withHistory []string
	for _, id := range live {
		var h []sqlite.HistoryPoint
		if err := db.Read(ctx, func(r *sqlite.DB) (err error) {
			h, err = r.History(ctx, id, last.Add(-24*time.Hour), last)
			return err
		}); err != nil {
			return err
		}
		if len(h) > 100 {
			withHistory = append(withHistory, id)
		}
	}
	live = withHistory
	if len(live) == 0 {
		return fmt.Errorf("%s: no lot with a live history", b.path)
	}
	if b.next.IsZero() {
		b.next = last.Add(5 * time.Minute)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	history := func(days int) func() string {
		return func() string {
			to := last.Add(-time.Duration(rng.IntN(300*24)) * time.Hour)
			from := to.Add(-time.Duration(days) * 24 * time.Hour)
			return fmt.Sprintf("/api/v1/lots/%s/availability?from=%s&to=%s", live[rng.IntN(len(live))],
				url.QueryEscape(from.Format(time.RFC3339)), url.QueryEscape(to.Format(time.RFC3339)))
		}
	}
	endpoints := []struct {
		name string
		path func() string
	}{
		{"GET /api/v1/lots", func() string { return "/api/v1/lots" }},
		{"GET /api/v1/lots/{id}", func() string { return "/api/v1/lots/" + ids[rng.IntN(len(ids))] }},
		{"GET /api/v1/availability/latest", func() string { return "/api/v1/availability/latest" }},
		{"history, 24 hours of one lot", history(1)},
		{"history, 7 days of one lot", history(7)},
		{"history, 31 days of one lot", history(31)},
	}
	fmt.Printf("\n### %s mode (%s; opened, quick_check included, in %s)\n\n", mode, b.path, opened.Round(time.Millisecond))
	fmt.Println("| endpoint | p50 | p99 | max | bytes |")
	fmt.Println("|---|---|---|---|---|")
	for _, e := range endpoints {
		var ds []time.Duration
		size := 0
		for range b.n {
			d, n, err := get(base + e.path())
			if err != nil {
				return fmt.Errorf("%s: %w", e.name, err)
			}
			ds = append(ds, d)
			size = n
		}
		fmt.Printf("| %s | %s | %s | %s | %d |\n", e.name, pct(ds, 50), pct(ds, 99), pct(ds, 100), size)
	}
	// The query alone, without HTTP and JSON: what holds a connection.
	for _, days := range []int{7, 31} {
		var ds []time.Duration
		for range b.n {
			to := last.Add(-time.Duration(rng.IntN(300*24)) * time.Hour)
			id := live[rng.IntN(len(live))]
			t0 := time.Now()
			if err := db.Read(ctx, func(r *sqlite.DB) error {
				_, err := r.History(ctx, id, to.Add(-time.Duration(days)*24*time.Hour), to)
				return err
			}); err != nil {
				return err
			}
			ds = append(ds, time.Since(t0))
		}
		fmt.Printf("| History query alone, %d days (no HTTP, no JSON) | %s | %s | %s | |\n", days, pct(ds, 50), pct(ds, 99), pct(ds, 100))
	}
	if b.stats {
		t0 := time.Now()
		_, n, err := get(base + "/api/v1/stats")
		if err != nil {
			fmt.Printf("| GET /api/v1/stats (one request) | failed after %s: %v | | | |\n", time.Since(t0).Round(time.Millisecond), err)
		} else {
			fmt.Printf("| GET /api/v1/stats (one request) | %s | | | %d |\n", time.Since(t0).Round(time.Millisecond), n)
		}
	}

	// Applies: alone, beside readers hammering the API, and during /stats.
	idle, err := b.applyN(ctx, db, lots, b.applies, nil)
	if err != nil {
		return err
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var reads atomic.Int64
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 9))
			for !stop.Load() {
				e := endpoints[r.IntN(len(endpoints))]
				if _, _, err := get(base + e.path()); err == nil {
					reads.Add(1)
				}
			}
		}()
	}
	busy, err := b.applyN(ctx, db, lots, b.applies, nil)
	stop.Store(true)
	wg.Wait()
	if err != nil {
		return err
	}
	fmt.Println()
	fmt.Println("| live applies (1,400 rows each) | p50 | p99 | max |")
	fmt.Println("|---|---|---|---|")
	fmt.Printf("| alone | %s | %s | %s |\n", pct(idle, 50), pct(idle, 99), pct(idle, 100))
	fmt.Printf("| beside 4 readers looping over the endpoints above (%d reads) | %s | %s | %s |\n", reads.Load(), pct(busy, 50), pct(busy, 99), pct(busy, 100))
	if b.stats {
		done := make(chan struct{})
		go func() { defer close(done); get(base + "/api/v1/stats") }()
		during, err := b.applyN(ctx, db, lots, 1<<30, done)
		if err != nil {
			return err
		}
		fmt.Printf("| while one /api/v1/stats runs (%d applies) | %s | %s | %s |\n", len(during), pct(during, 50), pct(during, 99), pct(during, 100))
	}
	return nil
}

// applyN applies up to n live snapshots back to back (until done closes, if
// given) and returns each one's duration, waiting for the connection included.
func (b *bench) applyN(ctx context.Context, db *sqlite.DB, lots []sqlite.Lot, n int, done chan struct{}) ([]time.Duration, error) {
	rng := rand.New(rand.NewPCG(uint64(b.next.Unix()), 3))
	var ds []time.Duration
	for i := 0; i < n; i++ {
		if done != nil {
			select {
			case <-done:
				return ds, nil
			default:
			}
		}
		rows := make([]feed.AvailabilityRow, len(lots))
		for j, l := range lots {
			v := "-9"
			if rng.IntN(10) < 3 {
				v = strconv.Itoa(rng.IntN(int(l.TotalCar) + 1))
			}
			rows[j] = feed.AvailabilityRow{ID: l.ID, AvailableCar: v}
		}
		in := snapshot.Input{Key: fmt.Sprintf("bench/availability/%d", b.next.Unix()), Dataset: feed.Availability, FetchedAt: b.next, Availability: rows}
		b.next = b.next.Add(5 * time.Minute)
		t0 := time.Now()
		if _, err := db.Apply(ctx, in); err != nil {
			return nil, err
		}
		ds = append(ds, time.Since(t0))
	}
	return ds, nil
}

func get(u string) (time.Duration, int, error) {
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

func pct(ds []time.Duration, p int) string {
	if len(ds) == 0 {
		return "-"
	}
	s := append([]time.Duration{}, ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	if i > 0 {
		i--
	}
	d := s[i]
	if d >= 100*time.Millisecond {
		return d.Round(time.Millisecond).String()
	}
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64) + " ms"
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}
