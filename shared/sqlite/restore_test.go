package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var restoreNow = time.Date(2026, 11, 27, 3, 4, 5, 0, time.UTC)

// lockFile is the writer lock's file beside parking.db: every loader, and
// every restore, leaves it (the flock, not the file, is the lock).
const lockFile = "parking.db.lock"

// writeDB writes a parking database with n lots at path, as a loader in
// locking mode mode leaves it ("" is auto: shared on the test's local disk),
// and closes it.
func writeDB(t *testing.T, path string, n int) { writeDBMode(t, path, n, "") }

func writeDBMode(t *testing.T, path string, n int, mode Locking) {
	t.Helper()
	db, err := Open(context.Background(), path, Options{Locking: mode})
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

// raw opens path with one plain connection (no loader settings), closed
// when the test ends.
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
// whatever journal or WAL lies beside it, checks its integrity, and closes
// it again (SQLite then removes the -wal and -shm it made).
func rawCount(t *testing.T, path string) int {
	t.Helper()
	n, err := plainCount(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return n
}

func plainCount(path string) (int, error) {
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM parking_lots").Scan(&n); err != nil {
		return 0, fmt.Errorf("count lots: %w", err)
	}
	rows, err := db.Query("PRAGMA integrity_check(3)")
	if err != nil {
		return 0, fmt.Errorf("integrity_check: %w", err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return 0, fmt.Errorf("integrity_check: %w", err)
		}
		problems = append(problems, line)
	}
	if err := rows.Err(); err != nil || len(problems) != 1 || problems[0] != "ok" {
		return 0, fmt.Errorf("integrity_check: %q, %v", problems, err)
	}
	return n, nil
}

// countAlone counts the lots of the file at path alone, copied without any
// journal or WAL: what a copy of that one file holds. -1: it holds no
// complete database of lots.
func countAlone(t *testing.T, path string) int {
	t.Helper()
	alone := filepath.Join(t.TempDir(), "alone.db")
	copyTo(t, path, alone)
	n, err := plainCount(alone)
	if err != nil {
		t.Logf("%s alone: %v", path, err)
		return -1
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

// rollbackHeader reports whether the database file at path is in
// rollback-journal mode (its header's read and write versions 1, where WAL
// has 2), read from the file without opening it.
func rollbackHeader(t *testing.T, path string) bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 20 {
		t.Fatalf("read the header of %s: %v", path, err)
	}
	return b[18] == 1 && b[19] == 1
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
// hot -journal the originals. Opened as a set it rolls back to n lots. A hot
// journal needs a rollback-journal database: one a loader in exclusive mode
// wrote.
func frozenJournal(t *testing.T, dest string, n int) {
	t.Helper()
	live := filepath.Join(t.TempDir(), "live.db")
	writeDBMode(t, live, n, LockingExclusive)
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

func at0405(dest string) string { return dest + ".replaced-20261127T030405Z" }

func TestRestoreReplacesTheDatabaseAndKeepsTheOldOne(t *testing.T) {
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			dir := t.TempDir()
			dest := filepath.Join(dir, "parking.db")
			backup := filepath.Join(t.TempDir(), "parking-backup.db")
			writeDB(t, backup, 5)
			writeDBMode(t, dest, 9, mode)

			res, err := Restore(context.Background(), backup, dest, RestoreOptions{Now: func() time.Time { return restoreNow }})
			if err != nil {
				t.Fatal(err)
			}
			aside := at0405(dest)
			if len(res.Kept) != 1 || res.Kept[0] != aside {
				t.Errorf("kept %v, want [%s]", res.Kept, aside)
			}
			if extra := leftovers(t, dir, "parking.db", lockFile, filepath.Base(aside)); len(extra) > 0 {
				t.Errorf("files left behind: %v", extra)
			}
			// What a restored database looks like: a rollback-journal file
			// (the backup was written by a loader in WAL mode); the next
			// loader puts it in its own mode.
			if !rollbackHeader(t, dest) {
				t.Error("the restored file is not in rollback-journal mode")
			}
			if got := rawCount(t, dest); got != 5 {
				t.Errorf("restored database has %d lots, want the backup's 5", got)
			}
			if got := countAlone(t, aside); got != 9 {
				t.Errorf("the replaced database has %d lots, want its own 9", got)
			}
			if got := countLots(t, dest); got != 5 {
				t.Errorf("the loader opens the restored database with %d lots, want 5", got)
			}
			if res.SchemaVersion != SchemaVersion() || res.Bytes == 0 {
				t.Errorf("result %+v", res)
			}
		})
	}
}

func TestRestoreIntoAnEmptyPlace(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new")
	dest := filepath.Join(dir, "parking.db")
	backup := filepath.Join(t.TempDir(), "b.db")
	writeDB(t, backup, 4)
	res, err := Restore(context.Background(), backup, dest, RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Kept) != 0 {
		t.Errorf("kept %v although there was no database", res.Kept)
	}
	if extra := leftovers(t, dir, "parking.db", lockFile); len(extra) > 0 {
		t.Errorf("files left behind: %v", extra)
	}
	if got := countLots(t, dest); got != 4 {
		t.Errorf("%d lots, want 4", got)
	}
}

// A loader in shared mode killed with committed transactions only in its
// -wal: the WAL is checkpointed into the old file before it goes aside, so
// the replaced file alone holds everything (no -wal to lose beside it), and
// nothing of it stays beside the restored file, where SQLite would apply it.
func TestRestoreOverAKilledSharedLoaderCheckpointsItsWAL(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "parking.db")
	h := startHolder(t, dest, LockingShared)
	if err := h.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	h.cmd.Wait()
	if fi, err := os.Stat(dest + "-wal"); err != nil || fi.Size() == 0 {
		t.Fatalf("the killed loader left no WAL: %v", err)
	}
	if got := countAlone(t, dest); got == 7 {
		t.Fatal("the killed loader's 7 lots are in the main file already: the test needs them only in its WAL")
	}
	restoreFiveOver(t, dir, dest, 7, "the 7 the killed loader committed")
}

// A hot journal left by a killed writer is rolled back into the old file
// before it goes aside: the replaced file alone is consistent, and the
// journal is never rolled back into the restored file.
func TestRestoreOverAHotJournalRollsItBackIntoTheOldFile(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "parking.db")
	frozenJournal(t, dest, 300)
	if got := countAlone(t, dest); got == 300 {
		t.Fatal("the main file alone is not torn: the journal is not hot")
	}
	restoreFiveOver(t, dir, dest, 300, "the 300 its journal rolls back to")
}

// restoreFiveOver restores a backup of 5 lots over dest (in dir) and checks
// that the old file went aside alone, settled, with wantAside lots, and
// that nothing else is left beside the restored file.
func restoreFiveOver(t *testing.T, dir, dest string, wantAside int, why string) {
	t.Helper()
	backup := filepath.Join(t.TempDir(), "b.db")
	writeDB(t, backup, 5)
	res, err := Restore(context.Background(), backup, dest, RestoreOptions{Now: func() time.Time { return restoreNow }})
	if err != nil {
		t.Fatal(err)
	}
	aside := at0405(dest)
	if want := []string{aside}; strings.Join(res.Kept, " ") != strings.Join(want, " ") {
		t.Errorf("kept %v, want %v", res.Kept, want)
	}
	if extra := leftovers(t, dir, "parking.db", lockFile, filepath.Base(aside)); len(extra) > 0 {
		t.Errorf("files left behind: %v", extra)
	}
	if got := rawCount(t, dest); got != 5 {
		t.Errorf("restored database has %d lots, want 5", got)
	}
	if got := countAlone(t, aside); got != wantAside {
		t.Errorf("the replaced file alone has %d lots, want %s", got, why)
	}
}

// What SQLite cannot settle keeps its WAL beside it, under the replaced
// name: a damaged file, and a WAL whose database is gone. Neither stays
// beside the restored file.
func TestRestoreKeepsAWALItCannotApplyBesideTheOldFile(t *testing.T) {
	frozen := filepath.Join(t.TempDir(), "frozen.db")
	frozenWAL(t, frozen, 9, 3)
	wal, err := os.ReadFile(frozen + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "b.db")
	writeDB(t, backup, 5)
	garbage := []byte("<html><body>Request blocked</body></html>\n")

	for _, c := range []struct {
		name     string
		mainFile []byte // nil: no main file
	}{{"damaged", garbage}, {"no database", nil}} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			dest := filepath.Join(dir, "parking.db")
			if c.mainFile != nil {
				os.WriteFile(dest, c.mainFile, 0o644)
			}
			os.WriteFile(dest+"-wal", wal, 0o644)
			res, err := Restore(context.Background(), backup, dest, RestoreOptions{Now: func() time.Time { return restoreNow }})
			if err != nil {
				t.Fatal(err)
			}
			aside := at0405(dest)
			want := []string{aside, aside + "-wal"}
			if c.mainFile == nil {
				want = want[1:]
			}
			if strings.Join(res.Kept, " ") != strings.Join(want, " ") {
				t.Errorf("kept %v, want %v", res.Kept, want)
			}
			if c.mainFile != nil {
				if b, _ := os.ReadFile(aside); !bytes.Equal(b, c.mainFile) {
					t.Error("the damaged file was changed")
				}
			}
			if b, _ := os.ReadFile(aside + "-wal"); !bytes.Equal(b, wal) {
				t.Error("the WAL was not kept as it was")
			}
			if got := rawCount(t, dest); got != 5 {
				t.Errorf("restored database has %d lots, want 5", got)
			}
		})
	}
}

// A backup taken as files from a live database (AWS Backup's copy of
// parking.db) is only complete with the journal or WAL beside it.
func TestRestoreTakesTheBackupsJournalOrWAL(t *testing.T) {
	t.Run("wal", func(t *testing.T) {
		backup := filepath.Join(t.TempDir(), "b.db")
		frozenWAL(t, backup, 5, 2)
		dir := t.TempDir()
		dest := filepath.Join(dir, "parking.db")
		if _, err := Restore(context.Background(), backup, dest, RestoreOptions{}); err != nil {
			t.Fatal(err)
		}
		if extra := leftovers(t, dir, "parking.db", lockFile); len(extra) > 0 {
			t.Errorf("files left behind: %v", extra)
		}
		if !rollbackHeader(t, dest) {
			t.Error("the restored file is not in rollback-journal mode")
		}
		if got := countAlone(t, dest); got != 7 {
			t.Errorf("%d lots in the restored file, want 5 + 2 from the backup's WAL", got)
		}
	})
	t.Run("journal", func(t *testing.T) {
		backup := filepath.Join(t.TempDir(), "b.db")
		frozenJournal(t, backup, 300)
		dest := filepath.Join(t.TempDir(), "parking.db")
		if _, err := Restore(context.Background(), backup, dest, RestoreOptions{}); err != nil {
			t.Fatal(err)
		}
		if got := countAlone(t, dest); got != 300 {
			t.Errorf("%d lots, want the 300 of the rolled-back transaction", got)
		}
	})
	// A WAL backup that a process has open may be checkpointed or written
	// under the copy: refused, naming the backup.
	t.Run("wal in use", func(t *testing.T) {
		backup := filepath.Join(t.TempDir(), "b.db")
		frozenWAL(t, backup, 5, 2)
		_, conn := raw(t, backup)
		if _, err := conn.ExecContext(context.Background(), "SELECT count(*) FROM parking_lots"); err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		dest := filepath.Join(dir, "parking.db")
		_, err := Restore(context.Background(), backup, dest, RestoreOptions{})
		if err == nil || errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "backup "+backup+": a process has it open in WAL mode") {
			t.Fatalf("err %v, want a refusal naming the backup in use", err)
		}
		if extra := leftovers(t, dir, lockFile); len(extra) > 0 {
			t.Errorf("files left behind: %v", extra)
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
			// Closed before the restore: a WAL file a process has open is refused.
			db, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			db.SetMaxOpenConns(1)
			for _, s := range stmts {
				if _, err := db.Exec(s); err != nil {
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
			if extra := leftovers(t, dir, "parking.db", lockFile); len(extra) > 0 {
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
		if extra := leftovers(t, dir, lockFile); len(extra) > 0 {
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

// A running loader makes the restore refuse, in either locking mode, and so
// does anything else that has the database open.
func TestRestoreRefusesWhileTheDatabaseIsHeld(t *testing.T) {
	backup := filepath.Join(t.TempDir(), "b.db")
	writeDB(t, backup, 5)
	refused := func(t *testing.T, dest, want string) {
		t.Helper()
		_, err := Restore(context.Background(), backup, dest, RestoreOptions{})
		if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), want) {
			t.Fatalf("restore: %v, want ErrLocked saying %q", err, want)
		}
	}
	// A loader in another process (SQLite's locks are per process): in
	// shared mode it holds the writer lock and, between transactions, no
	// more than a shared lock on the file.
	for _, mode := range modes {
		t.Run("loader "+string(mode), func(t *testing.T) {
			dir := t.TempDir()
			dest := filepath.Join(dir, "parking.db")
			h := startHolder(t, dest, mode)
			refused(t, dest, "writer lock "+dest+".lock")
			h.release(t)
			if extra := leftovers(t, dir, "parking.db", lockFile); len(extra) > 0 {
				t.Errorf("files left behind: %v", extra)
			}
			if got := countLots(t, dest); got != 7 {
				t.Errorf("the held database has %d lots, want its own 7", got)
			}
		})
	}
	// The writer lock alone, as a loader holds it before SQLite opens the
	// file (and a shared-mode loader beside no SQLite lock of its own at all
	// would): the restore refuses, and goes ahead once it is released.
	t.Run("writer lock", func(t *testing.T) {
		dest := filepath.Join(t.TempDir(), "parking.db")
		writeDB(t, dest, 9)
		lock, err := lockWriter(context.Background(), dest+".lock", 0)
		if err != nil {
			t.Fatal(err)
		}
		refused(t, dest, "writer lock")
		if got := rawCount(t, dest); got != 9 {
			t.Errorf("%d lots, want the 9 the database had", got)
		}
		lock.Close()
		if _, err := Restore(context.Background(), backup, dest, RestoreOptions{}); err != nil {
			t.Fatalf("restore once the writer lock is free: %v", err)
		}
	})
	// Readers do not take the writer lock. A WAL connection keeps a shared
	// lock on the file and its -shm mapped between transactions; a
	// rollback-journal reader holds its shared lock while it reads. Held in
	// this process here: the restore's open file description locks conflict
	// with SQLite's POSIX locks here too.
	t.Run("wal reader", func(t *testing.T) {
		dest := filepath.Join(t.TempDir(), "parking.db")
		writeDB(t, dest, 9)
		_, conn := raw(t, dest)
		ctx := context.Background()
		for _, q := range []string{"PRAGMA journal_mode = WAL", "SELECT count(*) FROM parking_lots"} {
			if _, err := conn.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		refused(t, dest, "has "+dest+" open")
	})
	t.Run("rollback reader", func(t *testing.T) {
		dest := filepath.Join(t.TempDir(), "parking.db")
		writeDBMode(t, dest, 9, LockingExclusive)
		_, conn := raw(t, dest)
		rows, err := conn.QueryContext(context.Background(), "SELECT id FROM parking_lots")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		rows.Next()
		refused(t, dest, "has "+dest+" open")
	})
}

// A loader started during a restore waits on the writer lock (or, without
// -wait-lock, is refused by it) and, once the restore is done, opens the new
// file: it never sees the database being replaced.
//
// In the third case the database being replaced is not a database at all
// (the reason for the restore): a loader that judged the file before taking
// the writer lock would give up on it instead of waiting for the new one.
func TestALoaderStartedDuringARestoreOpensTheNewFile(t *testing.T) {
	for _, c := range []struct {
		name string
		mode Locking
	}{{"exclusive", LockingExclusive}, {"shared", LockingShared}, {"damaged", ""}} {
		mode := c.mode
		t.Run(c.name, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "parking.db")
			if c.name == "damaged" {
				os.WriteFile(dest, []byte("<html><body>Request blocked</body></html>\n"), 0o644)
			} else {
				writeDBMode(t, dest, 9, mode)
			}
			backup := filepath.Join(t.TempDir(), "b.db")
			writeDB(t, backup, 5)

			paused, resume := make(chan struct{}), make(chan struct{})
			restored := make(chan error, 1)
			go func() {
				_, err := Restore(context.Background(), backup, dest, RestoreOptions{beforeSwap: func() {
					close(paused)
					<-resume
				}})
				restored <- err
			}()
			select {
			case <-paused:
			case err := <-restored:
				t.Fatalf("restore ended before the swap: %v", err)
			}

			_, err := Open(context.Background(), dest, Options{Locking: mode, LockTimeout: 50 * time.Millisecond})
			if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "writer lock") {
				t.Errorf("a loader without -wait-lock during the restore: %v, want ErrLocked on the writer lock", err)
			}

			waiting := make(chan struct{}, 1)
			logger := slog.New(chanHandler{msg: "waiting for database lock", ch: waiting})
			type opened struct {
				db  *DB
				err error
			}
			standby := make(chan opened, 1)
			go func() {
				db, err := Open(context.Background(), dest, Options{Locking: mode, WaitLock: true, LockTimeout: 50 * time.Millisecond, Logger: logger})
				standby <- opened{db, err}
			}()
			select {
			case <-waiting:
			case r := <-standby:
				t.Fatalf("a standby loader returned during the restore: %v", r.err)
			}
			close(resume)
			if err := <-restored; err != nil {
				t.Fatal(err)
			}
			r := <-standby
			if r.err != nil {
				t.Fatalf("the standby after the restore: %v", r.err)
			}
			defer r.db.Close()
			if n := countRows(t, r.db, "parking_lots"); n != 5 {
				t.Errorf("the standby holds a database with %d lots, want the restored 5 (9: the replaced file)", n)
			}
		})
	}
}

// Settling needs the database to itself: a connection that came in after
// the restore's check (here in this process; SQLite's locks see it too) is
// reported as ErrLocked, not mistaken for a file SQLite cannot settle, whose
// WAL would go aside while that connection uses it; the WAL stays.
func TestSettleRefusesADatabaseInUse(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "parking.db")
	frozenWAL(t, dest, 9, 3)
	wal, err := os.ReadFile(dest + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	_, conn := raw(t, dest)
	if _, err := conn.ExecContext(context.Background(), "SELECT count(*) FROM parking_lots"); err != nil {
		t.Fatal(err)
	}
	if err := settle(context.Background(), dest); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), dest) {
		t.Fatalf("settle with a connection open: %v, want ErrLocked naming %s", err, dest)
	}
	if b, _ := os.ReadFile(dest + "-wal"); !bytes.Equal(b, wal) {
		t.Error("the WAL was changed")
	}
}
