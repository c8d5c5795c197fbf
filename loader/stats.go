package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/cli"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
	"github.com/parking-newtaipei/parking-newtaipei/shared/web"
)

func runStats(ctx context.Context, args []string, stdout, stderr io.Writer, env cli.Env) int {
	var (
		cfg    Config
		asJSON bool
	)
	f := cli.NewFlags("loader stats", env, stderr)
	cfg.bindCommon(f)
	f.String(&cfg.HTTPAddr, "http-addr", "PARKING_HTTP_ADDR", "", "a running loader's HTTP address, asked for /stats when it holds the database")
	f.Bool(&asJSON, "json", "", false, "print JSON for machines")
	log, err := cfg.parse(f, args, stderr)
	if err != nil {
		return usageError(stderr, err)
	}
	st, err := readStats(ctx, cfg)
	if errors.Is(err, sqlite.ErrLocked) && cfg.HTTPAddr == "" {
		fmt.Fprintf(stderr, "loader stats: %v\nA running loader holds the database: set -http-addr (PARKING_HTTP_ADDR) to its HTTP address to ask it instead.\n", err)
		return cli.ExitSkipped
	}
	if err != nil {
		log.Error("stats", "db", cfg.DB, "err", err)
		return cli.ExitError
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			return cli.ExitError
		}
		return cli.ExitOK
	}
	if err := st.WriteText(stdout); err != nil {
		return cli.ExitError
	}
	return cli.ExitOK
}

// readStats reads the database: alone when no loader runs, beside a loader
// in shared mode (read-only), or, when a loader in exclusive mode holds it and
// its HTTP address is known, by asking that loader.
func readStats(ctx context.Context, cfg Config) (sqlite.Stats, error) {
	db, err := sqlite.Open(ctx, cfg.DB, sqlite.Options{Locking: sqlite.Locking(cfg.DBLocking)})
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
