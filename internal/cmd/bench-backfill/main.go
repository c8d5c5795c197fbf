// Command benchmark measures loader backfill on a month of availability
// snapshots shaped like the real feed. scripts/bench-backfill runs it against
// a directory and the local S3 server; see docs/BACKFILL.md.
//
//	benchmark -phase populate -store file:///tmp/b/snapshots -n 8640
//	benchmark -phase backfill -store file:///tmp/b/snapshots -db /tmp/b/parking.db
//
// The phases are separate processes so that the backfill's peak memory
// (VmHWM) is its own, not the generator's.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/internal/snapshottest"
	"github.com/parking-newtaipei/parking-newtaipei/shared/clock"
	"github.com/parking-newtaipei/parking-newtaipei/shared/load/backfill"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store/filestore"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store/s3store"
)

// start is the first fetch time of the benchmark month (Taipei midnight).
var start = time.Date(2026, 10, 1, 0, 0, 0, 0, clock.Taipei)

const interval = 5 * time.Minute // 288 a day, 8,640 in 30 days

// Result is what the backfill phase prints.
type Result struct {
	Store             string  `json:"store"`
	Snapshots         int     `json:"snapshots"`
	Rows              int64   `json:"rows"`
	Seconds           float64 `json:"seconds"`
	SnapshotsPerSec   float64 `json:"snapshots_per_second"`
	RowsPerSec        float64 `json:"rows_per_second"`
	PeakMiB           float64 `json:"peak_rss_mib"`
	DBBytes           int64   `json:"db_bytes"`
	Observations      int64   `json:"observations"`
	BytesPerObs       float64 `json:"db_bytes_per_observation"`
	Concurrency       int     `json:"concurrency"`
	BatchSize         int     `json:"batch"`
	GOMAXPROCS        int     `json:"gomaxprocs"`
	StoredBytes       int64   `json:"stored_bytes"`
	AvgSnapshotKiB    float64 `json:"avg_snapshot_kib"`
	FailedOrRefused   int     `json:"failed_or_refused"`
	MemoryLimitMiB    int64   `json:"gomemlimit_mib,omitempty"`
	SecondRunSkipped  int     `json:"second_run_skipped"`
	SecondRunSeconds  float64 `json:"second_run_seconds"`
	SecondRunDownload int64   `json:"second_run_downloaded_bytes"`
}

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "benchmark:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	phase := flag.String("phase", "", "populate or backfill")
	storeURL := flag.String("store", "", "file:///dir or s3://bucket/prefix")
	n := flag.Int("n", 8640, "availability snapshots (populate)")
	dbPath := flag.String("db", "", "database file to create (backfill)")
	concurrency := flag.Int("concurrency", backfill.DefaultConcurrency, "backfill concurrency")
	batch := flag.Int("batch", backfill.DefaultBatchSize, "snapshots per transaction")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the phase to this file")
	flag.Parse()
	if os.Getenv("GOMEMLIMIT") == "" {
		// Measure what `loader backfill` runs: the same soft memory limit.
		debug.SetMemoryLimit(backfill.DefaultMemoryLimit)
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
	st, err := openStore(ctx, *storeURL)
	if err != nil {
		return err
	}
	switch *phase {
	case "populate":
		t0 := time.Now()
		if err := snapshottest.Month(ctx, st, start, *n, interval, runtime.GOMAXPROCS(0)*2); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "populated %s with %d snapshots in %s\n", st, *n+2, time.Since(t0).Round(time.Second))
		return nil
	case "backfill":
		return bench(ctx, st, *dbPath, *concurrency, *batch)
	}
	return fmt.Errorf("-phase %q: want populate or backfill", *phase)
}

func openStore(ctx context.Context, u string) (store.Store, error) {
	switch {
	case strings.HasPrefix(u, "file://"):
		return filestore.Open(strings.TrimPrefix(u, "file://"))
	case strings.HasPrefix(u, "s3://"):
		return s3store.Open(ctx, u, s3store.Options{})
	}
	return nil, fmt.Errorf("-store %q: want file:// or s3://", u)
}

func bench(ctx context.Context, st store.Store, path string, concurrency, batch int) error {
	if path == "" {
		return fmt.Errorf("-db is required")
	}
	os.Remove(path)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	to := start.AddDate(0, 1, 0)
	s, err := once(ctx, st, path, log, concurrency, batch, to)
	if err != nil {
		return err
	}
	peak, err := vmHWM()
	if err != nil {
		return err
	}
	// The second run shows what resuming costs: a listing and ledger lookups.
	s2, err := once(ctx, st, path, log, concurrency, batch, to)
	if err != nil {
		return err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	obs, err := observations(ctx, path)
	if err != nil {
		return err
	}
	r := Result{
		Store: st.String(), Snapshots: s.Applied, Rows: s.Rows, Seconds: s.Duration.Seconds(),
		SnapshotsPerSec: float64(s.Applied) / s.Duration.Seconds(), RowsPerSec: float64(s.Rows) / s.Duration.Seconds(),
		PeakMiB: float64(peak) / (1 << 20), DBBytes: fi.Size(), Observations: obs,
		BytesPerObs: float64(fi.Size()) / float64(max(obs, 1)), Concurrency: concurrency, BatchSize: batch,
		GOMAXPROCS: runtime.GOMAXPROCS(0), StoredBytes: s.Bytes,
		AvgSnapshotKiB:   float64(s.Bytes) / float64(max(s.Applied, 1)) / 1024,
		FailedOrRefused:  s.Failed + s.Refused,
		SecondRunSkipped: s2.Skipped, SecondRunSeconds: s2.Duration.Seconds(), SecondRunDownload: s2.Bytes,
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// observations counts the database's observations as loader stats does.
func observations(ctx context.Context, path string) (int64, error) {
	db, err := sqlite.OpenReadOnly(ctx, path)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	st, err := db.Stats(ctx)
	return st.Observations, err
}

func once(ctx context.Context, st store.Store, path string, log *slog.Logger, concurrency, batch int, to time.Time) (backfill.Summary, error) {
	db, err := sqlite.Open(ctx, path, sqlite.Options{Logger: log, CacheKiB: backfill.DefaultCacheKiB})
	if err != nil {
		return backfill.Summary{}, err
	}
	defer db.Close()
	b, err := backfill.New(backfill.Config{Store: st, DB: db, Logger: log, Concurrency: concurrency, BatchSize: batch,
		Progress: os.Stderr, Terminal: backfill.IsTerminal(os.Stderr)})
	if err != nil {
		return backfill.Summary{}, err
	}
	return b.Run(ctx, start, to)
}

// vmHWM is the process's peak resident set size, from /proc/self/status.
func vmHWM() (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			var kb int64
			if _, err := fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kb); err != nil {
				return 0, err
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/self/status")
}
