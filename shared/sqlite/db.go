// Package sqlite holds the SQLite database: its settings, schema, and the
// idempotent, order-safe apply of snapshots.
//
// The loader writes through one connection. How the file is shared depends on
// where it lives (see Locking): on a network file system (EFS in production)
// the conservative way, exclusive locking mode with a rollback journal, and no
// reader besides the loader; on a local disk WAL, so other processes read
// while the loader writes, and the loader's own reads use separate read-only
// connections. In both modes one writer at a time is enforced by an flock on
// a lock file beside the database, taken before SQLite opens the file.
package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	modernc "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/parking-newtaipei/parking-newtaipei/shared/clock"
)

// ErrLocked: another process (a running loader) holds the database.
var ErrLocked = errors.New("database is held by another loader")

// DefaultLockTimeout is how long Open waits for the lock before giving up:
// under 2 s, so a second loader has failed, message and all, within 2 s.
const DefaultLockTimeout = 1500 * time.Millisecond

// Options configure Open.
type Options struct {
	// WaitLock makes Open wait until ctx is done for the lock (a standby loader)
	// instead of failing after LockTimeout.
	WaitLock bool
	// LockTimeout bounds a single attempt to take the lock (SQLite busy_timeout).
	// Zero means DefaultLockTimeout.
	LockTimeout time.Duration
	// Logger receives operational messages. Nil discards them.
	Logger *slog.Logger
	// Now is the clock for bookkeeping times (snapshots.applied_at, meta).
	// Data times never come from it. Nil means time.Now.
	Now func() time.Time
	// CacheKiB is SQLite's page cache (PRAGMA cache_size). Zero means
	// DefaultCacheKiB. A backfill, which appends in key order, needs far less.
	CacheKiB int
	// Locking chooses how the file is shared; "" means LockingAuto.
	Locking Locking
	// Check is how much of the file is verified at open; "" means
	// CheckBounded (see Check).
	Check Check
}

// readerConns is how many read-only connections serve reads in shared mode:
// enough for the HTTP API's concurrent requests, few enough that their page
// caches stay small.
const readerConns = 4

// walAutocheckpoint (pages) and walSizeLimit (bytes) keep the WAL of shared
// mode bounded: SQLite copies it back into the database once it holds this
// many pages, and truncates the file to the limit after each full checkpoint.
const (
	walAutocheckpoint = 1000
	walSizeLimit      = 32 << 20
)

// DefaultCacheKiB is the page cache of a long-running loader: the lots
// tables, the latest values and the hot end of the observations and the
// ledger stay in memory with room to spare. 16 MB made no difference to
// applies at five years and put `loader serve` at its 64 MiB target; 8 MB
// keeps it at ~46 MiB (docs/PERFORMANCE.md).
const DefaultCacheKiB = 8000

// DB is the loader's database. It is safe for concurrent use, but every write
// (and, in exclusive mode, every read) is serialised on the one connection.
type DB struct {
	path   string
	sql    *sql.DB
	conn   *sql.Conn
	logger *slog.Logger
	now    func() time.Time

	// locking is the mode in force; readers (shared mode only) are the
	// read-only connections of Read. writer holds the writer lock's flock
	// for the life of the DB; nil in a read view or where flock is missing.
	locking Locking
	readers *sql.DB
	writer  *os.File

	// mu serialises transactions on conn and guards the caches below.
	mu sync.Mutex
	// lotIDs caches committed rows of lot_ids (ID -> ordinal).
	lotIDs map[string]int64
	// monthLots caches committed rows of obs_month_lots, by month.
	monthLots map[string]lotSet
	// latest caches the committed rows of availability_latest; nil until read.
	latest latestRows
	// knownLots caches the IDs in parking_lots; nil until read, and after a
	// transaction that applied lots.
	knownLots map[string]bool
}

// sqliteHeader is the first 16 bytes of every SQLite database file.
var sqliteHeader = []byte("SQLite format 3\x00")

// Open opens (creating if needed) the database at path, checks it, migrates it
// and takes its exclusive lock.
func Open(ctx context.Context, path string, opts Options) (*DB, error) {
	if opts.CacheKiB <= 0 {
		opts.CacheKiB = DefaultCacheKiB
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if path == "" {
		return nil, errors.New("open database: empty path")
	}
	want, err := ParseLocking(string(opts.Locking))
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	if opts.Check, err = ParseCheck(string(opts.Check)); err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("open database %s: create directory: %w", path, err)
	}
	var reason string
	opts.Locking, reason = chooseLocking(want, path)
	opts.Logger.InfoContext(ctx, "database locking mode", "path", path, "locking", string(opts.Locking), "reason", reason)

	waiting := false
	for {
		db, err := open(ctx, path, opts)
		if err == nil {
			return db, nil
		}
		if waiting && ctx.Err() != nil {
			// Cancelled while waiting, whichever step noticed first.
			return nil, fmt.Errorf("open database %s: %w: gave up waiting for another loader: %w", path, ErrLocked, ctx.Err())
		}
		if !errors.Is(err, ErrLocked) || !opts.WaitLock {
			return nil, err
		}
		if !waiting {
			// Logged once: a standby waits here for as long as the active loader runs.
			opts.Logger.InfoContext(ctx, "waiting for database lock", "path", path)
			waiting = true
		}
		// No sleep: each attempt already blocks up to LockTimeout in SQLite's busy handler.
	}
}

// checkFile refuses files that are not SQLite databases before SQLite touches
// them.
func checkFile(path string) error {
	head, _, err := readHead(path, len(sqliteHeader))
	if err != nil {
		return err
	}
	if len(head) == 0 {
		return nil // No file, or an empty one: an empty database.
	}
	if !bytes.Equal(head, sqliteHeader) {
		return fmt.Errorf("open database %s: header check: not a SQLite database file (left untouched)", path)
	}
	return nil
}

// readHead returns up to the first n bytes of the file at path (none when
// there is no file) and the file's size.
func readHead(path string, n int) ([]byte, int64, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("open database %s: %w", path, err)
	}
	defer f.Close()
	head := make([]byte, n)
	got, err := io.ReadFull(f, head)
	if err != nil && err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, 0, fmt.Errorf("open database %s: read header: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, fmt.Errorf("open database %s: %w", path, err)
	}
	return head[:got], fi.Size(), nil
}

// open makes one attempt. Any SQLITE_BUSY on the way, or the writer lock
// taken, means another process holds the database and is reported as
// ErrLocked.
func open(ctx context.Context, path string, opts Options) (_ *DB, err error) {
	db := &DB{path: path, logger: opts.Logger, now: opts.Now, lotIDs: map[string]int64{}, monthLots: map[string]lotSet{}, locking: opts.Locking}
	defer func() {
		if err != nil {
			db.Close()
			if isBusy(err) {
				cause := strings.TrimPrefix(err.Error(), "open database "+path+": ")
				err = fmt.Errorf("open database %s: %w: another loader holds it (%s)", path, ErrLocked, cause)
			}
		}
	}()

	// The writer lock first: in WAL mode SQLite's own locks last only as long
	// as a write transaction, so only this keeps a second loader out.
	lock := path + ".lock"
	db.writer, err = lockWriter(ctx, lock, opts.LockTimeout)
	switch {
	case errors.Is(err, errWriterHeld):
		return nil, fmt.Errorf("open database %s: %w: another process holds its writer lock %s", path, ErrLocked, lock)
	case errors.Is(err, errNoFlock) && opts.Locking == LockingExclusive:
		// SQLite's exclusive lock still keeps a second writer out.
		opts.Logger.WarnContext(ctx, "no writer lock file; relying on SQLite's exclusive lock", "path", path, "err", err)
	case err != nil:
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}

	// The file is looked at only under the writer lock: a restore holds it
	// until the new file is in place, so a loader waiting for it never
	// judges, or opens, the file being replaced.
	if err := checkFile(path); err != nil {
		return nil, err
	}

	// In exclusive mode a -shm file means someone opened the database in WAL
	// mode with shared memory (unsafe on NFS); in shared mode it is WAL's
	// normal companion. Checked once the writer lock is ours, so that a
	// running shared-mode loader is reported as what it is.
	if _, err := os.Stat(path + "-shm"); err == nil && opts.Locking == LockingExclusive {
		return nil, fmt.Errorf("open database %s: shm check: %s-shm exists (WAL with shared memory is unsafe on a network file system); stop the other user and remove it, or use -db-locking shared on a local disk", path, path)
	}

	// The writer lock is ours: no other loader can be extending the file.
	if err := checkLength(path); err != nil {
		return nil, err
	}

	db.sql, err = sql.Open("sqlite", path)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	// One connection for the life of the DB: per-connection pragmas (above all
	// locking_mode) would silently be lost on a second one.
	db.sql.SetMaxOpenConns(1)
	db.sql.SetMaxIdleConns(1)
	db.sql.SetConnMaxLifetime(0)
	db.sql.SetConnMaxIdleTime(0)
	db.conn, err = db.sql.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	if opts.Locking == LockingShared {
		err = db.setupShared(ctx, opts)
	} else {
		err = db.setupExclusive(ctx, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}

	if err := db.migrate(ctx); err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}

	// A write holds the lock in every case, and records who opened the file when.
	if err := db.withTx(ctx, nil, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('opened_at', ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, formatTime(db.now()))
		return err
	}); err != nil {
		return nil, fmt.Errorf("open database %s: lock write: %w", path, err)
	}
	if err := db.loadLotIDs(ctx); err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	if opts.Locking == LockingShared {
		if db.readers, err = openReaders(path, opts.LockTimeout); err != nil {
			return nil, fmt.Errorf("open database %s: %w", path, err)
		}
	}
	return db, nil
}

// setupExclusive: locking_mode=EXCLUSIVE and a rollback journal, the
// settings for a network file system.
func (db *DB) setupExclusive(ctx context.Context, opts Options) error {
	conn := db.conn
	// Order matters: locking_mode must be set before the first access so that
	// no shared-memory file is ever used, and before the journal mode.
	if err := pragmas(ctx, conn,
		fmt.Sprintf("PRAGMA busy_timeout = %d", opts.LockTimeout.Milliseconds()),
		"PRAGMA locking_mode = EXCLUSIVE",
		"PRAGMA journal_mode = DELETE",
		"PRAGMA synchronous = FULL",
		"PRAGMA foreign_keys = ON",
		"PRAGMA temp_store = MEMORY",
		fmt.Sprintf("PRAGMA cache_size = -%d", opts.CacheKiB),
	); err != nil {
		return err
	}
	if err := readBack(ctx, conn, "locking_mode", "exclusive", "journal_mode", "delete"); err != nil {
		return err
	}
	// Take the exclusive lock before reading anything, so two loaders starting
	// together cannot both hold shared locks and deadlock on the upgrade. In
	// exclusive locking mode the lock is kept after COMMIT until Close.
	if _, err := conn.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	if err := check(ctx, conn, opts.Check); err != nil {
		return err
	}
	if _, err := os.Stat(db.path + "-shm"); err == nil {
		return fmt.Errorf("shm check: %s-shm exists", db.path)
	}
	return nil
}

// setupShared: WAL with normal locking, for a local file system. The file is
// checked before the switch to WAL, which writes its header: a damaged file
// is refused untouched.
func (db *DB) setupShared(ctx context.Context, opts Options) error {
	conn := db.conn
	if err := pragmas(ctx, conn,
		fmt.Sprintf("PRAGMA busy_timeout = %d", opts.LockTimeout.Milliseconds()),
		"PRAGMA locking_mode = NORMAL",
	); err != nil {
		return err
	}
	if err := check(ctx, conn, opts.Check); err != nil {
		return err
	}
	if err := pragmas(ctx, conn,
		"PRAGMA journal_mode = WAL",
		// FULL in WAL mode too: a COMMIT is durable before the queue message
		// is deleted.
		"PRAGMA synchronous = FULL",
		fmt.Sprintf("PRAGMA wal_autocheckpoint = %d", walAutocheckpoint),
		fmt.Sprintf("PRAGMA journal_size_limit = %d", walSizeLimit),
		"PRAGMA foreign_keys = ON",
		"PRAGMA temp_store = MEMORY",
		fmt.Sprintf("PRAGMA cache_size = -%d", opts.CacheKiB),
	); err != nil {
		return err
	}
	return readBack(ctx, conn, "locking_mode", "normal", "journal_mode", "wal")
}

func pragmas(ctx context.Context, conn *sql.Conn, list ...string) error {
	for _, p := range list {
		if _, err := conn.ExecContext(ctx, p); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	return nil
}

// readBack checks pragma/value pairs: a setting SQLite ignored silently
// (journal_mode on a file it cannot convert) must stop the start.
func readBack(ctx context.Context, conn *sql.Conn, pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		var got string
		if err := conn.QueryRowContext(ctx, "PRAGMA "+pairs[i]).Scan(&got); err != nil {
			return fmt.Errorf("read %s: %w", pairs[i], err)
		}
		if !strings.EqualFold(got, pairs[i+1]) {
			return fmt.Errorf("%s is %q, want %q", pairs[i], got, pairs[i+1])
		}
	}
	return nil
}

// isBusy reports whether err is SQLite's "database is locked" (by another process).
func isBusy(err error) bool {
	var se *modernc.Error
	if errors.As(err, &se) {
		return se.Code()&0xff == sqlite3.SQLITE_BUSY
	}
	return false
}

// Close closes the database and releases its locks. In shared mode it first
// checkpoints the WAL into the database and truncates it, so a stopped loader
// leaves one self-contained file.
func (db *DB) Close() error {
	var errs []error
	if db.readers != nil {
		errs = append(errs, db.readers.Close())
	}
	if db.conn != nil {
		if db.locking == LockingShared && db.readers != nil {
			// Best effort: a reader in another process may hold the WAL, and
			// then the next open's checkpoints finish the job.
			if _, err := db.conn.ExecContext(context.Background(), "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
				db.logger.Debug("checkpoint at close", "path", db.path, "err", err)
			}
		}
		errs = append(errs, db.conn.Close())
	}
	if db.sql != nil {
		errs = append(errs, db.sql.Close())
	}
	// Last: the lock guards the file until SQLite has let go of it.
	if db.writer != nil {
		errs = append(errs, db.writer.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close database %s: %w", db.path, err)
	}
	return nil
}

// Locking returns the locking mode in force.
func (db *DB) Locking() Locking { return db.locking }

// Path returns the database file's path.
func (db *DB) Path() string { return db.path }

// withTx runs fn in a transaction on the one connection and commits it if fn
// returns nil; when commit is not nil it receives how long the COMMIT took.
func (db *DB) withTx(ctx context.Context, commit *time.Duration, fn func(tx *sql.Tx) error) error {
	tx, err := db.conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		db.afterFull(ctx, err)
		return err
	}
	start := time.Now()
	if err := tx.Commit(); err != nil {
		db.afterFull(ctx, err)
		return fmt.Errorf("commit: %w", err)
	}
	if commit != nil {
		*commit = time.Since(start)
	}
	return nil
}

// afterFull gives a full disk back the WAL's space in shared mode: a failed
// transaction leaves the WAL at its largest, and a truncating checkpoint
// moves the committed frames into the database and empties it, so the retry
// has room. Best effort: it fails too while the disk stays full.
func (db *DB) afterFull(ctx context.Context, err error) {
	var se *modernc.Error
	if db.locking != LockingShared || !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_FULL {
		return
	}
	if _, cerr := db.conn.ExecContext(context.WithoutCancel(ctx), "PRAGMA wal_checkpoint(TRUNCATE)"); cerr != nil {
		db.logger.Debug("checkpoint after a full disk", "path", db.path, "err", cerr)
	}
}

func (db *DB) loadLotIDs(ctx context.Context) error {
	rows, err := db.conn.QueryContext(ctx, "SELECT n, id FROM lot_ids")
	if err != nil {
		return fmt.Errorf("load lot ids: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var n int64
		var id string
		if err := rows.Scan(&n, &id); err != nil {
			return fmt.Errorf("load lot ids: %w", err)
		}
		db.lotIDs[id] = n
	}
	return rows.Err()
}

// taipei is Asia/Taipei. Taiwan has had no DST since 1979, so a fixed zone
// needs no tzdata in the binary.
var taipei = clock.Taipei

// timeLayout is ISO 8601 with a numeric offset, always +08:00 here. Text in one
// fixed offset sorts chronologically.
const timeLayout = "2006-01-02T15:04:05-07:00"

// formatTime renders t to the second in Taipei time.
func formatTime(t time.Time) string { return t.In(taipei).Format(timeLayout) }

// formatUnix renders unix seconds in Taipei time.
func formatUnix(sec int64) string { return formatTime(time.Unix(sec, 0)) }

// milliLayout is timeLayout with milliseconds, for the times of lots
// snapshots: two lots fetches in one second (a manual run beside the
// schedule) are two points of the lots history, not one. Fixed width, so it
// too sorts as text. The original project's isoformat() also wrote fractions.
const milliLayout = "2006-01-02T15:04:05.000-07:00"

// formatMilli renders unix milliseconds in Taipei time, with milliseconds.
func formatMilli(ms int64) string { return time.UnixMilli(ms).In(taipei).Format(milliLayout) }

// parseTime reads a time written by formatTime.
func parseTime(s string) (time.Time, error) { return time.Parse(timeLayout, s) }
