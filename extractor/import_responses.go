package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/parking-newtaipei/parking-newtaipei/shared/cli"
	"github.com/parking-newtaipei/parking-newtaipei/shared/extract"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
)

// ImportResponsesSummary is what import-responses prints on stdout.
type ImportResponsesSummary struct {
	Files    int `json:"files"`
	Stored   int `json:"stored"`
	Enqueued int `json:"enqueued"`
	// Skipped lists each exchange that did not become a snapshot, with why.
	Skipped []SkippedExchange `json:"skipped"`
	LastKey string            `json:"last_key,omitempty"`
}

// SkippedExchange is one saved exchange that was not imported.
type SkippedExchange struct {
	File   string `json:"file"`
	Reason string `json:"reason"`
}

func runImportResponses(ctx context.Context, f *cli.Flags, args []string) int {
	var (
		cfg     Config
		enqueue bool
	)
	cfg.bind(f)
	f.Bool(&enqueue, "enqueue", "", false, "enqueue each stored snapshot for the running loader (else leave them for 'loader backfill')")
	log, err := f.Start(args, &cfg)
	if err != nil {
		return f.UsageError(err)
	}
	if f.NArg() != 1 {
		return f.UsageError(errors.New("want one argument: DIR, the original's data/responses"))
	}
	st, err := cli.OpenStore(ctx, cfg.Store, cli.BackendOptions{Logger: log})
	if err != nil {
		log.Error("import-responses", "err", err)
		return cli.ExitError
	}
	var q queue.Queue
	if enqueue {
		if q, err = cli.OpenQueue(ctx, cfg.Queue, cli.BackendOptions{Logger: log}); err != nil {
			log.Error("import-responses", "err", err)
			return cli.ExitError
		}
		defer q.Close()
	}
	sum, err := importResponses(ctx, f.Arg(0), st, q, log)
	cli.PrintJSON(f.Stdout, sum)
	if err != nil {
		log.Error("import-responses stopped; run it again to continue (stored snapshots are not stored twice)", "err", err)
		return cli.ExitError
	}
	log.Info("import-responses finished", "files", sum.Files, "stored", sum.Stored, "enqueued", sum.Enqueued, "skipped", len(sum.Skipped))
	return cli.ExitOK
}

// importResponses stores each saved exchange as a snapshot (Put is
// idempotent: the same exchange encodes to the same bytes and key) and, with
// a queue, enqueues their messages ten per call.
func importResponses(ctx context.Context, dir string, st store.Store, q queue.Queue, log *slog.Logger) (ImportResponsesSummary, error) {
	sum := ImportResponsesSummary{Skipped: []SkippedExchange{}}
	files, err := extract.ResponseFiles(dir)
	if err != nil {
		return sum, err
	}
	var batch [][]byte
	flush := func() error {
		if q == nil || len(batch) == 0 {
			return nil
		}
		if err := q.Send(ctx, batch...); err != nil {
			return fmt.Errorf("enqueue on %s: %w", q, err)
		}
		sum.Enqueued += len(batch)
		batch = batch[:0]
		return nil
	}
	for _, path := range files {
		sum.Files++
		ex, err := extract.ReadExchange(path)
		if err != nil && !errors.Is(err, extract.ErrSkip) {
			return sum, err
		}
		var res extract.Result
		if err == nil {
			snap, rows, serr := ex.Snapshot()
			err = serr
			if err == nil {
				var data []byte
				if res, data, err = extract.Prepare(snap, rows); err == nil {
					var loc store.Location
					loc, err = st.Put(ctx, res.Key, data, store.Meta{Dataset: string(res.Dataset), FetchedAt: res.FetchedAt,
						SHA256: res.SHA256, FormatVersion: snap.Version})
					if err != nil {
						return sum, fmt.Errorf("%s: store %s: %w", path, res.Key, err)
					}
					sum.Stored++
					sum.LastKey = res.Key
					if q != nil {
						body, err := queue.EncodeMessage(extract.Message(res, loc))
						if err != nil {
							return sum, fmt.Errorf("%s: %w", path, err)
						}
						batch = append(batch, body)
						if len(batch) == 10 {
							if err := flush(); err != nil {
								return sum, err
							}
						}
					}
					continue
				}
			}
		}
		sum.Skipped = append(sum.Skipped, SkippedExchange{File: path, Reason: err.Error()})
		log.Warn("exchange skipped", "file", path, "reason", err.Error())
	}
	return sum, flush()
}
