package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var restoreNow = time.Date(2026, 11, 27, 3, 4, 5, 0, time.UTC)

// writeDB writes a parking database with n lots at path and closes it.
func writeDB(t *testing.T, path string, n int) {
	t.Helper()
	db, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Apply(context.Background(), lotsInput(fmt.Sprintf("lots/%d", n), at(n), genLots(n, 0))); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// raw opens path with one plain connection (no loader settings).
func raw(t *testing.T, path string) (*sql.DB, *sql.Conn) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); db.Close() })
	return db, conn
}

// countLots opens path as the loader does and counts its lots.
func countLots(t *testing.T, path string) int {
	t.Helper()
	db, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatalf("open %s after the restore: %v", path, err)
	}
	defer db.Close()
	var n int
	if err := db.conn.QueryRowContext(context.Background(), "SELECT count(*) FROM parking_lots").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// rawCount counts the lots of path with a plain connection, which applies
// whatever journal or WAL lies beside it.
func rawCount(t *testing.T, path string) int {
	t.Helper()
	_, conn := raw(t, path)
	var n int
	if err := conn.QueryRowContext(context.Background(), "SELECT count(*) FROM parking_lots").Scan(&n); err != nil {
		t.Fatalf("count lots in %s: %v", path, err)
	}
	var ok string
	if err := conn.QueryRowContext(context.Background(), "PRAGMA integrity_check").Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("integrity_check of %s: %q, %v", path, ok, err)
	}
	return n
}

func copyTo(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// frozenWAL leaves at dest a WAL database as a killed process leaves it:
// the main file holds n lots, the -wal (with its -shm) holds m more that
// were committed but never checkpointed.
func frozenWAL(t *testing.T, dest string, n, m int) {
	t.Helper()
	live := filepath.Join(t.TempDir(), "live.db")
	writeDB(t, live, n)
	_, conn := raw(t, live)
	ctx := context.Background()
	for _, q := range []string{"PRAGMA journal_mode = WAL", "PRAGMA wal_autocheckpoint = 0"} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	// m more lots (copies of the first m under new ids), committed into the WAL only.
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`INSERT INTO parking_lots
		SELECT 'W' || id, area, name, type, summary, address, tel, pay_ex, service_time, tw97x, tw97y,
		       total_car, total_motor, total_bike, created_at, updated_at, deleted_at, lon, lat, coord_note
		FROM parking_lots ORDER BY id LIMIT %d`, m)); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"", "-wal", "-shm"} {
		copyTo(t, live+s, dest+s)
	}
	if fi, err := os.Stat(dest + "-wal"); err != nil || fi.Size() == 0 {
		t.Fatalf("no WAL was captured: %v", err)
	}
}

// frozenJournal leaves at dest a database in the middle of a transaction, as
// a killed process leaves it: the main file already holds changed pages, the
// hot -journal the originals. Opened as a set it rolls back to n lots.
func frozenJournal(t *testing.T, dest string, n int) {
	t.Helper()
	live := filepath.Join(t.TempDir(), "live.db")
	writeDB(t, live, n)
	_, conn := raw(t, live)
	ctx := context.Background()
	// A tiny page cache makes SQLite write changed pages to the file before COMMIT.
	for _, q := range []string{"PRAGMA cache_size = 2", "BEGIN", "DELETE FROM lot_versions", "DELETE FROM parking_lots"} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []string{"", "-journal"} {
		copyTo(t, live+s, dest+s)
	}
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dest + "-journal"); err != nil || fi.Size() == 0 {
		t.Fatalf("no hot journal was captured: %v", err)
	}
	if same(t, live, dest) {
		t.Fatal("the main file was not changed before COMMIT: the journal is not hot")
	}
}

func same(t *testing.T, a, b string) bool {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(x, y)
}

// leftovers lists the files of dir other than want.
func leftovers(t *testing.T, dir string, want ...string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var extra []string
	for _, e := range entries {
		found := false
		for _, w := range want {
			found = found || e.Name() == w
		}
		if !found {
			extra = append(extra, e.Name())
		}
	}
	return extra
}

func TestRestoreReplacesTheDatabaseAndKeepsTheOldOne(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "parking.db")
	backup := filepath.Join(t.TempDir(), "parking-backup.db")
	writeDB(t, backup, 5)
	writeDB(t, dest, 9)

	res, err := Restore(context.Background(), backup, dest, RestoreOptions{Now: func() time.Time { return restoreNow }})
	if err != nil {
		t.Fatal(err)
	}
	if got := countLots(t, dest); got != 5 {
		t.Errorf("restored database has %d lots, want the backup's 5", got)
	}
	aside := dest + ".replaced-20261127T030405Z"
	if len(res.Kept) != 1 || res.Kept[0] != aside {
		t.Errorf("kept %v, want [%s]", res.Kept, aside)
	}
	if got := rawCount(t, aside); got != 9 {
		t.Errorf("the replaced database has %d lots, want its own 9", got)
	}
	if res.SchemaVersion != SchemaVersion() || res.Bytes == 0 {
		t.Errorf("result %+v", res)
	}
	if extra := leftovers(t, dir, "parking.db", "parking.db.replaced-20261127T030405Z"); len(extra) > 0 {
		t.Errorf("files left behind: %v", extra)
	}
}

func TestRestoreIntoAnEmptyPlace(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "new", "parking.db")
	backup := filepath.Join(t.TempDir(), "b.db")
	writeDB(t, backup, 4)
	res, err := Restore(context.Background(), backup, dest, RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Kept) != 0 {
		t.Errorf("kept %v although there was no database", res.Kept)
	}
	if got := countLots(t, dest); got != 4 {
		t.Errorf("%d lots, want 4", got)
	}
}

// A database that was in WAL mode leaves a -wal and -shm: applied to the
// restored file they would corrupt it, and deleted they would lose the
// replaced database's last transactions. They go aside with it.
func TestRestoreOverAWALDatabaseKeepsItsWALWithIt(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "parking.db")
	frozenWAL(t, dest, 9, 3)
	backup := filepath.Join(t.TempDir(), "b.db")
	writeDB(t, backup, 5)

	res, err := Restore(context.Background(), backup, dest, RestoreOptions{Now: func() time.Time { return restoreNow }})
	if err != nil {
		t.Fatal(err)
	}
	aside := dest + ".replaced-20261127T030405Z"
	if want := []string{aside, aside + "-wal"}; strings.Join(res.Kept, " ") != strings.Join(want, " ") {
		t.Errorf("kept %v, want %v", res.Kept, want)
	}
	for _, s := range []string{"-wal", "-shm", "-journal"} {
		if _, err := os.Stat(dest + s); err == nil {
			t.Errorf("%s%s is still beside the restored database", dest, s)
		}
	}
	if got := countLots(t, dest); got != 5 {
		t.Errorf("restored database has %d lots, want 5", got)
	}
	if got := rawCount(t, aside); got != 12 {
		t.Errorf("the replaced database opens with %d lots, want 9 + 3 from its WAL", got)
	}
}

// A hot journal left by a killed writer belongs to the old file: rolled back
// into the restored one it would overwrite its pages.
func TestRestoreOverAHotJournalKeepsTheJournalWithTheOldFile(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "parking.db")
	frozenJournal(t, dest, 300)
	backup := filepath.Join(t.TempDir(), "b.db")
	writeDB(t, backup, 5)

	res, err := Restore(context.Background(), backup, dest, RestoreOptions{Now: func() time.Time { return restoreNow }})
	if err != nil {
		t.Fatal(err)
	}
	aside := dest + ".replaced-20261127T030405Z"
	if want := []string{aside, aside + "-journal"}; strings.Join(res.Kept, " ") != strings.Join(want, " ") {
		t.Errorf("kept %v, want %v", res.Kept, want)
	}
	if got := rawCount(t, dest); got != 5 {
		t.Errorf("restored database has %d lots, want 5", got)
	}
	if got := rawCount(t, aside); got != 300 {
		t.Errorf("the replaced database rolls back to %d lots, want 300", got)
	}
}

// A backup taken as files from a live database (AWS Backup's copy of
// parking.db) is only complete with the journal or WAL beside it.
func TestRestoreTakesTheBackupsJournalOrWAL(t *testing.T) {
	t.Run("wal", func(t *testing.T) {
		backup := filepath.Join(t.TempDir(), "b.db")
		frozenWAL(t, backup, 5, 2)
		dest := filepath.Join(t.TempDir(), "parking.db")
		if _, err := Restore(context.Background(), backup, dest, RestoreOptions{}); err != nil {
			t.Fatal(err)
		}
		if got := countLots(t, dest); got != 7 {
			t.Errorf("%d lots, want 5 + 2 from the backup's WAL", got)
		}
		head := make([]byte, 20)
		f, _ := os.Open(dest)
		f.Read(head)
		f.Close()
		if head[18] != 1 || head[19] != 1 {
			t.Errorf("restored file is not in rollback-journal mode (header bytes %d %d)", head[18], head[19])
		}
	})
	t.Run("journal", func(t *testing.T) {
		backup := filepath.Join(t.TempDir(), "b.db")
		frozenJournal(t, backup, 300)
		dest := filepath.Join(t.TempDir(), "parking.db")
		if _, err := Restore(context.Background(), backup, dest, RestoreOptions{}); err != nil {
			t.Fatal(err)
		}
		if got := countLots(t, dest); got != 300 {
			t.Errorf("%d lots, want the 300 of the rolled-back transaction", got)
		}
	})
}

func TestRestoreRefusesBadBackupsAndTouchesNothing(t *testing.T) {
	src := filepath.Join(t.TempDir(), "good.db")
	writeDB(t, src, 5)
	good, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	edit := func(stmts ...string) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			if err := os.WriteFile(path, good, 0o644); err != nil {
				t.Fatal(err)
			}
			_, conn := raw(t, path)
			for _, s := range stmts {
				if _, err := conn.ExecContext(context.Background(), s); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	cases := []struct {
		name, want string
		make       func(t *testing.T, path string)
	}{
		{"not a database", "not a SQLite database", func(t *testing.T, path string) {
			os.WriteFile(path, []byte("id,name\n1,x\n"), 0o644)
		}},
		{"empty file", "not a SQLite database", func(t *testing.T, path string) { os.WriteFile(path, nil, 0o644) }},
		{"another application's database", "no schema version", edit("DROP TABLE rejections", "PRAGMA user_version = 0")},
		{"newer schema", "newer than this build", edit(fmt.Sprintf("PRAGMA user_version = %d", SchemaVersion()+1))},
		{"missing table", "missing table rejections", edit("DROP TABLE rejections")},
		{"corrupt page", "integrity_check", func(t *testing.T, path string) {
			// Garbage over the b-tree page header of parking_lots' root page.
			_, conn := raw(t, src)
			var root, size int
			if err := conn.QueryRowContext(context.Background(),
				"SELECT rootpage, (SELECT page_size FROM pragma_page_size) FROM sqlite_master WHERE name = 'parking_lots'").Scan(&root, &size); err != nil {
				t.Fatal(err)
			}
			b := bytes.Clone(good)
			for i := (root - 1) * size; i < (root-1)*size+12; i++ {
				b[i] = 0x5a
			}
			os.WriteFile(path, b, 0o644)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			dest := filepath.Join(dir, "parking.db")
			writeDB(t, dest, 9)
			before, _ := os.ReadFile(dest)
			backup := filepath.Join(t.TempDir(), "bad.db")
			c.make(t, backup)
			_, err := Restore(context.Background(), backup, dest, RestoreOptions{})
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), backup) {
				t.Fatalf("err %v, want one naming %s and saying %q", err, backup, c.want)
			}
			if after, _ := os.ReadFile(dest); !bytes.Equal(before, after) {
				t.Error("the database was changed")
			}
			if extra := leftovers(t, dir, "parking.db"); len(extra) > 0 {
				t.Errorf("files left behind: %v", extra)
			}
		})
	}
	t.Run("no database yet", func(t *testing.T) {
		dir := t.TempDir()
		backup := filepath.Join(t.TempDir(), "bad.db")
		edit("DROP TABLE rejections")(t, backup)
		if _, err := Restore(context.Background(), backup, filepath.Join(dir, "parking.db"), RestoreOptions{}); err == nil {
			t.Fatal("a bad backup was restored")
		}
		if extra := leftovers(t, dir); len(extra) > 0 {
			t.Errorf("files left where there was no database: %v", extra)
		}
	})
	t.Run("the database itself", func(t *testing.T) {
		dest := filepath.Join(t.TempDir(), "parking.db")
		writeDB(t, dest, 3)
		if _, err := Restore(context.Background(), dest, dest, RestoreOptions{}); err == nil || !strings.Contains(err.Error(), "the database itself") {
			t.Fatalf("err %v", err)
		}
	})
}

// A loader holding the database makes the restore refuse. The lock is held
// in this process here (the loader's command test holds it from another
// process): the open file description lock conflicts with SQLite's POSIX
// locks in both cases.
func TestRestoreRefusesWhileTheDatabaseIsHeld(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "parking.db")
	writeDB(t, dest, 9)
	backup := filepath.Join(t.TempDir(), "b.db")
	writeDB(t, backup, 5)

	db, err := Open(context.Background(), dest, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Restore(context.Background(), backup, dest, RestoreOptions{})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("restore while the loader holds the database: %v, want ErrLocked", err)
	}
	db.Close()
	if extra := leftovers(t, dir, "parking.db"); len(extra) > 0 {
		t.Errorf("files left behind: %v", extra)
	}
	if got := countLots(t, dest); got != 9 {
		t.Errorf("the held database has %d lots, want its own 9", got)
	}

	// A WAL-mode reader holds no lock on the file between transactions; its
	// mapping of the -shm file shows it.
	_, conn := raw(t, dest)
	ctx := context.Background()
	for _, q := range []string{"PRAGMA journal_mode = WAL", "SELECT count(*) FROM parking_lots"} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Restore(ctx, backup, dest, RestoreOptions{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("restore while a WAL connection is open: %v, want ErrLocked", err)
	}
	conn.Close()
}

// While the restore holds the database, a loader cannot open it.
func TestALoaderCannotOpenTheDatabaseWhileItIsHeldForRestore(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "parking.db")
	writeDB(t, dest, 2)
	unlock, _, err := holdDatabase(dest)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), dest, Options{LockTimeout: 50 * time.Millisecond})
	unlock()
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("open during the restore: %v, want ErrLocked", err)
	}
	if got := countLots(t, dest); got != 2 {
		t.Errorf("%d lots after the lock was released, want 2", got)
	}
}
