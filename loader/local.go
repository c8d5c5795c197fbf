package main

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/parking-newtaipei/parking-newtaipei/shared/cli"
	"github.com/parking-newtaipei/parking-newtaipei/shared/clock"
	"github.com/parking-newtaipei/parking-newtaipei/shared/extract"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/load/consume"
	"github.com/parking-newtaipei/parking-newtaipei/shared/ops/healthping"
	"github.com/parking-newtaipei/parking-newtaipei/shared/ops/redact"
	"github.com/parking-newtaipei/parking-newtaipei/shared/ops/schedule"
)

// runLocal runs the whole pipeline in one process with no AWS account: the
// built-in schedule runs the extractor's job, and the loader consumes the
// same embedded queue. It is the README's first command.
func runLocal(ctx context.Context, f *cli.Flags, args []string) int {
	var (
		cfg                  Config
		availabilityEvery    time.Duration
		lotsHour, lotsMinute int
	)
	cfg.bindConsume(f)
	cfg.bindHTTPAddr(f, "127.0.0.1:8080", httpServeUsage)
	f.FeedBaseURL(&cfg.FeedBaseURL)
	f.Healthchecks(&cfg.PingLots, &cfg.PingAvailability)
	f.Duration(&availabilityEvery, "availability-every", "PARKING_AVAILABILITY_EVERY", 5*time.Minute, "fetch the live feed this often, aligned to the clock")
	f.Int(&lotsHour, "lots-hour", "PARKING_LOTS_HOUR", 2, "fetch the lots daily at this hour, Asia/Taipei")
	f.Int(&lotsMinute, "lots-minute", "PARKING_LOTS_MINUTE", 0, "... and this minute")
	log, err := f.Start(args, &cfg)
	if err != nil {
		return f.UsageError(err)
	}
	if availabilityEvery < time.Minute || lotsHour < 0 || lotsHour > 23 || lotsMinute < 0 || lotsMinute > 59 {
		return f.UsageError(errors.New("-availability-every must be at least 1m; -lots-hour 0-23; -lots-minute 0-59"))
	}
	l, err := open(ctx, cfg, log)
	if err != nil {
		log.Error("loader local", "err", err)
		return cli.ExitError
	}
	defer l.Close()
	cc, stopObserving, err := l.observe(ctx, f.Stderr)
	if err != nil {
		log.Error("loader local", "err", err)
		return cli.ExitError
	}
	defer stopObserving()
	fetcher, err := extract.NewClient(extract.ClientConfig{BaseURL: cfg.FeedBaseURL, Logger: log})
	if err != nil {
		log.Error("loader local", "err", err)
		return cli.ExitError
	}
	job := &extract.Job{Fetcher: fetcher, Store: l.store, Queue: l.queue, Logger: log}
	pinger := healthping.Pinger{Logger: log}
	// noLots: the database has no applied lots snapshot yet (a new one, or one
	// being rebuilt beside an existing snapshot directory).
	noLots := func(ctx context.Context) bool {
		_, ok, err := l.db.LatestFetchedAt(ctx, feed.Lots)
		return err != nil || !ok
	}
	fetchJob := func(d feed.Dataset, pingURL string) func(context.Context) error {
		return func(ctx context.Context) error {
			// Without lots in the database the content-hash skip would keep a
			// stored-but-unapplied list out forever: fetch it regardless.
			force := d == feed.Lots && noLots(ctx)
			res, err := job.Run(ctx, extract.Request{Dataset: d, Format: feed.JSON, Force: force})
			switch {
			case errors.Is(err, extract.ErrUnchanged):
				pinger.Ping(ctx, pingURL, false, "lots unchanged; skipped")
				return nil
			case err != nil:
				pinger.Ping(ctx, pingURL, true, err.Error())
				return err
			}
			log.Info("snapshot stored and enqueued", "dataset", string(d), "key", res.Key, "rows", res.Rows)
			pinger.Ping(ctx, pingURL, false, "stored "+res.Key)
			return nil
		}
	}
	log.Info("local pipeline started", "version", version, "db", cfg.DB, "store", l.store.String(), "queue", l.queue.String(), "feed", redact.URL(cfg.FeedBaseURL))

	l.backupOnce(ctx)
	// As serve does: snapshots stored while no loader ran, or whose messages
	// were lost, are applied before anything else.
	if cfg.Reconcile > 0 {
		if err := l.busy.run(ctx, l.log, "reconcile", maintenanceLimit, l.reconcile); err != nil {
			log.Error("loader local", "err", err)
			return cli.ExitError
		}
	}
	// One clock for the schedule, the lots retry and the consume loop.
	clk := clock.Real{}
	cc.Clock = clk
	g, gctx := errgroup.WithContext(ctx)
	// lotsOK says a lots fetch of this process succeeded (stored, or
	// unchanged); lotsTried is when one was last attempted.
	var lotsOK atomic.Bool
	var lotsTried atomic.Int64
	fetchLots := fetchJob(feed.Lots, cfg.PingLots)
	lotsJob := func(ctx context.Context) error {
		lotsTried.Store(clk.Now().UnixNano())
		err := fetchLots(ctx)
		lotsOK.Store(err == nil)
		return err
	}
	availabilityJob := fetchJob(feed.Availability, cfg.PingAvailability)
	g.Go(func() error {
		schedule.Run(gctx, log, clk,
			schedule.Job{
				Name: "lots", Spec: schedule.Daily{Hour: lotsHour, Minute: lotsMinute, Loc: clock.Taipei},
				// A new database has no lots: fetch them at once rather than at 02:00.
				AtStart: noLots,
				Run:     lotsJob,
			},
			schedule.Job{
				Name: "availability", Spec: schedule.Every{D: availabilityEvery},
				AtStart: func(context.Context) bool { return true },
				Run: func(ctx context.Context) error {
					// A lots fetch that failed at start is not left until 02:00:
					// while the database has none, every availability tick tries again.
					retry := clk.Now().Sub(time.Unix(0, lotsTried.Load())) > availabilityEvery/2
					if !lotsOK.Load() && retry && noLots(ctx) {
						if err := lotsJob(ctx); err != nil {
							log.Warn("lots still missing; retrying at the next tick", "err", err)
						}
					}
					return availabilityJob(ctx)
				},
			},
		)
		return nil
	})
	g.Go(func() error {
		return consume.Run(gctx, cc)
	})
	g.Go(func() error {
		l.runBackups(gctx)
		return nil
	})
	if err := g.Wait(); err != nil {
		log.Error("local pipeline stopped", "err", err)
		return cli.ExitError
	}
	log.Info("local pipeline stopped")
	return cli.ExitOK
}
