package main

import (
	"context"
	"errors"
	"fmt"
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

func runBackfill(ctx context.Context, f *cli.Flags, args []string) int {
	var (
		cfg Config
		bf  backfillFlags
	)
	cfg.bindDB(f)
	f.Store(&cfg.Store) // a backfill never touches the queue
	f.String(&bf.dataset, "dataset", "", "all", "dataset to apply: lots, availability or all")
	f.String(&bf.from, "from", "", "", "first fetch time (inclusive): RFC 3339, or a Taipei date or minute")
	f.String(&bf.to, "to", "", "", "end of the range (exclusive), same forms (default: now)")
	f.Int(&bf.concurrency, "concurrency", "", backfill.DefaultConcurrency, "concurrent downloads and parses")
	f.Int(&bf.batch, "batch", "", backfill.DefaultBatchSize, "snapshots applied per transaction")
	cfg.bindAllowMassDelete(f)
	f.String(&bf.progress, "progress", "", "auto", "progress display: auto (a bar on a terminal, else log lines), bar or log")
	f.Require("from")
	log, err := f.Start(args, &cfg)
	if err != nil {
		return f.UsageError(err)
	}
	datasets, err := parseDatasets(bf.dataset)
	if err != nil {
		return f.UsageError(fmt.Errorf("-dataset: %w", err))
	}
	from, to, err := cli.ParseRange(bf.from, bf.to, time.Now())
	if err != nil {
		return f.UsageError(err)
	}
	if bf.concurrency < 1 || bf.batch < 1 {
		return f.UsageError(errors.New("-concurrency and -batch must be at least 1"))
	}
	var terminal bool
	switch bf.progress {
	case "auto":
		terminal = backfill.IsTerminal(f.Stderr)
	case "bar":
		terminal = true
	case "log":
	default:
		return f.UsageError(fmt.Errorf("-progress %q: want auto, bar or log", bf.progress))
	}
	if f.Env()("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(backfill.DefaultMemoryLimit)
	}

	sum, err := runBackfillWith(ctx, cfg, log, backfill.Config{
		Logger: log, Datasets: datasets, Concurrency: bf.concurrency, BatchSize: bf.batch,
		AllowMassDelete: cfg.AllowMassDelete, Progress: f.Stderr, Terminal: terminal,
	}, from, to)
	if errors.Is(err, sqlite.ErrLocked) {
		return refuse(f, err, "A backfill writes the database directly and must be its only writer: stop the running loader first, or use 'extractor replay' to apply the range through it.")
	}
	cli.PrintJSON(f.Stdout, sum)
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
	db, err := sqlite.Open(ctx, cfg.DB, sqlite.Options{Logger: log, CacheKiB: backfill.DefaultCacheKiB, Locking: sqlite.Locking(cfg.DBLocking), Check: sqlite.Check(cfg.DBCheck)})
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
