package main

import (
	"context"
	"encoding/json"
	"io"

	"github.com/parking-newtaipei/parking-newtaipei/shared/cli"
	"github.com/parking-newtaipei/parking-newtaipei/shared/database"
)

func runStats(ctx context.Context, args []string, stdout, stderr io.Writer, env cli.Env) int {
	var (
		cfg    Config
		asJSON bool
	)
	f := cli.NewFlags("loader stats", env, stderr)
	cfg.bindCommon(f)
	f.Bool(&asJSON, "json", "", false, "print JSON for machines")
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
	db, err := database.Open(ctx, cfg.DB, database.Options{Logger: log})
	if err != nil {
		log.Error("stats", "err", err)
		return cli.ExitError
	}
	defer db.Close()
	st, err := db.Stats(ctx)
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
