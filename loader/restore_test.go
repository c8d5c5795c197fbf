package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parking-newtaipei/parking-newtaipei/internal/dbtest"
)

// The runbook's restore, as the one-off ECS task runs it, in each locking
// mode: refused (exit 2) while a loader process holds the database (in
// shared mode a loader holds the writer lock and keeps no SQLite lock but a
// shared one between transactions), then done once it has stopped, with the
// old database kept aside and the loader starting on the restored one.
func TestRestoreCommand(t *testing.T) {
	for _, mode := range []string{"exclusive", "shared"} {
		t.Run(mode, func(t *testing.T) { testRestoreCommand(t, mode) })
	}
}

func testRestoreCommand(t *testing.T, mode string) {
	p := newPipeline(t)
	p.extra = []string{"PARKING_DB_LOCKING=" + mode}
	backups := filepath.Join(p.dir, "backups")
	// A backup with no lots (taken at start, before the first apply), then a database with lots.
	p.mustRun(0, "extractor", "fetch", "-dataset", "lots")
	p.mustRun(0, "loader", "serve", "-drain", "-backup-dir", backups)
	entries, err := os.ReadDir(backups)
	if err != nil || len(entries) != 1 {
		t.Fatalf("backups: %v (%v)", entries, err)
	}
	backup := filepath.Join(backups, entries[0].Name())
	lots := dbtest.Count(t, p.db(), "parking_lots", "")
	if lots == 0 || dbtest.Count(t, backup, "parking_lots", "") != 0 {
		t.Fatal("the test needs a database with lots and a backup without")
	}

	running := p.serve(t, mode)
	r := p.mustRun(2, "loader", "restore", "-from", backup)
	for _, want := range []string{"refused", "writer lock " + p.db() + ".lock", "desired count 0"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("refusal lacks %q:\n%s", want, r.stderr)
		}
	}
	running.stop(t)
	if n := dbtest.Count(t, p.db(), "parking_lots", ""); n != lots {
		t.Fatalf("the refused restore changed the database: %d lots, want %d", n, lots)
	}

	r = p.mustRun(0, "loader", "restore", "-from", backup)
	var res struct {
		DB   string   `json:"db"`
		Kept []string `json:"kept"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.DB != p.db() || len(res.Kept) != 1 {
		t.Fatalf("restore printed %q (%v)", r.stdout, err)
	}
	if !strings.HasPrefix(res.Kept[0], p.db()+".replaced-") || dbtest.Count(t, res.Kept[0], "parking_lots", "") != lots {
		t.Errorf("the replaced database was not kept as %s.replaced-<time> with its %d lots: %v", p.db(), lots, res.Kept)
	}
	for _, s := range []string{"-journal", "-wal", "-shm"} {
		if _, err := os.Stat(p.db() + s); err == nil {
			t.Errorf("%s%s is beside the restored database", p.db(), s)
		}
	}
	// The loader opens the restored database, and the queue (now empty) and
	// the ledger agree: the lots snapshot is not in the restored ledger.
	p.mustRun(0, "loader", "serve", "-drain")
	if n := dbtest.Count(t, p.db(), "parking_lots", ""); n != 0 {
		t.Errorf("restored database has %d lots, want the backup's 0", n)
	}

	// A file that is not a backup is refused, and the database stays.
	bad := filepath.Join(p.dir, "notes.txt")
	os.WriteFile(bad, []byte("not a database"), 0o644)
	r = p.mustRun(1, "loader", "restore", "-from", bad)
	if !strings.Contains(r.stderr, bad) || !strings.Contains(r.stderr, "not a SQLite database") {
		t.Errorf("error does not name the file and the problem:\n%s", r.stderr)
	}
	p.mustRun(1, "loader", "restore")
}
