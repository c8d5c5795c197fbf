package sqlite

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestBackupIsAConsistentOpenableCopy(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(context.Background(), filepath.Join(dir, "parking.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Apply(context.Background(), lotsInput("lots/a", at(0), genLots(5, 0))); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(dir, "backup", "copy.db")
	if err := db.Backup(context.Background(), dest); err != nil {
		t.Fatalf("backup while the loader holds the database: %v", err)
	}
	// The copy is a complete database that another process can read while
	// the original stays locked.
	c, err := sql.Open("sqlite", "file:"+dest+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var n int
	if err := c.QueryRow("SELECT count(*) FROM parking_lots").Scan(&n); err != nil || n != 5 {
		t.Fatalf("backup holds %d lots (%v), want 5", n, err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(dest)); len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	if err := db.Backup(context.Background(), db.Path()); err == nil {
		t.Error("a backup onto the database itself was not refused")
	}
}

func TestBackupRotateKeepsTheNewest(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(context.Background(), filepath.Join(dir, "parking.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	backups := filepath.Join(dir, "backups")
	base := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	var last string
	for i := range 4 {
		if last, err = db.BackupRotate(context.Background(), backups, 2, base.Add(time.Duration(i)*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	entries, _ := os.ReadDir(backups)
	if len(entries) != 2 || entries[1].Name() != filepath.Base(last) || entries[0].Name() != "parking-20261126T020000Z.db" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("backups kept = %v, want the two newest", names)
	}
}

func TestApplyReportsTheCommitTime(t *testing.T) {
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "parking.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Apply(context.Background(), lotsInput("lots/a", at(0), genLots(3, 0)), availInput("availability/a", at(0), genAvailability(3, 0, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Commit <= 0 || res[0].Commit != res[1].Commit {
		t.Fatalf("commit times %v, %v: want one positive figure for the one transaction", res[0].Commit, res[1].Commit)
	}
}
