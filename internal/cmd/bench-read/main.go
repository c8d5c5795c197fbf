// Command bench-read measures the read API on a large database (see
// internal/scaledb and gen-scale-db) in both locking modes: each endpoint's
// latency over real HTTP, and how long live applies take while readers
// hammer the API. It prints Markdown tables for docs/OBSERVABILITY.md;
// internal/cmd/bench-scale measures the rest (docs/PERFORMANCE.md).
//
//	go run ./internal/cmd/gen-scale-db -out /tmp/year.db
//	go run ./internal/cmd/bench-read -db /tmp/year.db
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/internal/scalebench"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
)

func main() {
	path := flag.String("db", "", "database to measure (written by gen-scale-db; it is modified: live snapshots are applied)")
	n := flag.Int("n", 40, "requests per endpoint")
	applies := flag.Int("applies", 40, "live snapshots applied per apply measurement")
	modes := flag.String("modes", "exclusive,shared", "locking modes to measure")
	flag.Parse()
	if *path == "" {
		fmt.Fprintln(os.Stderr, "bench-read: -db is required")
		os.Exit(2)
	}
	ctx := context.Background()
	b := &bench{path: *path, n: *n, applies: *applies}
	for _, m := range strings.Split(*modes, ",") {
		if err := b.run(ctx, sqlite.Locking(m)); err != nil {
			fmt.Fprintln(os.Stderr, "bench-read:", err)
			os.Exit(1)
		}
	}
}

type bench struct {
	path       string
	n, applies int
	live       scalebench.Live
}

func (b *bench) run(ctx context.Context, mode sqlite.Locking) error {
	t0 := time.Now()
	db, err := sqlite.Open(ctx, b.path, sqlite.Options{Locking: mode, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer db.Close()
	opened := time.Since(t0)
	srv, err := scalebench.Serve(db)
	if err != nil {
		return err
	}
	defer srv.Shutdown(ctx)
	base := "http://" + srv.Addr()

	data, err := scalebench.Load(ctx, db)
	if err != nil {
		return err
	}
	if b.live.Next.IsZero() {
		b.live.Next = data.Last.Add(5 * time.Minute)
	}
	endpoints := data.Endpoints(rand.New(rand.NewPCG(1, 1)))
	fmt.Printf("\n### %s mode (%s; opened in %s)\n\n", mode, b.path, opened.Round(time.Millisecond))
	fmt.Println("| endpoint | p50 | p99 | max | bytes |")
	fmt.Println("|---|---|---|---|---|")
	for _, e := range endpoints {
		ds, size, err := scalebench.Measure(base, e, b.n)
		if err != nil {
			return err
		}
		fmt.Printf("| %s | %s | %s | %s | %d |\n", e.Name, scalebench.Pct(ds, 50), scalebench.Pct(ds, 99), scalebench.Pct(ds, 100), size)
	}
	// The query alone, without HTTP and JSON: what holds a connection.
	rng := rand.New(rand.NewPCG(2, 2))
	for _, days := range []int{7, 31} {
		var ds []time.Duration
		for range b.n {
			to := data.Last.Add(-time.Duration(rng.IntN(300*24)) * time.Hour)
			id := data.Live[rng.IntN(len(data.Live))]
			t0 := time.Now()
			if err := db.Read(ctx, func(r *sqlite.DB) error {
				_, err := r.History(ctx, id, to.Add(-time.Duration(days)*24*time.Hour), to)
				return err
			}); err != nil {
				return err
			}
			ds = append(ds, time.Since(t0))
		}
		fmt.Printf("| History query alone, %d days (no HTTP, no JSON) | %s | %s | %s | |\n", days,
			scalebench.Pct(ds, 50), scalebench.Pct(ds, 99), scalebench.Pct(ds, 100))
	}

	// Applies: alone, and beside readers hammering the API.
	idle, err := b.live.Apply(ctx, db, data.Lots, b.applies, nil)
	if err != nil {
		return err
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var reads atomic.Int64
	for w := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 9))
			for !stop.Load() {
				e := endpoints[r.IntN(len(endpoints))]
				if _, _, err := scalebench.Get(base + e.Path()); err == nil {
					reads.Add(1)
				}
			}
		})
	}
	busy, err := b.live.Apply(ctx, db, data.Lots, b.applies, nil)
	stop.Store(true)
	wg.Wait()
	if err != nil {
		return err
	}
	fmt.Println()
	fmt.Println("| live applies (1,400 rows each) | p50 | p99 | max |")
	fmt.Println("|---|---|---|---|")
	fmt.Printf("| alone | %s | %s | %s |\n", scalebench.Pct(idle, 50), scalebench.Pct(idle, 99), scalebench.Pct(idle, 100))
	fmt.Printf("| beside 4 readers looping over the endpoints above (%d reads) | %s | %s | %s |\n", reads.Load(),
		scalebench.Pct(busy, 50), scalebench.Pct(busy, 99), scalebench.Pct(busy, 100))
	return nil
}
