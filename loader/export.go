package main

import (
	"bufio"
	"context"

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
	db, code, ok := openAlone(ctx, f, cfg, log,
		"A running loader holds the database; it writes -latest-json and -geojson after each availability apply.", sqlite.Options{})
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
