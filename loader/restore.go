package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/cli"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
)

// runRestore puts a backup in place of the database, while no loader runs.
// On ECS the image has no shell and only the loader's task definition
// mounts EFS, so this is how a backup is restored there: a one-off task with
// the command ["restore", "-from", "/mnt/efs/backups/parking-....db"].
//
// It does not open the database the loader's way: the database being
// replaced may be exactly what cannot be opened (damaged, or from a newer
// schema). It takes the loaders' writer lock (<db>.lock) for its whole run,
// and SQLite's locks on the file, so a running loader in either locking mode,
// or any other process with the file open, makes it refuse, with exit 2 like
// the other commands that need the database to themselves; a loader started
// meanwhile waits for it and opens the restored file.
func runRestore(ctx context.Context, f *cli.Flags, args []string) int {
	var (
		cfg  Config
		from string
	)
	cfg.bindDB(f)
	f.String(&from, "from", "", "", "backup to restore (required): a database file of this project, checked before anything is replaced; the current database is kept as <db>.replaced-<time>")
	f.Require("from")
	log, err := f.Start(args, &cfg)
	if err != nil {
		return f.UsageError(err)
	}
	start := time.Now()
	res, err := sqlite.Restore(ctx, from, cfg.DB, sqlite.RestoreOptions{Logger: log})
	if errors.Is(err, sqlite.ErrLocked) {
		fmt.Fprintf(f.Stderr, "%s: refused: %v\nStop the running loader (on ECS: the service at desired count 0) and anything else that has the database open, then restore.\n", f.Name(), err)
		return cli.ExitSkipped
	}
	if err != nil {
		log.Error("restore", "db", cfg.DB, "from", from, "err", err)
		return cli.ExitError
	}
	log.Info("database restored", "db", cfg.DB, "from", from, "schema_version", res.SchemaVersion,
		"bytes", res.Bytes, "kept", res.Kept, "duration_ms", time.Since(start).Milliseconds())
	if err := cli.PrintJSON(f.Stdout, res); err != nil {
		return cli.ExitError
	}
	return cli.ExitOK
}
