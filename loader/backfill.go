package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/cli"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/load/backfill"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
)

// backfillFlags are backfill's own settings.
type backfillFlags struct {
	dataset     string
	from, to    string
	concurrency int
	batch       int
	progress    string
}

// bindStore registers only the store flag: a backfill never touches the queue.
func (c *Config) bindStore(f *cli.Flags) {
	f.String(&c.Store, "store", "PARKING_STORE", "file://./data/snapshots", "snapshot store URL: file://DIR or s3://BUCKET/PREFIX")
}

func runBackfill(ctx context.Context, args []string, stdout, stderr io.Writer, env cli.Env) int {
	var (
		cfg Config
		bf  backfillFlags
	)
	f := cli.NewFlags("loader backfill", env, stderr)
	cfg.bindCommon(f)
	cfg.bindStore(f)
	f.String(&bf.dataset, "dataset", "", "all", "dataset to apply: lots, availability or all")
	f.String(&bf.from, "from", "", "", "first fetch time (inclusive): RFC 3339, or a Taipei date or minute (required)")
	f.String(&bf.to, "to", "", "", "end of the range (exclusive), same forms (default: now)")
	f.Int(&bf.concurrency, "concurrency", "", backfill.DefaultConcurrency, "concurrent downloads and parses")
	f.Int(&bf.batch, "batch", "", backfill.DefaultBatchSize, "snapshots applied per transaction")
	f.Bool(&cfg.AllowMassDelete, "allow-mass-delete", "PARKING_ALLOW_MASS_DELETE", false, "apply lots snapshots that soft-delete more than half of the active lots")
	f.String(&bf.progress, "progress", "", "auto", "progress display: auto (a bar on a terminal, else log lines), bar or log")
	log, err := cfg.parse(f, args, stderr)
	if err != nil {
		return usageError(stderr, err)
	}
	datasets, err := parseDatasets(bf.dataset)
	if err != nil {
		return usageError(stderr, fmt.Errorf("-dataset: %w", err))
	}
	from, to, err := parseRange(bf.from, bf.to, time.Now())
	if err != nil {
		return usageError(stderr, err)
	}
	if bf.concurrency < 1 || bf.batch < 1 {
		return usageError(stderr, errors.New("-concurrency and -batch must be at least 1"))
	}
	var terminal bool
	switch bf.progress {
	case "auto":
		terminal = backfill.IsTerminal(stderr)
	case "bar":
		terminal = true
	case "log":
	default:
		return usageError(stderr, fmt.Errorf("-progress %q: want auto, bar or log", bf.progress))
	}
	if env("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(backfill.DefaultMemoryLimit)
	}

	sum, err := runBackfillWith(ctx, cfg, log, backfill.Config{
		Logger: log, Datasets: datasets, Concurrency: bf.concurrency, BatchSize: bf.batch,
		AllowMassDelete: cfg.AllowMassDelete, Progress: stderr, Terminal: terminal,
	}, from, to)
	if errors.Is(err, sqlite.ErrLocked) {
		fmt.Fprintf(stderr, "loader backfill: refused: %v\nA backfill writes the database directly and must be its only writer: stop the running loader first, or use 'extractor replay' to apply the range through it.\n", err)
		return cli.ExitSkipped
	}
	printJSON(stdout, sum)
	if err != nil {
		log.Error("backfill stopped", "err", err, "last_key", sum.LastKey)
		return cli.ExitError
	}
	if err := sum.Err(); err != nil {
		log.Error("backfill incomplete", "err", err)
		return cli.ExitError
	}
	return cli.ExitOK
}

// runBackfillWith opens the database (taking its exclusive lock first, so a
// running loader is detected before anything else) and the store, and runs.
func runBackfillWith(ctx context.Context, cfg Config, log *slog.Logger, bc backfill.Config, from, to time.Time) (backfill.Summary, error) {
	db, err := sqlite.Open(ctx, cfg.DB, sqlite.Options{Logger: log, CacheKiB: backfill.DefaultCacheKiB, Locking: sqlite.Locking(cfg.DBLocking)})
	if err != nil {
		return backfill.Summary{}, err
	}
	defer db.Close()
	st, err := cli.OpenStore(ctx, cfg.Store, cli.BackendOptions{Logger: log})
	if err != nil {
		return backfill.Summary{}, err
	}
	bc.Store, bc.DB = st, db
	b, err := backfill.New(bc)
	if err != nil {
		return backfill.Summary{}, err
	}
	return b.Run(ctx, from, to)
}

// parseDatasets reads -dataset: one dataset, or all.
func parseDatasets(s string) ([]feed.Dataset, error) {
	if s == "all" || s == "" {
		return feed.Datasets, nil
	}
	d, err := feed.ParseDataset(s)
	if err != nil {
		return nil, fmt.Errorf("%w, or \"all\"", err)
	}
	return []feed.Dataset{d}, nil
}

// parseRange reads -from (required) and -to (default now).
func parseRange(fromS, toS string, now time.Time) (from, to time.Time, err error) {
	if fromS == "" {
		return from, to, errors.New("-from is required")
	}
	if from, err = cli.ParseTime(fromS); err != nil {
		return from, to, fmt.Errorf("-from: %w", err)
	}
	to = now
	if toS != "" {
		if to, err = cli.ParseTime(toS); err != nil {
			return from, to, fmt.Errorf("-to: %w", err)
		}
	}
	if !from.Before(to) {
		return from, to, fmt.Errorf("-from %s is not before -to %s", fromS, to.Format(time.RFC3339))
	}
	return from, to, nil
}

// printJSON writes v indented, for people and scripts alike.
func printJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
