package sqlite

// Restore puts a backup in place of the database, for the one job an
// operator otherwise does by hand with mv and rm, and cannot do at all on ECS
// (the image has no shell; only the loader's task reaches EFS).
//
// The order of the steps is what makes it safe:
//
//  1. Lock the destination the way SQLite locks it, so a running loader (or
//     any reader in WAL mode) makes the restore refuse, and a loader starting
//     meanwhile fails to get the database instead of getting it half-replaced.
//  2. Copy the backup (and a journal or WAL beside it, which belong to it)
//     to a temporary file next to the destination, and check the copy, not
//     the original: integrity_check, user_version, and the tables of this
//     project's schema at that version. Then turn the copy into a plain
//     rollback-journal database (a WAL backup is checkpointed into it).
//  3. Keep the old database aside with its own journal or WAL
//     (parking.db.replaced-<time>, -journal, -wal: a set SQLite opens as one),
//     so a stale journal is never rolled back into the restored file and the
//     replaced data is never lost. Remove the old -shm, which only a live
//     connection could need and the lock shows there is none.
//  4. Rename the checked copy over the destination (atomic), fsync the file
//     before and the directory after.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/atomicfile"
)

// RestoreOptions configure Restore.
type RestoreOptions struct {
	// Now names the replaced database (nil: time.Now).
	Now func() time.Time
	// Logger receives the steps. Nil discards them.
	Logger *slog.Logger
}

// RestoreResult says what Restore did.
type RestoreResult struct {
	DB            string `json:"db"`
	From          string `json:"from"`
	SchemaVersion int    `json:"schema_version"`
	Bytes         int64  `json:"bytes"`
	// Kept lists the previous database and its journal or WAL, moved aside
	// under the replaced name (empty when there was no database).
	Kept []string `json:"kept,omitempty"`
}

// Restore replaces the database at dest with a checked copy of the backup at
// from. It refuses with ErrLocked while any process has dest open, and with
// an error naming the backup when the backup is not a complete database of
// this project's schema at a version this build can open; in both cases dest
// is left exactly as it was.
func Restore(ctx context.Context, from, dest string, opts RestoreOptions) (RestoreResult, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	res := RestoreResult{DB: dest, From: from}
	if from == "" || dest == "" {
		return res, errors.New("restore: both the backup and the database path are required")
	}
	fail := func(err error) (RestoreResult, error) {
		return res, fmt.Errorf("restore %s from %s: %w", dest, from, err)
	}
	absFrom, err := filepath.Abs(from)
	if err != nil {
		return fail(err)
	}
	absDest, err := filepath.Abs(dest)
	if err != nil {
		return fail(err)
	}
	fromInfo, err := os.Stat(absFrom)
	if err != nil {
		return fail(fmt.Errorf("backup: %w", err))
	}
	if !fromInfo.Mode().IsRegular() {
		return fail(fmt.Errorf("backup %s is not a regular file", from))
	}
	if destInfo, err := os.Stat(absDest); err == nil && os.SameFile(fromInfo, destInfo) {
		return fail(errors.New("the backup is the database itself"))
	}
	if err := checkHeader(absFrom); err != nil {
		return fail(fmt.Errorf("backup %s: %w", from, err))
	}
	if err := os.MkdirAll(filepath.Dir(absDest), 0o755); err != nil {
		return fail(err)
	}

	// 1. Hold the destination against every SQLite user until the swap is done.
	unlock, created, err := holdDatabase(absDest)
	if err != nil {
		return fail(err)
	}
	defer unlock()
	done := false
	defer func() {
		if created && !done {
			_ = os.Remove(absDest) // the placeholder; there was no database
		}
	}()
	// The backup must not change while it is copied: a writer holding it
	// (a loader pointed at it by mistake) makes the restore refuse.
	release, err := holdBackup(absFrom)
	if err != nil {
		return fail(fmt.Errorf("backup %s: %w", from, err))
	}

	// 2. A checked copy beside the destination.
	tmp := fmt.Sprintf("%s.restore-%d.tmp", absDest, os.Getpid())
	cleanTmp := func() {
		for _, s := range []string{"", "-journal", "-wal", "-shm"} {
			_ = os.Remove(tmp + s)
		}
	}
	cleanTmp() // a leftover of an interrupted restore by the same pid
	n, err := copyBackup(ctx, absFrom, tmp)
	release()
	if err != nil {
		cleanTmp()
		return fail(err)
	}
	res.Bytes = n
	v, err := checkCopy(ctx, tmp)
	if err != nil {
		cleanTmp()
		return fail(fmt.Errorf("backup %s: %w", from, err))
	}
	res.SchemaVersion = v
	if err := atomicfile.Sync(tmp); err != nil {
		cleanTmp()
		return fail(err)
	}
	if err := ctx.Err(); err != nil {
		cleanTmp()
		return fail(err)
	}

	// 3. The old database and its journal or WAL, aside under one name.
	kept, err := keepAside(absDest, created, opts.Now())
	res.Kept = kept
	if err != nil {
		cleanTmp()
		return fail(err)
	}
	for _, k := range kept {
		opts.Logger.InfoContext(ctx, "kept the replaced database file", "path", k)
	}

	// 4. The swap.
	if err := os.Rename(tmp, absDest); err != nil {
		cleanTmp()
		return fail(err)
	}
	done = true
	if err := atomicfile.Sync(filepath.Dir(absDest)); err != nil {
		return fail(err)
	}
	return res, nil
}

// SQLite's unix VFS locks these bytes of the database file (its PENDING,
// RESERVED and SHARED bytes); a write lock on all of them conflicts with
// every lock any connection can hold, shared readers included.
const (
	pendingByte = 0x40000000
	lockBytes   = 512
	// shmDMS is the "dead man switch" byte of a WAL database's -shm file:
	// every connection that has the shared memory mapped holds a read lock on it.
	shmDMS = 128
)

// holdDatabase locks dest as SQLite would see it: exclusively, against
// every connection of any process. It creates dest when it does not exist,
// so a loader starting during the restore finds it locked rather than
// creating a new database that the restore would then replace under it.
func holdDatabase(dest string) (unlock func(), created bool, err error) {
	f, err := os.OpenFile(dest, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err == nil {
		created = true
	} else if errors.Is(err, os.ErrExist) {
		f, err = os.OpenFile(dest, os.O_RDWR, 0)
	}
	if err != nil {
		return nil, false, err
	}
	files := []*os.File{f}
	unlock = func() {
		for _, f := range files {
			f.Close()
		}
	}
	if err := lockRange(f, true, pendingByte, lockBytes); err != nil {
		unlock()
		if errors.Is(err, errHeld) {
			return nil, false, fmt.Errorf("%w: a process has %s open (stop the loader: its service at desired count 0)", ErrLocked, dest)
		}
		return nil, false, fmt.Errorf("lock %s: %w", dest, err)
	}
	// A WAL database in shared-memory mode: its connections show in the -shm file.
	if shm, err := os.OpenFile(dest+"-shm", os.O_RDWR, 0); err == nil {
		files = append(files, shm)
		if err := lockRange(shm, true, shmDMS, 1); err != nil {
			unlock()
			if errors.Is(err, errHeld) {
				return nil, false, fmt.Errorf("%w: a process has %s open in WAL mode (%s-shm is in use)", ErrLocked, dest, dest)
			}
			return nil, false, fmt.Errorf("lock %s-shm: %w", dest, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		unlock()
		return nil, false, err
	}
	return unlock, created, nil
}

// holdBackup takes a shared lock on the backup, which fails while a process
// writes to it.
func holdBackup(path string) (release func(), err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if err := lockRange(f, false, pendingByte, lockBytes); err != nil {
		f.Close()
		if errors.Is(err, errHeld) {
			return nil, errors.New("a process is writing to it; restore from a file nothing uses")
		}
		return nil, err
	}
	return func() { f.Close() }, nil
}

// checkHeader refuses a file that is not a SQLite database, before SQLite
// (which would treat an empty file as an empty database) sees it.
func checkHeader(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	head := make([]byte, len(sqliteHeader))
	if _, err := io.ReadFull(f, head); err != nil || string(head) != string(sqliteHeader) {
		return errors.New("not a SQLite database file")
	}
	return nil
}

// copyBackup copies the backup to tmp, with the hot journal or the WAL that
// lies beside it: without them the file alone can be torn (a copy of a live
// database, as AWS Backup takes) or miss committed transactions.
func copyBackup(ctx context.Context, from, tmp string) (int64, error) {
	n, err := copyFile(ctx, from, tmp)
	if err != nil {
		return 0, err
	}
	for _, s := range []string{"-journal", "-wal"} {
		if fi, err := os.Stat(from + s); err == nil && fi.Size() > 0 {
			if _, err := copyFile(ctx, from+s, tmp+s); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func copyFile(ctx context.Context, from, to string) (int64, error) {
	in, err := os.Open(from)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(out, ctxReader{ctx, in})
	if err != nil {
		out.Close()
		return n, fmt.Errorf("copy %s: %w", from, err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return n, err
	}
	return n, out.Close()
}

// ctxReader stops a long copy (gigabytes on EFS) when the command is stopped.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// checkCopy checks the copy and leaves it a rollback-journal database with
// no sidecar files. It returns the schema version.
func checkCopy(ctx context.Context, path string) (int, error) {
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()

	// The first read rolls back a hot journal copied with the backup.
	rows, err := conn.QueryContext(ctx, "PRAGMA integrity_check(20)")
	if err != nil {
		return 0, fmt.Errorf("integrity_check: %w", err)
	}
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			rows.Close()
			return 0, fmt.Errorf("integrity_check: %w", err)
		}
		problems = append(problems, line)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("integrity_check: %w", err)
	}
	if len(problems) != 1 || problems[0] != "ok" {
		return 0, fmt.Errorf("integrity_check failed: %s", strings.Join(problems, "; "))
	}

	var version int
	if err := conn.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return 0, fmt.Errorf("read user_version: %w", err)
	}
	latest := SchemaVersion()
	switch {
	case version == 0:
		return 0, errors.New("not a parking-newtaipei database (no schema version)")
	case version > latest:
		return 0, fmt.Errorf("schema version %d is newer than this build's %d; restore it with a newer loader", version, latest)
	}
	want, err := schemaObjects(ctx, version)
	if err != nil {
		return 0, err
	}
	have, err := objects(ctx, conn)
	if err != nil {
		return 0, err
	}
	var missing []string
	for _, name := range want {
		if !slices.Contains(have, name) {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return 0, fmt.Errorf("not this project's schema at version %d: missing %s", version, strings.Join(missing, ", "))
	}

	// A WAL backup is checkpointed into the file; the loader then opens it
	// in whatever journal mode it uses.
	var mode string
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode = DELETE").Scan(&mode); err != nil {
		return 0, fmt.Errorf("set journal_mode: %w", err)
	}
	if !strings.EqualFold(mode, "delete") {
		return 0, fmt.Errorf("journal_mode is %q after setting delete", mode)
	}
	conn.Close()
	db.Close()
	// SQLite may leave the shared-memory file of the WAL it has just left;
	// nothing else uses this copy.
	if err := os.Remove(path + "-shm"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, err
	}
	for _, s := range []string{"-journal", "-wal"} {
		if _, err := os.Stat(path + s); err == nil {
			return 0, fmt.Errorf("%s%s left after the check", path, s)
		}
	}
	return version, nil
}

// schemaObjects lists the tables and views that migrations 1..version create,
// by running them on an in-memory database: the definition of "this
// project's schema at that version" that cannot drift from the migrations.
func schemaObjects(ctx context.Context, version int) ([]string, error) {
	ms, err := migrations()
	if err != nil {
		return nil, err
	}
	mem, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		return nil, err
	}
	defer mem.Close()
	mem.SetMaxOpenConns(1)
	conn, err := mem.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	for _, m := range ms[:version] {
		if _, err := conn.ExecContext(ctx, m.sql); err != nil {
			return nil, fmt.Errorf("schema at version %d: %s: %w", version, m.name, err)
		}
	}
	return objects(ctx, conn)
}

func objects(ctx context.Context, conn *sql.Conn) ([]string, error) {
	rows, err := conn.QueryContext(ctx, `SELECT type || ' ' || name FROM sqlite_master
		WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("read schema: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, rows.Err()
}

// keepAside moves the database at dest and its journal and WAL to
// dest.replaced-<time> (-journal, -wal) and removes its -shm. The main file
// is hard-linked first, so until the rename over it the live name still
// holds the old database; only where links are not supported is it renamed.
// A placeholder the restore created itself is not kept.
func keepAside(dest string, created bool, now time.Time) ([]string, error) {
	if created {
		if err := os.Remove(dest + "-shm"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		return nil, nil
	}
	stamp := now.UTC().Format("20060102T150405Z")
	aside := dest + ".replaced-" + stamp
	for i := 1; exists(aside) || exists(aside+"-journal") || exists(aside+"-wal"); i++ {
		aside = fmt.Sprintf("%s.replaced-%s.%d", dest, stamp, i)
	}
	var kept []string
	if err := os.Link(dest, aside); err == nil {
		kept = append(kept, aside)
	} else if err := os.Rename(dest, aside); err == nil {
		kept = append(kept, aside)
	} else {
		return nil, fmt.Errorf("keep the replaced database as %s: %w", aside, err)
	}
	for _, s := range []string{"-journal", "-wal"} {
		if !exists(dest + s) {
			continue
		}
		if err := os.Rename(dest+s, aside+s); err != nil {
			return kept, fmt.Errorf("keep %s%s as %s%s: %w", dest, s, aside, s, err)
		}
		kept = append(kept, aside+s)
	}
	if err := os.Remove(dest + "-shm"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return kept, err
	}
	return kept, atomicfile.Sync(filepath.Dir(dest))
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
