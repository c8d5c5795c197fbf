package main

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/cli"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
)

// keyList is a repeatable -key flag.
type keyList []string

func (k *keyList) String() string { return strings.Join(*k, ",") }

func (k *keyList) Set(v string) error {
	v = strings.TrimSpace(v)
	if _, err := snapshot.ParseKey(v); err != nil {
		return err
	}
	*k = append(*k, v)
	return nil
}

// runRetract withdraws applied snapshots (a fetch time from a wrong clock, a
// feed that answered garbage a guard did not catch): the database is rebuilt
// as if they had never arrived, and nothing applies them again. Like backup
// and restore it needs the database to itself: it refuses with exit 2 while
// a loader runs, so the operator stops the loader, retracts, starts it again.
// A retraction is rare and deliberate; a running loader doing it on request
// would need a second way into it, and the stop costs minutes the queue
// absorbs.
func runRetract(ctx context.Context, f *cli.Flags, args []string) int {
	var (
		cfg    Config
		keys   keyList
		reason string
	)
	cfg.bindDB(f)
	f.Store(&cfg.Store)
	f.Var(&keys, "key", "`KEY` of a snapshot to retract, as in the ledger and the store (lots/2026/11/26/20261125T180047Z-<16 hex>.json.gz); repeat for more (required)")
	f.String(&reason, "reason", "", "", "why, recorded with each retraction and in the ledger")
	f.Require("reason")
	log, err := f.Start(args, &cfg)
	if err != nil {
		return f.UsageError(err)
	}
	if len(keys) == 0 {
		return f.UsageError(errors.New("-key is required (one per snapshot)"))
	}
	db, code, ok := openAlone(ctx, f, cfg, log, "Stop the running loader first (on ECS: the service at desired count 0), then retract.", sqlite.Options{})
	if !ok {
		return code
	}
	defer db.Close()
	st, err := cli.OpenStore(ctx, cfg.Store, cli.BackendOptions{Logger: log})
	if err != nil {
		log.Error("retract", "store", cfg.Store, "err", err)
		return cli.ExitError
	}
	start := time.Now()
	res, err := db.Retract(ctx, keys, reason, readKey(st))
	if err != nil {
		log.Error("retract", "db", cfg.DB, "keys", []string(keys), "err", err)
		return cli.ExitError
	}
	for _, r := range res.Snapshots {
		log.Info("snapshot retracted", "key", r.Key, "dataset", r.Dataset, "fetched_at", r.FetchedAt, "was", r.Outcome,
			"already_retracted", r.AlreadyRetracted, "changed", r.Changed, "reason", reason)
	}
	log.Info("retract finished", "snapshots", len(res.Snapshots), "reread", res.Reread, "duration_ms", time.Since(start).Milliseconds())
	if err := cli.PrintJSON(f.Stdout, res); err != nil {
		return cli.ExitError
	}
	return cli.ExitOK
}

// readKey reads snapshots back from the store for a retraction, verified
// as every reader verifies them.
func readKey(st store.Store) sqlite.ReadFunc {
	return func(ctx context.Context, key string) (*snapshot.Input, error) {
		return snapshot.Read(ctx, st, snapshot.Ref{Key: key}, snapshot.ReadOptions{})
	}
}
