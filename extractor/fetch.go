package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/parking-newtaipei/parking-newtaipei/shared/cli"
	"github.com/parking-newtaipei/parking-newtaipei/shared/extract"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/ops/healthping"
)

func runFetch(ctx context.Context, f *cli.Flags, args []string) int {
	var (
		cfg           Config
		d             feed.Dataset
		format        string
		force, dryRun bool
	)
	cfg.bind(f)
	f.Dataset(&d, "dataset to fetch: `lots|availability`")
	f.Require("dataset")
	f.String(&format, "format", "", "json", "endpoint: json (paged, the default) or csv (the whole-file download)")
	f.Bool(&force, "force", "", false, "store and enqueue lots even when unchanged since the last stored snapshot")
	f.Bool(&dryRun, "dry-run", "", false, "fetch and validate, print what would be stored, write nothing")
	log, err := f.Start(args, &cfg)
	if err != nil {
		return f.UsageError(err)
	}
	fm, err := feed.ParseFormat(format)
	if err != nil {
		return f.UsageError(fmt.Errorf("-format: %w", err))
	}
	pingURL := cfg.PingAvailability
	if d == feed.Lots {
		pingURL = cfg.PingLots
	}
	pinger := healthping.Pinger{Logger: log}

	res, err := fetchOnce(ctx, cfg, log, extract.Request{Dataset: d, Format: fm, Force: force, DryRun: dryRun})
	switch {
	case errors.Is(err, extract.ErrUnchanged):
		cli.PrintJSON(f.Stdout, res)
		if !dryRun {
			pinger.Ping(ctx, pingURL, false, "lots unchanged; skipped")
		}
		return cli.ExitSkipped
	case err != nil:
		log.Error("fetch failed", "dataset", string(d), "err", err)
		if !dryRun {
			pinger.Ping(ctx, pingURL, true, err.Error())
		}
		return cli.ExitError
	}
	cli.PrintJSON(f.Stdout, res)
	if dryRun {
		log.Info("dry run: nothing stored", "dataset", string(d), "key", res.Key, "rows", res.Rows, "size", res.Size)
		return cli.ExitOK
	}
	log.Info("snapshot stored and enqueued", "dataset", string(d), "key", res.Key, "rows", res.Rows,
		"size", res.Size, "responses", res.Responses, "sha256", res.SHA256)
	pinger.Ping(ctx, pingURL, false, fmt.Sprintf("stored %s (%d rows)", res.Key, res.Rows))
	return cli.ExitOK
}

// fetchOnce opens the backends a fetch needs and runs one job. A dry run
// never opens the queue.
func fetchOnce(ctx context.Context, cfg Config, log *slog.Logger, req extract.Request) (extract.Result, error) {
	fetcher, err := extract.NewClient(extract.ClientConfig{BaseURL: cfg.FeedBaseURL, Logger: log})
	if err != nil {
		return extract.Result{}, err
	}
	st, err := cli.OpenStore(ctx, cfg.Store, cli.BackendOptions{Logger: log})
	if err != nil {
		return extract.Result{}, err
	}
	job := &extract.Job{Fetcher: fetcher, Store: st, Logger: log}
	if !req.DryRun {
		q, err := cli.OpenQueue(ctx, cfg.Queue, cli.BackendOptions{Logger: log})
		if err != nil {
			return extract.Result{}, err
		}
		defer q.Close()
		job.Queue = q
	}
	return job.Run(ctx, req)
}
