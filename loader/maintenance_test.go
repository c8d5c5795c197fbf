package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
)

func TestMaintenanceIsReportedWhileItRuns(t *testing.T) {
	var m maintenance
	log := slog.New(slog.DiscardHandler)
	inside := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error)
	go func() {
		done <- m.run(context.Background(), log, "backup", time.Hour, func(context.Context) error {
			close(inside)
			<-release
			return nil
		})
	}()
	<-inside
	if what, _ := m.state(); what != "backup" {
		t.Errorf("while the backup runs: %q, want \"backup\"", what)
	}
	before := time.Now()
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if what, ended := m.state(); what != "" || ended.Before(before) {
		t.Errorf("after the backup: %q ended %s, want nothing running and the end recorded", what, ended)
	}
}

// Work past the limit is cancelled and abandoned; the loader goes on. A stop
// of the loader itself is still an error.
func TestMaintenanceIsCutOffAtItsLimit(t *testing.T) {
	var m maintenance
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	err := m.run(context.Background(), log, "reconcile", time.Millisecond, func(ctx context.Context) error {
		<-ctx.Done() // a reconcile that never finishes by itself
		return ctx.Err()
	})
	if err != nil {
		t.Errorf("maintenance past its limit returned %v, want nil (consume on)", err)
	}
	if !strings.Contains(logs.String(), "reconcile abandoned") {
		t.Errorf("no error logged:\n%s", logs.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = m.run(ctx, log, "reconcile", time.Hour, func(ctx context.Context) error { return ctx.Err() })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("stopped loader: %v, want context.Canceled", err)
	}
	if what, _ := m.state(); what != "" {
		t.Errorf("still running: %q", what)
	}
}

// The start-up and periodic backups run as maintenance, so /healthz (which
// asks l.busy) stays 200 however long VACUUM INTO takes.
func TestBackupRunsAsMaintenance(t *testing.T) {
	dir := t.TempDir()
	db, err := sqlite.Open(context.Background(), filepath.Join(dir, "parking.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l := &loader{cfg: Config{BackupDir: filepath.Join(dir, "backups"), BackupKeep: 2}, log: slog.New(slog.DiscardHandler), db: db}
	before := time.Now()
	l.backupOnce(context.Background())
	if what, ended := l.busy.state(); what != "" || ended.Before(before) {
		t.Errorf("after backupOnce: running %q, ended %s; the backup did not run as maintenance", what, ended)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "backups", "parking-*.db")); len(m) != 1 {
		t.Errorf("backups: %v", m)
	}
}
