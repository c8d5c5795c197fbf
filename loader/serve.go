package main

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"github.com/parking-newtaipei/parking-newtaipei/shared/backend"
	"github.com/parking-newtaipei/parking-newtaipei/shared/cli"
	"github.com/parking-newtaipei/parking-newtaipei/shared/consume"
	"github.com/parking-newtaipei/parking-newtaipei/shared/database"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer, env cli.Env) int {
	var cfg Config
	f := cli.NewFlags("loader serve", env, stderr)
	cfg.bindCommon(f)
	cfg.bindConsume(f)
	f.Bool(&cfg.Drain, "drain", "", false, "exit 0 once the queue is empty")
	if err := f.Parse(args); err != nil {
		return usageError(stderr, err)
	}
	if err := cfg.Validate(); err != nil {
		return usageError(stderr, err)
	}
	log, err := cli.NewLogger(stderr, cfg.LogLevel)
	if err != nil {
		return usageError(stderr, err)
	}
	if err := serve(ctx, cfg, log); err != nil {
		log.Error("loader stopped", "err", err)
		return cli.ExitError
	}
	return cli.ExitOK
}

// loader is an open database with its backends: what serve and local share.
type loader struct {
	cfg   Config
	log   *slog.Logger
	db    *database.DB
	store store.Store
	queue queue.Queue
}

// open takes the database (and its single-writer lock) first: a second
// loader fails before it touches the queue.
func open(ctx context.Context, cfg Config, log *slog.Logger) (*loader, error) {
	db, err := database.Open(ctx, cfg.DB, database.Options{WaitLock: cfg.WaitLock, Logger: log})
	if err != nil {
		return nil, err
	}
	st, err := backend.OpenStore(ctx, cfg.Store, backend.Options{Logger: log})
	if err != nil {
		db.Close()
		return nil, err
	}
	q, err := backend.OpenQueue(ctx, cfg.Queue, backend.Options{Logger: log})
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

func serve(ctx context.Context, cfg Config, log *slog.Logger) error {
	l, err := open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer l.Close()
	log.Info("loader started", "version", version, "db", cfg.DB, "store", l.store.String(), "queue", l.queue.String(), "drain", cfg.Drain)
	err = consume.Run(ctx, l.consumeConfig())
	log.Info("loader stopped")
	return err
}
