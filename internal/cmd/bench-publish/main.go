// Command bench-publish measures the publication of a month's availability
// history as Parquet: build time, peak memory, bytes per observation beside
// the database's. scripts/bench-publish runs it; see docs/ARCHITECTURE.md.
//
//	bench-publish -phase db -db /tmp/p/parking.db -model random -n 8640
//	bench-publish -phase parquet -db /tmp/p/parking.db -out /tmp/p/month.parquet
//
// The phases are separate processes so that the build's peak memory (VmHWM)
// is its own, not the generator's.
package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/internal/feedtest"
	"github.com/parking-newtaipei/parking-newtaipei/shared/clock"
	"github.com/parking-newtaipei/parking-newtaipei/shared/export/publish"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
)

// month is the benchmark's month: 30 days from its first Taipei midnight,
// as scripts/bench-backfill's.
const month = "2026-10"

var start = time.Date(2026, 10, 1, 0, 0, 0, 0, clock.Taipei)

const interval = 5 * time.Minute // 288 a day, 8,640 in 30 days

// Result is what the parquet phase prints.
type Result struct {
	Model           string  `json:"model"`
	Observations    int64   `json:"observations"`
	BuildSeconds    float64 `json:"build_seconds"`
	ObsPerSecond    float64 `json:"observations_per_second"`
	StatsSeconds    float64 `json:"stats_seconds"`
	PeakRSSMiB      float64 `json:"peak_rss_mib"`
	RSSBeforeMiB    float64 `json:"rss_before_build_mib"`
	ParquetBytes    int64   `json:"parquet_bytes"`
	ParquetPerObs   float64 `json:"parquet_bytes_per_observation"`
	DBBytes         int64   `json:"db_bytes"`
	DBPerObs        float64 `json:"db_bytes_per_observation"`
	TableBytes      int64   `json:"availability_obs_bytes"`
	TablePerObs     float64 `json:"availability_obs_bytes_per_observation"`
	GOMAXPROCS      int     `json:"gomaxprocs"`
	RebuildSameHash bool    `json:"rebuild_gives_same_bytes"`
}

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "bench-publish:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	phase := flag.String("phase", "", "db or parquet")
	path := flag.String("db", "", "database file")
	model := flag.String("model", "random", "db: random (scripts/bench-backfill's month: each fetch's values drawn afresh, ~30% valid), walk (30% of the lots report, values drift), or full (every lot reports, values drift)")
	n := flag.Int("n", 8640, "db: availability snapshots")
	out := flag.String("out", "", "parquet: file to write")
	memProfile := flag.String("memprofile", "", "parquet: write a heap profile (allocations included) after the build to this file")
	cpuProfile := flag.String("cpuprofile", "", "parquet: write a CPU profile of the build to this file")
	flag.Parse()
	if *path == "" {
		return fmt.Errorf("-db is required")
	}
	switch *phase {
	case "db":
		return fill(ctx, *path, *model, *n)
	case "parquet":
		if *out == "" {
			return fmt.Errorf("-out is required")
		}
		if *cpuProfile != "" {
			f, err := os.Create(*cpuProfile)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				return err
			}
			defer pprof.StopCPUProfile()
		}
		return build(ctx, *path, *model, *out, *memProfile)
	}
	return fmt.Errorf("-phase %q: want db or parquet", *phase)
}

// fill applies a month of availability snapshots (and the lots) to a new
// database, straight through the apply, in batches as backfill does.
func fill(ctx context.Context, path, model string, n int) error {
	os.Remove(path)
	db, err := sqlite.Open(ctx, path, sqlite.Options{CacheKiB: 4000})
	if err != nil {
		return err
	}
	defer db.Close()
	lots := feedtest.SampleLots()
	if _, err := db.Apply(ctx, input(feed.Lots, start.Add(-time.Hour), lots, nil)); err != nil {
		return err
	}
	gen, err := generator(model, lots)
	if err != nil {
		return err
	}
	t0 := time.Now()
	var batch []snapshot.Input
	for i := range n {
		at := start.Add(time.Duration(i) * interval)
		batch = append(batch, input(feed.Availability, at, nil, gen(at)))
		if len(batch) == 32 || i == n-1 {
			if _, err := db.Apply(ctx, batch...); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	fmt.Fprintf(os.Stderr, "filled %s with %d snapshots (%s) in %s\n", path, n, model, time.Since(t0).Round(time.Second))
	return nil
}

func input(d feed.Dataset, at time.Time, lots []feed.LotRow, avail []feed.AvailabilityRow) snapshot.Input {
	sum := fmt.Sprintf("%064x", at.UnixNano())
	return snapshot.Input{Key: snapshot.Key(d, at, sum), SHA256: sum, Dataset: d, FetchedAt: at, Lots: lots, Availability: avail}
}

// generator returns the rows of the model's snapshot at a time.
func generator(model string, lots []feed.LotRow) (func(time.Time) []feed.AvailabilityRow, error) {
	if model == "random" {
		// The rows of snapshottest.Availability: the backfill benchmark's month.
		return func(at time.Time) []feed.AvailabilityRow { return feedtest.SampleAvailability(uint64(at.Unix())) }, nil
	}
	share := 0.3
	switch model {
	case "walk":
	case "full":
		share = 1
	default:
		return nil, fmt.Errorf("-model %q: want random, walk or full", model)
	}
	// A fixed set of lots reports live values (the others answer -9, as
	// most do in the real feed); each value drifts by a few spaces at a time.
	rng := rand.New(rand.NewPCG(1, 2))
	type lot struct {
		id          string
		live        bool
		total, free int
	}
	var ls []lot
	seen := map[string]bool{}
	for _, l := range lots {
		if seen[l.ID] {
			continue
		}
		seen[l.ID] = true
		total, err := strconv.Atoi(l.TotalCar)
		if err != nil || total <= 0 {
			total = 50
		}
		ls = append(ls, lot{id: l.ID, live: rng.Float64() < share, total: total, free: rng.IntN(total + 1)})
	}
	return func(time.Time) []feed.AvailabilityRow {
		rows := make([]feed.AvailabilityRow, len(ls))
		for i := range ls {
			l := &ls[i]
			v := "-9"
			if l.live {
				if rng.Float64() < 0.4 {
					l.free = max(0, min(l.total, l.free+rng.IntN(7)-3))
				}
				v = strconv.Itoa(l.free)
			}
			rows[i] = feed.AvailabilityRow{ID: l.id, AvailableCar: v}
		}
		return rows
	}, nil
}

// build writes the month's Parquet file as the publisher does, twice (the
// second time to check the bytes are the same), and reports the first.
func build(ctx context.Context, path, model, out, memProfile string) error {
	db, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		return err
	}
	from, to := start, start.AddDate(0, 1, 0)
	t0 := time.Now()
	stats, err := db.ObservationStats(ctx, from, to)
	if err != nil {
		return err
	}
	statsTime := time.Since(t0)
	before, err := procStatus("VmRSS:")
	if err != nil {
		return err
	}
	t0 = time.Now()
	if err := writeFile(ctx, db, out); err != nil {
		return err
	}
	buildTime := time.Since(t0)
	peak, err := procStatus("VmHWM:")
	if err != nil {
		return err
	}
	if memProfile != "" {
		f, err := os.Create(memProfile)
		if err != nil {
			return err
		}
		if err := pprof.WriteHeapProfile(f); err != nil {
			return err
		}
		f.Close()
	}
	first, err := os.ReadFile(out)
	if err != nil {
		return err
	}
	if err := writeFile(ctx, db, out+".again"); err != nil {
		return err
	}
	again, err := os.ReadFile(out + ".again")
	if err != nil {
		return err
	}
	os.Remove(out + ".again")
	if err := db.Close(); err != nil {
		return err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	r := Result{
		Model: model, Observations: stats.Rows, BuildSeconds: buildTime.Seconds(),
		ObsPerSecond: float64(stats.Rows) / buildTime.Seconds(), StatsSeconds: statsTime.Seconds(),
		PeakRSSMiB: float64(peak) / (1 << 20), RSSBeforeMiB: float64(before) / (1 << 20),
		ParquetBytes: int64(len(first)), ParquetPerObs: float64(len(first)) / float64(max(stats.Rows, 1)),
		DBBytes: fi.Size(), DBPerObs: float64(fi.Size()) / float64(max(stats.Rows, 1)),
		GOMAXPROCS: runtime.GOMAXPROCS(0), RebuildSameHash: string(first) == string(again),
	}
	tb, err := tableBytes(ctx, path)
	if err != nil {
		return err
	}
	r.TableBytes, r.TablePerObs = tb, float64(tb)/float64(max(stats.Rows, 1))
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func writeFile(ctx context.Context, db *sqlite.DB, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	if _, err := publish.WriteMonth(ctx, db, month, bw); err != nil {
		f.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// tableBytes is the size of availability_obs's pages (SQLite's dbstat),
// read once the loader's connection has released the database.
func tableBytes(ctx context.Context, path string) (int64, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var n int64
	err = db.QueryRowContext(ctx, "SELECT sum(pgsize) FROM dbstat WHERE name = 'availability_obs'").Scan(&n)
	return n, err
}

// procStatus reads a size in kB from /proc/self/status.
func procStatus(field string) (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/self/status", field)
}
