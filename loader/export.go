package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/parking-newtaipei/parking-newtaipei/shared/cli"
	"github.com/parking-newtaipei/parking-newtaipei/shared/database"
	"github.com/parking-newtaipei/parking-newtaipei/shared/export"
)

// runExport writes one export from the database on demand: the same files
// the running loader writes after each availability apply, plus the CSV.
func runExport(ctx context.Context, args []string, stdout, stderr io.Writer, env cli.Env) int {
	var (
		cfg    Config
		format string
		out    string
	)
	f := cli.NewFlags("loader export", env, stderr)
	cfg.bindCommon(f)
	f.String(&format, "format", "", "json", "json (the original's availability.json), geojson (the active lots) or csv")
	f.String(&out, "out", "", "", "write to this file, atomically (default: standard output)")
	if err := f.Parse(args); err != nil {
		return usageError(stderr, err)
	}
	if err := cfg.Validate(); err != nil {
		return usageError(stderr, err)
	}
	fm, err := export.ParseFormat(format)
	if err != nil {
		return usageError(stderr, err)
	}
	log, err := cli.NewLogger(stderr, cfg.LogLevel)
	if err != nil {
		return usageError(stderr, err)
	}
	db, err := database.Open(ctx, cfg.DB, database.Options{Logger: log})
	if errors.Is(err, database.ErrLocked) {
		fmt.Fprintf(stderr, "loader export: %v\nA running loader holds the database; it writes -latest-json and -geojson after each availability apply.\n", err)
		return cli.ExitSkipped
	}
	if err != nil {
		log.Error("export", "err", err)
		return cli.ExitError
	}
	defer db.Close()
	if out != "" {
		err = export.WriteFile(ctx, db, fm, out)
	} else {
		w := bufio.NewWriter(stdout)
		err = export.Write(ctx, db, fm, w)
		if err == nil {
			err = w.Flush()
		}
	}
	if err != nil {
		log.Error("export", "format", format, "err", err)
		return cli.ExitError
	}
	return cli.ExitOK
}
