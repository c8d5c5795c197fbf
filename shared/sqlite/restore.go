package sqlite

// Restore puts a backup in place of the database, for the one job an
// operator otherwise does by hand with mv and rm, and cannot do at all on ECS
// (the image has no shell; only the loader's task reaches EFS).
//
// The order of the steps is what makes it safe:
//
//  1. Take the writer lock (<db>.lock), the one every loader takes before
//     SQLite opens the file, and hold it to the end: a running loader, in
//     either locking mode, makes the restore refuse, and a loader starting
//     meanwhile waits (or is refused) until the new file is in place, so it
//     can only ever open the new one.
//  2. Lock the database the way SQLite locks it, against processes that do
//     not use the lock file (a sqlite3 shell, a reader of the WAL database):
//     while one has it open, the restore refuses.
//  3. Copy the backup (and a journal or WAL beside it, which belong to it)
//     to a temporary file next to the database, and check the copy, not the
//     original: integrity_check, user_version, and the tables of this
//     project's schema at that version. Then turn the copy into a plain
//     rollback-journal database (a WAL backup is checkpointed into it): the
//     next loader puts it in the journal mode of its locking mode.
//  4. Settle the old database: SQLite rolls its hot journal back into it, or
//     checkpoints its WAL into it, as its own next open would. Then the old
//     file alone holds all that was committed, and keeping it aside is one
//     atomic hard link. What SQLite cannot settle (a damaged file) keeps its
//     journal or WAL beside it under the replaced name, a set SQLite opens
//     as one. Either way no journal or WAL of the old file is left beside
//     the new one: SQLite would apply it to the new file.
//  5. Rename the checked copy over the database (atomic), fsync the file
//     before and the directory after; only then let go of the locks.

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

	"github.com/parking-newtaipei/parking-newtaipei/shared/internal/atomicfile"
	"github.com/parking-newtaipei/parking-newtaipei/shared/internal/ctxio"
)

// RestoreOptions configure Restore.
type RestoreOptions struct {
	// Now names the replaced database (nil: time.Now).
	Now func() time.Time
	// Logger receives the steps. Nil discards them.
	Logger *slog.Logger

	// beforeSwap, for tests, runs with every lock held, just before the old
	// database goes aside.
	beforeSwap func()
}

// RestoreResult says what Restore did.
type RestoreResult struct {
	DB            string `json:"db"`
	From          string `json:"from"`
	SchemaVersion int    `json:"schema_version"`
	Bytes         int64  `json:"bytes"`
	// Kept lists the previous database, moved aside under the replaced name,
	// and its journal or WAL where SQLite could not settle them into it
	// (empty when there was no database).
	Kept []string `json:"kept,omitempty"`
}

// Restore replaces the database at dest with a checked copy of the backup at
// from. It refuses with ErrLocked while a loader holds the writer lock or any
// process has dest open, and with an error naming the backup when the backup
// is not a complete database of this project's schema at a version this
// build can open; in both cases dest is left exactly as it was.
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

	// 1. The writer lock, for the whole restore; released last (deferred first).
	lock := absDest + ".lock"
	writer, err := lockWriter(ctx, lock, 0)
	switch {
	case errors.Is(err, errWriterHeld):
		return fail(fmt.Errorf("%w: a loader holds its writer lock %s", ErrLocked, lock))
	case errors.Is(err, errNoFlock):
		// As a loader in exclusive mode does there: SQLite's locks remain.
		opts.Logger.WarnContext(ctx, "no writer lock file; relying on SQLite's locks", "path", absDest, "err", err)
	case err != nil:
		return fail(err)
	}
	if writer != nil {
		defer writer.Close()
	}

	// 2. Nobody else has the database open; held while the backup is copied.
	unlock, err := holdDatabase(absDest)
	if err != nil {
		return fail(err)
	}
	defer func() { unlock() }()
	// The backup must not change while it is copied: a writer holding it
	// (a loader pointed at it by mistake) makes the restore refuse.
	release, err := holdBackup(absFrom)
	if err != nil {
		return fail(fmt.Errorf("backup %s: %w", from, err))
	}

	// 3. A checked copy beside the destination.
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

	// 4. Settle the old database. SQLite's own locks guard it meanwhile
	// (ours would keep its connection out, even in this process); then it is
	// held again, and a process that came in between makes the restore refuse.
	if unsettled(absDest) {
		unlock()
		err := settle(ctx, absDest)
		switch {
		case errors.Is(err, ErrLocked):
			cleanTmp()
			return fail(err)
		case err != nil:
			opts.Logger.WarnContext(ctx, "could not apply the replaced database's journal or WAL to it; they are kept beside it", "path", absDest, "err", err)
		default:
			opts.Logger.InfoContext(ctx, "applied the replaced database's journal or WAL to it", "path", absDest)
		}
		again, err := holdDatabase(absDest)
		if err != nil {
			cleanTmp()
			return fail(err)
		}
		unlock = again
	}
	if opts.beforeSwap != nil {
		opts.beforeSwap()
	}
	kept, err := keepAside(absDest, opts.Now())
	res.Kept = kept
	if err != nil {
		cleanTmp()
		return fail(err)
	}
	for _, k := range kept {
		opts.Logger.InfoContext(ctx, "kept the replaced database file", "path", k)
	}

	// 5. The swap.
	if err := os.Rename(tmp, absDest); err != nil {
		cleanTmp()
		return fail(err)
	}
	if err := atomicfile.Sync(filepath.Dir(absDest)); err != nil {
		return fail(err)
	}
	return res, nil
}

// SQLite's unix VFS locks these bytes of the database file (its PENDING,
// RESERVED and SHARED bytes); a write lock on all of them conflicts with
// every lock any connection can hold, shared readers included. A connection
// to a WAL database keeps its shared lock from its first read until it
// closes, between transactions too.
const (
	pendingByte = 0x40000000
	lockBytes   = 512
	// shmDMS is the "dead man switch" byte of a WAL database's -shm file:
	// every connection that has the shared memory mapped holds a read lock on it.
	shmDMS = 128
)

// errHeld: a lockRange found the range locked by someone else.
var errHeld = errors.New("locked by another process")

// holdDatabase locks dest as SQLite would see it: exclusively, against
// every connection of any process. A database that does not exist has
// nothing to lock: no loader can create it meanwhile, since a loader creates
// it only once it holds the writer lock.
func holdDatabase(dest string) (unlock func(), err error) {
	var files []*os.File
	unlock = func() {
		for _, f := range files {
			f.Close()
		}
		files = nil
	}
	f, err := os.OpenFile(dest, os.O_RDWR, 0)
	switch {
	case err == nil:
		files = append(files, f)
		if err := lockRange(f, true, pendingByte, lockBytes); err != nil {
			unlock()
			if errors.Is(err, errHeld) {
				return nil, fmt.Errorf("%w: a process has %s open", ErrLocked, dest)
			}
			return nil, fmt.Errorf("lock %s: %w", dest, err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	shm, err := lockShm(dest)
	if errors.Is(err, errHeld) {
		unlock()
		return nil, fmt.Errorf("%w: a process has %s open in WAL mode (%s-shm is in use)", ErrLocked, dest, dest)
	}
	if err != nil {
		unlock()
		return nil, err
	}
	if shm != nil {
		files = append(files, shm)
	}
	return unlock, nil
}

// lockShm write-locks the dead-man-switch byte of path's -shm file, if there
// is one: that fails (errHeld) while any connection has the WAL database
// open, and keeps new ones out while it is held.
func lockShm(path string) (*os.File, error) {
	shm, err := os.OpenFile(path+"-shm", os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if err := lockRange(shm, true, shmDMS, 1); err != nil {
		shm.Close()
		if errors.Is(err, errHeld) {
			return nil, err
		}
		return nil, fmt.Errorf("lock %s-shm: %w", path, err)
	}
	return shm, nil
}

// holdBackup takes a shared lock on the backup, which fails while a process
// writes to it in rollback-journal mode, and, for a WAL backup, the -shm
// lock that fails while any process has it open: a WAL writer or checkpointer
// would change the -wal and the file under the copy without touching the
// file's lock bytes.
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
	shm, err := lockShm(path)
	switch {
	case errors.Is(err, errHeld):
		f.Close()
		return nil, errors.New("a process has it open in WAL mode (its -shm is in use); restore from a file nothing uses")
	case errors.Is(err, os.ErrPermission):
		// A -shm this process may not write (a read-only copy of a backup
		// set): no check, and nothing of ours to hold.
	case err != nil:
		f.Close()
		return nil, err
	}
	return func() {
		if shm != nil {
			shm.Close()
		}
		f.Close()
	}, nil
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
	n, err := io.Copy(out, ctxio.Reader(ctx, in))
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

// unsettled reports whether a journal or WAL with something in it lies
// beside the database at dest.
func unsettled(dest string) bool {
	return exists(dest) && (nonEmpty(dest+"-journal") || nonEmpty(dest+"-wal"))
}

// settle brings the database at dest to its last committed state in the
// file itself: SQLite rolls a hot journal back or checkpoints the WAL, as
// its next open would, and the return to journal_mode DELETE removes the WAL.
// It opens the file in exclusive locking mode, so no shared memory is used
// (safe on a network file system) and its exclusive lock shows that no other
// process has the database open (ErrLocked otherwise). A file that is not a
// SQLite database is left alone (an error).
func settle(ctx context.Context, dest string) error {
	if err := checkHeader(dest); err != nil {
		return fmt.Errorf("%s: %w", dest, err)
	}
	db, err := sql.Open("sqlite", dest)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	// locking_mode before the first access, so that SQLite never maps the -shm.
	var mode string
	err = pragmas(ctx, conn, "PRAGMA busy_timeout = 0", "PRAGMA locking_mode = EXCLUSIVE")
	if err == nil {
		err = conn.QueryRowContext(ctx, "PRAGMA journal_mode = DELETE").Scan(&mode)
	}
	if isBusy(err) {
		return fmt.Errorf("%w: a process has %s open", ErrLocked, dest)
	}
	if err != nil {
		return fmt.Errorf("settle %s: %w", dest, err)
	}
	if !strings.EqualFold(mode, "delete") {
		return fmt.Errorf("settle %s: journal_mode is %q after setting delete", dest, mode)
	}
	if err := errors.Join(conn.Close(), db.Close()); err != nil {
		return fmt.Errorf("settle %s: %w", dest, err)
	}
	return nil
}

// keepAside moves the database at dest to dest.replaced-<time>, with a
// journal or WAL that still holds something (what settle could not apply;
// SQLite opens the set as one), and removes the rest: empty journal and WAL
// files and the -shm, which only a live connection could need and the locks
// show there is none. None may stay: beside the restored file SQLite would
// take a -wal for its own. The main file is hard-linked first, so until the
// rename over it the live name still holds the old database; only where
// links are not supported is it renamed.
func keepAside(dest string, now time.Time) ([]string, error) {
	stamp := now.UTC().Format("20060102T150405Z")
	aside := dest + ".replaced-" + stamp
	for i := 1; exists(aside) || exists(aside+"-journal") || exists(aside+"-wal"); i++ {
		aside = fmt.Sprintf("%s.replaced-%s.%d", dest, stamp, i)
	}
	var kept []string
	if exists(dest) {
		if err := os.Link(dest, aside); err == nil {
			kept = append(kept, aside)
		} else if err := os.Rename(dest, aside); err == nil {
			kept = append(kept, aside)
		} else {
			return nil, fmt.Errorf("keep the replaced database as %s: %w", aside, err)
		}
	}
	for _, s := range []string{"-journal", "-wal"} {
		if !exists(dest + s) {
			continue
		}
		if !nonEmpty(dest + s) {
			if err := os.Remove(dest + s); err != nil {
				return kept, err
			}
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

func nonEmpty(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.Size() > 0
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
