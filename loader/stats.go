package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/cli"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
	"github.com/parking-newtaipei/parking-newtaipei/shared/web"
)

func runStats(ctx context.Context, f *cli.Flags, args []string) int {
	var (
		cfg          Config
		asJSON, full bool
	)
	cfg.bindDB(f)
	cfg.bindHTTPAddr(f, "", "a running loader's HTTP address, asked for /stats when it holds the database")
	f.Bool(&asJSON, "json", "", false, "print JSON for machines")
	f.Bool(&full, "full", "", false, "compute the figures from every row (minutes at years of history) and check the summaries against them; exit 1 if they differ")
	log, err := f.Start(args, &cfg)
	if err != nil {
		return f.UsageError(err)
	}
	var st sqlite.Stats
	var diffs []string
	if full {
		st, diffs, err = readStatsFull(ctx, cfg)
	} else {
		st, err = readStats(ctx, cfg)
	}
	if errors.Is(err, sqlite.ErrLocked) && full {
		return refuse(f, err, "A running loader holds the database in exclusive mode, and -full never asks it (a scan of minutes): stop it, or run -full on a backup (-db FILE).")
	}
	if errors.Is(err, sqlite.ErrLocked) && cfg.HTTPAddr == "" {
		return refuse(f, err, "A running loader holds the database: set -http-addr (PARKING_HTTP_ADDR) to its HTTP address to ask it instead.")
	}
	if err != nil {
		log.Error("stats", "db", cfg.DB, "err", err)
		return cli.ExitError
	}
	if len(diffs) > 0 {
		log.Error("the summaries differ from the tables", "db", cfg.DB, "differences", diffs)
	}
	if asJSON {
		err = cli.PrintJSON(f.Stdout, st)
	} else {
		err = writeStats(f.Stdout, st)
	}
	if err != nil {
		log.Error("stats", "err", err)
		return cli.ExitError
	}
	if len(diffs) > 0 {
		return cli.ExitError
	}
	return cli.ExitOK
}

// readStatsFull reads both the summaries and the full scan, alone or beside
// a shared-mode loader, and returns the full figures and how the summaries
// differ from them. Never through a running loader's HTTP server: a scan of
// minutes is not something to ask of it.
func readStatsFull(ctx context.Context, cfg Config) (sqlite.Stats, []string, error) {
	var db *sqlite.DB
	db, err := sqlite.Open(ctx, cfg.DB, sqlite.Options{Locking: sqlite.Locking(cfg.DBLocking), Check: sqlite.Check(cfg.DBCheck)})
	if errors.Is(err, sqlite.ErrLocked) {
		if ro, rerr := sqlite.OpenReadOnly(ctx, cfg.DB); rerr == nil {
			db, err = ro, nil
		}
	}
	if err != nil {
		return sqlite.Stats{}, nil, err
	}
	defer db.Close()
	var sum, full sqlite.Stats
	// One read view, so both see the same committed state beside a loader.
	err = db.Read(ctx, func(r *sqlite.DB) error {
		if sum, err = r.Stats(ctx); err != nil {
			return err
		}
		full, err = r.StatsFull(ctx)
		return err
	})
	if err != nil {
		return full, nil, err
	}
	return full, sqlite.SummaryDifferences(sum, full), nil
}

// readStats reads the database: alone when no loader runs, beside a loader
// in shared mode (read-only), or, when a loader in exclusive mode holds it and
// its HTTP address is known, by asking that loader.
func readStats(ctx context.Context, cfg Config) (sqlite.Stats, error) {
	db, err := sqlite.Open(ctx, cfg.DB, sqlite.Options{Locking: sqlite.Locking(cfg.DBLocking), Check: sqlite.Check(cfg.DBCheck)})
	if errors.Is(err, sqlite.ErrLocked) {
		if ro, rerr := sqlite.OpenReadOnly(ctx, cfg.DB); rerr == nil {
			defer ro.Close()
			return ro.Stats(ctx)
		}
	}
	if errors.Is(err, sqlite.ErrLocked) && cfg.HTTPAddr != "" {
		st, herr := web.FetchStats(ctx, cfg.HTTPAddr, 30*time.Second)
		if herr != nil {
			return st, fmt.Errorf("%w; asking the running loader: %w", err, herr)
		}
		return st, nil
	}
	if err != nil {
		return sqlite.Stats{}, err
	}
	defer db.Close()
	return db.Stats(ctx)
}

// writeStats writes s for people, in the spirit of the original's stats and
// availability-stats output.
func writeStats(w io.Writer, s sqlite.Stats) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }
	p("Database: %s\n\n", s.Path)
	p("Parking lots\n  total:\t%d\n  active:\t%d\n  deleted:\t%d\n\n", s.Lots.Total, s.Lots.Active, s.Lots.Deleted)
	p("Availability observations: %d\n", s.Observations)
	if len(s.Months) > 0 {
		p("  month\tobservations\tlots\tfirst\tlast\n")
		for _, m := range s.Months {
			p("  %s\t%d\t%d\t%s\t%s\n", m.Month, m.Observations, m.DistinctLots, m.First, m.Last)
		}
	}
	p("\nSnapshots\n")
	for _, d := range s.Datasets {
		if d.LastKey == "" {
			p("  %s:\t%d applied, none current\n", d.Dataset, d.Applied)
			continue
		}
		p("  %s:\t%d applied; latest %s fetched %s, applied %s\n", d.Dataset, d.Applied, d.LastKey, d.FetchedAt, d.AppliedAt)
		if q := d.Quality; q != nil {
			p("  \trows %d, duplicate IDs %d", q.Rows, q.DuplicateIDs)
			if l := q.Lots; l != nil {
				p(", active %d, appeared %d, disappeared %d, without position %d", l.Active, l.Appeared, l.Disappeared, l.LotsWithoutPosition)
				reasons := make([]string, 0, len(l.WithoutPositionByReason))
				for r, n := range l.WithoutPositionByReason {
					reasons = append(reasons, fmt.Sprintf("%s %d", r, n))
				}
				if len(reasons) > 0 {
					sort.Strings(reasons)
					p(" (%s)", strings.Join(reasons, ", "))
				}
			}
			if a := q.Availability; a != nil {
				p(", valid %d, unknown %d (%.0f%%: -9 %d, other negative %d, not an integer %d), unknown lot IDs %d",
					a.Valid, a.Unknown, 100*a.UnknownShare, a.NoFigure, a.OtherNegative, a.NotInteger, a.UnknownLotIDs)
			}
			p("\n")
		}
	}
	// The fetch time in Taipei time is what the runbook's override takes
	// (backfill -from that day); the key's time is UTC.
	p("\nRefused snapshots: %d%s\n", s.Refused.Count, byDataset(s.Refused.ByDataset))
	for _, e := range s.Refused.Latest {
		p("  %s\tfetched %s\t%s\t%s\n", e.Dataset, e.FetchedAt, e.Key, e.Reason)
	}
	p("Retracted snapshots: %d\n", s.Retractions.Count)
	for _, e := range s.Retractions.Latest {
		p("  %s\tfetched %s\t%s\tretracted %s: %s\n", e.Dataset, e.FetchedAt, e.Key, e.At, e.Reason)
	}
	p("Rejected messages: %d\n", s.Rejections.Count)
	for _, e := range s.Rejections.Latest {
		p("  %s\t%s\t%s\n", e.At, e.Key, e.Reason)
	}
	return tw.Flush()
}

// byDataset renders per-dataset counts: " (lots 1, availability 2)", or ""
// when there are none.
func byDataset(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	var parts []string
	for _, d := range feed.Datasets {
		if n := m[string(d)]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", d, n))
		}
	}
	return " (" + strings.Join(parts, ", ") + ")"
}
