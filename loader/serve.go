package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/cli"
	"github.com/parking-newtaipei/parking-newtaipei/shared/export"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/load/backfill"
	"github.com/parking-newtaipei/parking-newtaipei/shared/load/consume"
	"github.com/parking-newtaipei/parking-newtaipei/shared/ops/metrics"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
	"github.com/parking-newtaipei/parking-newtaipei/shared/web"
	"github.com/parking-newtaipei/parking-newtaipei/shared/web/livemap"
)

func runServe(ctx context.Context, f *cli.Flags, args []string) int {
	var cfg Config
	cfg.bindConsume(f)
	cfg.bindHTTPAddr(f, "", httpServeUsage)
	f.Bool(&cfg.Drain, "drain", "", false, "exit 0 once the queue is empty")
	log, err := f.Start(args, &cfg)
	if err != nil {
		return f.UsageError(err)
	}
	if err := serve(ctx, cfg, log, f.Stderr); err != nil {
		log.Error("loader stopped", "err", err)
		return cli.ExitError
	}
	return cli.ExitOK
}

// loader is an open database with its backends: what serve and local share.
type loader struct {
	cfg   Config
	log   *slog.Logger
	db    *sqlite.DB
	store store.Store
	queue queue.Queue
	busy  maintenance // backups and reconcile, which /healthz must not take for a dead loop
	reg   *metrics.Registry
}

// open takes the database (and its single-writer lock) first: a second
// loader fails before it touches the queue.
func open(ctx context.Context, cfg Config, log *slog.Logger) (*loader, error) {
	db, err := sqlite.Open(ctx, cfg.DB, sqlite.Options{WaitLock: cfg.WaitLock, Logger: log, Locking: sqlite.Locking(cfg.DBLocking), Check: sqlite.Check(cfg.DBCheck)})
	if err != nil {
		return nil, err
	}
	st, err := cli.OpenStore(ctx, cfg.Store, cli.BackendOptions{Logger: log})
	if err != nil {
		db.Close()
		return nil, err
	}
	q, err := cli.OpenQueue(ctx, cfg.Queue, cli.BackendOptions{Logger: log})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &loader{cfg: cfg, log: log, db: db, store: st, queue: q}, nil
}

func (l *loader) Close() error {
	return errors.Join(l.queue.Close(), l.db.Close())
}

func (l *loader) consumeConfig() consume.Config {
	return consume.Config{
		Queue:           l.queue,
		Store:           l.store,
		DB:              l.db,
		Logger:          l.log,
		Wait:            l.cfg.PollWait,
		Visibility:      l.cfg.Visibility,
		Drain:           l.cfg.Drain,
		AllowMassDelete: l.cfg.AllowMassDelete,
		ShutdownTimeout: l.cfg.ShutdownTimeout,
	}
}

// serve runs the consume loop. logOut is the log's writer: the CloudWatch
// EMF lines go there too, since CloudWatch reads them from the log stream.
func serve(ctx context.Context, cfg Config, log *slog.Logger, logOut io.Writer) error {
	l, err := open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer l.Close()
	cc, stop, err := l.observe(ctx, logOut)
	if err != nil {
		return err
	}
	defer stop()
	log.Info("loader started", "version", version, "db", cfg.DB, "store", l.store.String(), "queue", l.queue.String(), "drain", cfg.Drain)
	l.backupOnce(ctx)
	if cfg.Reconcile > 0 {
		if err := l.busy.run(ctx, l.log, "reconcile", maintenanceLimit, l.reconcile); err != nil {
			return err
		}
		// What reconcile applied or refused, at once: a refusal found at a
		// start is as loud as one found by the loop.
		if err := l.reg.WriteEMF(logOut, false); err != nil {
			log.Warn("metrics line not written", "err", err)
		}
	}
	bctx, stopBackups := context.WithCancel(ctx)
	backups := make(chan struct{})
	go func() { defer close(backups); l.runBackups(bctx) }()
	err = consume.Run(ctx, cc)
	stopBackups()
	<-backups
	log.Info("loader stopped")
	return err
}

// emfEvery is how often the periodic EMF line is written: with zero counts
// when nothing happened, so the "nothing applied for 15 minutes" alarm sees
// zeros rather than missing data.
const emfEvery = time.Minute

// observe wires what operators and analysts see of a running loader into a
// consume configuration: metrics (on /metrics and as EMF lines on logOut),
// the exports written after each applied availability snapshot, and the HTTP
// server when -http-addr is set. It runs after open, so /readyz answers 200
// only once the database is open and its checks passed. stop, called after
// consume returns, ends the periodic EMF lines and shuts the server down.
func (l *loader) observe(ctx context.Context, logOut io.Writer) (consume.Config, func(), error) {
	reg := metrics.New(nil)
	l.reg = reg
	if last, err := l.db.LastApplied(ctx); err != nil {
		l.log.Warn("could not seed the staleness gauge from the ledger", "err", err)
	} else {
		for d, t := range last {
			reg.SetLastApplied(d, t)
		}
	}
	cc := l.consumeConfig()
	cc.OnEvent = reg.Observe
	pub, err := l.startPublisher(ctx, reg)
	if err != nil {
		return cc, nil, err
	}
	cc.AfterCommit = func(ctx context.Context, results []snapshot.Result) error {
		if err := reg.WriteEMF(logOut, false); err != nil {
			l.log.Warn("metrics line not written", "err", err)
		}
		pub.Notify(results) // never blocks: publication runs beside the loop
		return l.writeExports(ctx, results)
	}

	var srv *web.Server
	if l.cfg.HTTPAddr != "" {
		wait := l.cfg.PollWait
		if wait <= 0 {
			wait = consume.DefaultWait
		}
		srv = web.New(web.Config{Addr: l.cfg.HTTPAddr, Logger: l.log, Metrics: reg,
			LiveWithin: web.LiveWindow(wait), Busy: l.busy.state, Stats: l.stats, Reads: l.db,
			Map: livemap.Config{Tiles: l.cfg.MapTiles}})
		if err := srv.Start(); err != nil {
			return cc, nil, err
		}
		srv.SetReady(true)
		// Not ready from the moment the stop begins: no new traffic is wanted.
		context.AfterFunc(ctx, func() { srv.SetReady(false) })
		// Not ready while the database fails; alive all the same.
		cc.OnEvent = func(ev consume.Event) {
			reg.Observe(ev)
			switch ev.Kind {
			case consume.DatabaseFailing:
				srv.SetFailing("database failing: " + ev.Err.Error())
			case consume.DatabaseRecovered:
				srv.SetFailing("")
			}
		}
	}

	emfCtx, cancelEMF := context.WithCancel(context.WithoutCancel(ctx))
	emfDone := make(chan struct{})
	go func() {
		defer close(emfDone)
		reg.RunEMF(emfCtx, logOut, emfEvery, l.log)
	}()
	stop := func() {
		l.stopPublisher(ctx, pub)
		cancelEMF()
		<-emfDone
		if srv != nil {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), web.ShutdownGrace)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				l.log.Warn("http server did not stop cleanly", "err", err)
			}
		}
	}
	return cc, stop, nil
}

// stats reads the statistics through a read view: beside the applies in
// shared mode, taking turns with them in exclusive mode.
func (l *loader) stats(ctx context.Context) (st sqlite.Stats, err error) {
	err = l.db.Read(ctx, func(r *sqlite.DB) error {
		st, err = r.Stats(ctx)
		return err
	})
	return st, err
}

// writeExports rewrites the latest-availability JSON and the GeoJSON after a
// transaction that applied an availability snapshot. A failure is the
// caller's warning: the apply stands, and the next one writes them again.
func (l *loader) writeExports(ctx context.Context, results []snapshot.Result) error {
	fresh := false
	for _, r := range results {
		if r.Dataset == feed.Availability && r.Outcome == snapshot.Applied && !r.AlreadyApplied {
			fresh = true
		}
	}
	if !fresh {
		return nil
	}
	var errs []error
	for _, e := range []struct {
		path string
		f    export.Format
	}{{l.cfg.LatestJSON, export.JSON}, {l.cfg.GeoJSON, export.GeoJSON}} {
		if e.path == "" {
			continue
		}
		if err := export.WriteFile(ctx, l.db, e.f, e.path); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// reconcile applies, before consuming, the stored snapshots of the last
// cfg.Reconcile that the ledger lacks: those whose messages were lost (an
// extractor that died between put and send) or dead-lettered and since fixed.
func (l *loader) reconcile(ctx context.Context) error {
	b, err := backfill.New(backfill.Config{Store: l.store, DB: l.db, Logger: l.log, AllowMassDelete: l.cfg.AllowMassDelete,
		OnBatch: func(results []snapshot.Result) {
			for i := range results {
				l.reg.Observe(consume.Event{Kind: consume.Applied, Dataset: results[i].Dataset, Result: &results[i]})
			}
		}})
	if err != nil {
		return err
	}
	sum, err := b.Reconcile(ctx, l.cfg.Reconcile)
	if err != nil {
		return fmt.Errorf("reconcile the last %s: %w", l.cfg.Reconcile, err)
	}
	l.log.Info("reconciled", "window", l.cfg.Reconcile.String(), "summary", sum)
	return nil
}
