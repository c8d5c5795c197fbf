package main

import (
	"context"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/cli"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
)

// runBackup writes a consistent copy of the database (VACUUM INTO) while no
// loader runs. A running loader backs itself up with -backup-dir, because it
// holds the database's exclusive lock.
func runBackup(ctx context.Context, f *cli.Flags, args []string) int {
	var (
		cfg Config
		out string
	)
	cfg.bindDB(f)
	f.String(&out, "out", "", "", "file to write the backup to (replaced atomically)")
	f.Require("out")
	log, err := f.Start(args, &cfg)
	if err != nil {
		return f.UsageError(err)
	}
	db, code, ok := openAlone(ctx, f, cfg, log,
		"A running loader backs itself up: set its -backup-dir (PARKING_BACKUP_DIR).", sqlite.Options{})
	if !ok {
		return code
	}
	defer db.Close()
	start := time.Now()
	if err := db.Backup(ctx, out); err != nil {
		log.Error("backup", "db", cfg.DB, "err", err)
		return cli.ExitError
	}
	log.Info("backup written", "db", cfg.DB, "out", out, "duration_ms", time.Since(start).Milliseconds())
	return cli.ExitOK
}

// runBackups backs the database up into cfg.BackupDir every cfg.BackupEvery,
// keeping the newest cfg.BackupKeep, until ctx is done. The loader is the
// only process that can read its own database, so it is the one to copy it.
func (l *loader) runBackups(ctx context.Context) {
	if l.cfg.BackupDir == "" {
		return
	}
	t := time.NewTicker(l.cfg.BackupEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l.backupOnce(ctx)
	}
}

// backupOnce takes one rotated backup (when -backup-dir is set). Serve calls
// it before consuming, so there is always a copy from before this version
// applies anything. It runs as maintenance: however long VACUUM INTO takes
// on EFS (and applies wait for it), /healthz does not report the loader dead.
func (l *loader) backupOnce(ctx context.Context) {
	if l.cfg.BackupDir == "" {
		return
	}
	_ = l.busy.run(ctx, l.log, "backup", maintenanceLimit, func(ctx context.Context) error {
		start := time.Now()
		path, err := l.db.BackupRotate(ctx, l.cfg.BackupDir, l.cfg.BackupKeep, start)
		if err != nil {
			l.log.Error("backup failed", "dir", l.cfg.BackupDir, "err", err)
			return err
		}
		l.log.Info("backup written", "path", path, "duration_ms", time.Since(start).Milliseconds())
		return nil
	})
}
