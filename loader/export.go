package main

import (
	"bufio"
	"context"
	"errors"
	"log/slog"

	"github.com/parking-newtaipei/parking-newtaipei/shared/cli"
	"github.com/parking-newtaipei/parking-newtaipei/shared/export"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
)

// runExport writes one export from the database on demand: the same files
// the running loader writes after each availability apply, plus the CSV.
func runExport(ctx context.Context, f *cli.Flags, args []string) int {
	var (
		cfg    Config
		format string
		out    string
	)
	cfg.bindDB(f)
	f.String(&format, "format", "", "json", "json (the original's availability.json), geojson (the active lots) or csv")
	f.String(&out, "out", "", "", "write to this file, atomically (default: standard output)")
	log, err := f.Start(args, &cfg)
	if err != nil {
		return f.UsageError(err)
	}
	fm, err := export.ParseFormat(format)
	if err != nil {
		return f.UsageError(err)
	}
	db, code, ok := openToRead(ctx, f, cfg, log,
		"A running loader in exclusive mode holds the database; it writes -latest-json and -geojson after each availability apply.")
	if !ok {
		return code
	}
	defer db.Close()
	if out != "" {
		err = export.WriteFile(ctx, db, fm, out)
	} else {
		w := bufio.NewWriter(f.Stdout)
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

// openToRead opens the database for a command that only reads it: alone
// when no loader runs (as openAlone), read-only beside a running loader in
// shared mode (WAL lets readers in, and they never hold up its applies), and
// refused with hint (exit code 2) beside one in exclusive mode, which lets
// no other open in.
func openToRead(ctx context.Context, f *cli.Flags, cfg Config, log *slog.Logger, hint string) (db *sqlite.DB, code int, ok bool) {
	db, err := sqlite.Open(ctx, cfg.DB, sqlite.Options{Logger: log, Locking: sqlite.Locking(cfg.DBLocking)})
	if errors.Is(err, sqlite.ErrLocked) {
		ro, rerr := sqlite.OpenReadOnly(ctx, cfg.DB)
		if errors.Is(rerr, sqlite.ErrLocked) {
			return nil, refuse(f, err, hint), false
		}
		if rerr != nil {
			log.Error(f.Name(), "db", cfg.DB, "err", rerr)
			return nil, cli.ExitError, false
		}
		log.Debug("a running loader holds the database: reading it read-only", "db", cfg.DB)
		return ro, cli.ExitOK, true
	}
	if err != nil {
		log.Error(f.Name(), "db", cfg.DB, "err", err)
		return nil, cli.ExitError, false
	}
	return db, cli.ExitOK, true
}
