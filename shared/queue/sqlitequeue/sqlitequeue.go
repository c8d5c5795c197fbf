// Package sqlitequeue is an embedded, persistent queue in its own SQLite file
// (sqlite://path), with the semantics of an SQS standard queue that has a
// redrive policy: at-least-once delivery, a visibility timeout per receive, a
// fresh receipt handle per receive, and a dead-letter table that a message
// moves to after MaxReceive receives without a delete.
//
// Several processes may share the file (the extractor enqueues while a loader
// consumes): the file is in WAL mode, every write transaction starts with
// BEGIN IMMEDIATE so two receivers serialise on SQLite's write lock instead of
// both reading the same visible rows, and busy_timeout makes the loser wait.
//
// Receipt handles. A handle is "<id>.<token>"; each receive stores a new
// random token on the row, so a handle is valid until the message is received
// again, deleted or dead-lettered (it stays valid after its visibility timeout
// expires as long as nobody received the message again, as in SQS). With a
// stale handle:
//   - Delete does nothing and returns nil, like SQS DeleteMessage with an old
//     handle: the holder of the current handle owns the message now.
//   - ChangeVisibility and DeadLetter return an error wrapping
//     queue.ErrStaleHandle, so a worker extending its lease learns that it
//     lost the message.
//
// A damaged file (not a database, or with damaged pages) is refused at Open
// after a header check and PRAGMA quick_check, and SQLite's "malformed" and
// "not a database" errors met later are returned wrapping queue.ErrCorrupt
// with the file's path: retrying can never help, and a queue that fails
// quietly loses the messages of every run that writes to it.
package sqlitequeue

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite" // also registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/parking-newtaipei/parking-newtaipei/shared/queue"
)

// Defaults for Options.
const (
	DefaultMaxReceive   = 5
	DefaultPollInterval = 100 * time.Millisecond
)

// Options tune a Queue. The zero value is usable.
type Options struct {
	// MaxReceive is how many receives without a delete a message gets; when
	// it is visible again after that, the next Receive moves it to the
	// dead-letter table instead of delivering it. 0 means DefaultMaxReceive;
	// a negative value disables the redrive policy.
	MaxReceive int
	// PollInterval is how often a waiting Receive looks again for messages
	// sent by other processes or whose visibility timeout ran out. A Send,
	// ChangeVisibility or Redrive through this Queue wakes waiters at once.
	// 0 means DefaultPollInterval.
	PollInterval time.Duration
	// Now is the clock for visibility timeouts and timestamps (not for how
	// long Receive waits, which is real time). nil means time.Now.
	Now func() time.Time
}

// Queue is a queue.Queue on a SQLite file.
type Queue struct {
	path string
	db   *sql.DB
	opts Options

	mu     sync.Mutex
	wake   chan struct{} // closed and replaced when messages may have become visible
	done   chan struct{} // closed by Close
	closed bool

	// waiting, when set (by tests), is called each time a Receive begins to
	// wait, so a test can send exactly while a receiver waits.
	waiting func()
}

var _ queue.Queue = (*Queue)(nil)

// DeadLetter is a message moved out of the queue, with why.
type DeadLetter struct {
	ID           string
	Body         []byte
	SentAt       time.Time
	ReceiveCount int
	Reason       string
	DeadAt       time.Time
}

const schema = `
CREATE TABLE IF NOT EXISTS messages (
	id            INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused, so an ID stays unique after a redrive
	body          BLOB    NOT NULL,
	sent_at       INTEGER NOT NULL, -- Unix nanoseconds
	visible_at    INTEGER NOT NULL, -- Unix nanoseconds; in flight while in the future
	receive_count INTEGER NOT NULL DEFAULT 0,
	receipt       TEXT              -- token of the current receipt handle; NULL before the first receive
);
CREATE INDEX IF NOT EXISTS messages_visible_at ON messages (visible_at);
CREATE TABLE IF NOT EXISTS dead_letters (
	id            INTEGER PRIMARY KEY, -- the message's id
	body          BLOB    NOT NULL,
	sent_at       INTEGER NOT NULL,
	receive_count INTEGER NOT NULL,
	reason        TEXT    NOT NULL,
	dead_at       INTEGER NOT NULL
);
`

// sqliteHeader begins every SQLite database file.
var sqliteHeader = []byte("SQLite format 3\x00")

// Open opens (creating if needed) the queue in the SQLite file at path. A
// file that is not a SQLite database or fails PRAGMA quick_check is refused
// with an error wrapping queue.ErrCorrupt, and left as it is.
func Open(ctx context.Context, path string, opts Options) (*Queue, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		// The driver reads everything after '?' as its parameters.
		return nil, fmt.Errorf("sqlite queue: bad path %q: want a file name without '?' or '#'", path)
	}
	if opts.MaxReceive == 0 {
		opts.MaxReceive = DefaultMaxReceive
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	// Errors name the file; the caller adds the queue's URL.
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("sqlite queue %s: create directory: %w", path, err)
		}
	}
	// Before SQLite touches the file: SQLite would report a foreign file
	// only as "not a database" on first use, far from the open.
	if err := checkHeader(path); err != nil {
		return nil, err
	}
	// _txlock=immediate: every write transaction takes the write lock when it
	// begins, so a receive never reads rows that another process is about to
	// claim, and never fails to upgrade a read lock (which busy_timeout cannot
	// help with). synchronous=FULL: a Send that returned survives a power
	// loss; the extractor relies on that to forget the snapshot.
	dsn := path + "?_txlock=immediate" +
		"&_pragma=busy_timeout(10000)" +
		"&_pragma=journal_mode(WAL)" +
		"&_pragma=synchronous(FULL)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite queue %s: %w", path, err)
	}
	// One connection per Queue: its operations are short write transactions
	// that would serialise on the write lock anyway, and one connection
	// keeps them from queueing up as SQLITE_BUSY waits against each other.
	db.SetMaxOpenConns(1)
	q := &Queue{
		path: path,
		db:   db,
		opts: opts,
		wake: make(chan struct{}),
		done: make(chan struct{}),
	}
	// The check comes before the schema, which may write: a damaged file
	// is refused as it was found.
	if err := q.quickCheck(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite queue %s: create schema: %w", path, q.classify(err))
	}
	return q, nil
}

// checkHeader refuses a file that is neither empty (a new database) nor a
// SQLite database.
func checkHeader(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sqlite queue: %w", err)
	}
	defer f.Close()
	head := make([]byte, len(sqliteHeader))
	n, err := io.ReadFull(f, head)
	if n == 0 && err == io.EOF {
		return nil
	}
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("sqlite queue %s: read the header: %w", path, err)
	}
	if !bytes.Equal(head[:n], sqliteHeader) {
		return corrupt(path, fmt.Errorf("the file does not begin with the SQLite header (%q)", head[:n]))
	}
	return nil
}

// quickCheck runs PRAGMA quick_check, which reads every page and answers
// "ok" or the first problem.
func (q *Queue) quickCheck(ctx context.Context) error {
	var res string
	if err := q.db.QueryRowContext(ctx, "PRAGMA quick_check(1)").Scan(&res); err != nil {
		return fmt.Errorf("sqlite queue %s: quick_check: %w", q.path, q.classify(err))
	}
	if res != "ok" {
		return corrupt(q.path, fmt.Errorf("quick_check: %s", strings.Join(strings.Fields(res), " ")))
	}
	return nil
}

// corrupt wraps queue.ErrCorrupt around what is wrong with the file at path,
// with what to do about it.
func corrupt(path string, err error) error {
	return fmt.Errorf("%w: %s is damaged: %v; move it aside, start a new queue and reconcile from the store (docs/OPERATIONS.md)",
		queue.ErrCorrupt, path, err)
}

// classify turns the SQLite errors that mean a damaged file (SQLITE_CORRUPT,
// SQLITE_NOTADB) into queue.ErrCorrupt, and the errors of a closed database
// into queue.ErrClosed; everything else (a busy or full disk) stays as it is.
func (q *Queue) classify(err error) error {
	if err == nil {
		return nil
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
			return corrupt(q.path, err)
		}
	}
	if q.isClosed() && !errors.Is(err, queue.ErrClosed) {
		return fmt.Errorf("%w (%v)", queue.ErrClosed, err)
	}
	return err
}

// String is the queue's URL.
func (q *Queue) String() string { return "sqlite://" + q.path }

// Polling: a waiting Receive can be interrupted safely, since it claims
// messages only in a transaction between waits, and a Receive that returns
// returns what that transaction claimed (a cancelled one rolls back and
// claims nothing). The table answers at once whether a message is visible.
func (q *Queue) Polling() queue.Polling {
	return queue.Polling{Interruptible: true, EmptyWait: 0}
}

// Close closes the database; waiting receives return queue.ErrClosed.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	close(q.done)
	q.mu.Unlock()
	if err := q.db.Close(); err != nil {
		return fmt.Errorf("close %s: %w", q, err)
	}
	return nil
}

// wakeChan is the channel the next notify closes. A receiver takes it before
// looking at the table, so a Send that commits after the look still wakes it.
func (q *Queue) wakeChan() <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.wake
}

// notify wakes every receive waiting in this process.
func (q *Queue) notify() {
	q.mu.Lock()
	defer q.mu.Unlock()
	close(q.wake)
	q.wake = make(chan struct{})
}

// inTx runs fn in one write transaction (BEGIN IMMEDIATE, see Open).
func (q *Queue) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := q.db.BeginTx(ctx, nil)
	if err != nil {
		return q.classify(err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return q.classify(err)
	}
	return q.classify(tx.Commit())
}

func (q *Queue) isClosed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed
}

// Send enqueues every body in one transaction: all or none.
func (q *Queue) Send(ctx context.Context, bodies ...[]byte) error {
	if len(bodies) == 0 {
		return nil
	}
	if err := queue.CheckBodies(bodies); err != nil {
		return fmt.Errorf("send to %s: %w", q, err)
	}
	now := q.opts.Now().UnixNano()
	err := q.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO messages (body, sent_at, visible_at) VALUES (?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, b := range bodies {
			if _, err := stmt.ExecContext(ctx, b, now, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("send %d messages to %s: %w", len(bodies), q, err)
	}
	q.notify()
	return nil
}

// Receive returns up to max visible messages, each now invisible until
// visibility from now, waiting up to wait for the first one. With none it
// returns an empty slice and nil; a canceled ctx returns its error.
func (q *Queue) Receive(ctx context.Context, max int, wait, visibility time.Duration) ([]queue.Delivery, error) {
	if err := queue.CheckReceive(max, wait, visibility); err != nil {
		return nil, fmt.Errorf("receive from %s: %w", q, err)
	}
	var deadline <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		deadline = t.C
	}
	var poll *time.Ticker
	for {
		wake := q.wakeChan()
		ds, err := q.receiveOnce(ctx, max, visibility)
		if err != nil || len(ds) > 0 {
			return ds, err
		}
		if deadline == nil {
			return []queue.Delivery{}, nil
		}
		if poll == nil {
			poll = time.NewTicker(q.opts.PollInterval)
			defer poll.Stop()
		}
		if q.waiting != nil {
			q.waiting()
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("receive from %s: %w", q, ctx.Err())
		case <-q.done:
			return nil, fmt.Errorf("receive from %s: %w", q, queue.ErrClosed)
		case <-deadline:
			// One last look: a message may have become visible meanwhile.
			ds, err := q.receiveOnce(ctx, max, visibility)
			if err != nil || len(ds) > 0 {
				return ds, err
			}
			return []queue.Delivery{}, nil
		case <-wake:
		case <-poll.C:
		}
	}
}

// receiveOnce claims up to max visible messages in one transaction, first
// moving to the dead-letter table the visible ones that used up MaxReceive.
func (q *Queue) receiveOnce(ctx context.Context, max int, visibility time.Duration) ([]queue.Delivery, error) {
	now := q.opts.Now()
	nowNs := now.UnixNano()
	until := now.Add(visibility).UnixNano()
	var ds []queue.Delivery
	err := q.inTx(ctx, func(tx *sql.Tx) error {
		ds = ds[:0]
		if q.opts.MaxReceive > 0 {
			if _, err := tx.ExecContext(ctx, `
				INSERT INTO dead_letters (id, body, sent_at, receive_count, reason, dead_at)
				SELECT id, body, sent_at, receive_count,
					printf('received %d times without being deleted (max receive count %d)', receive_count, ?1), ?2
				FROM messages WHERE visible_at <= ?2 AND receive_count >= ?1`,
				q.opts.MaxReceive, nowNs); err != nil {
				return fmt.Errorf("dead-letter over-received messages: %w", err)
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE visible_at <= ? AND receive_count >= ?`,
				nowNs, q.opts.MaxReceive); err != nil {
				return fmt.Errorf("dead-letter over-received messages: %w", err)
			}
		}
		rows, err := tx.QueryContext(ctx, `
			SELECT id, body, sent_at, receive_count FROM messages
			WHERE visible_at <= ? ORDER BY id LIMIT ?`, nowNs, max)
		if err != nil {
			return err
		}
		for rows.Next() {
			var d queue.Delivery
			var id, sentAt int64
			if err := rows.Scan(&id, &d.Body, &sentAt, &d.ReceiveCount); err != nil {
				rows.Close()
				return err
			}
			d.ID = strconv.FormatInt(id, 10)
			d.SentAt = time.Unix(0, sentAt).UTC()
			ds = append(ds, d)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for i := range ds {
			token := newToken()
			if _, err := tx.ExecContext(ctx, `
				UPDATE messages SET visible_at = ?, receive_count = receive_count + 1, receipt = ?
				WHERE id = ?`, until, token, ds[i].ID); err != nil {
				return err
			}
			ds[i].ReceiveCount++
			ds[i].Handle = ds[i].ID + "." + token
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("receive from %s: %w", q, err)
	}
	return ds, nil
}

func newToken() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand documents it)
	return hex.EncodeToString(b[:])
}

// parseHandle splits a receipt handle into the message id and the token. A
// handle no receive could have returned is stale for good.
func parseHandle(d queue.Delivery) (id int64, token string, err error) {
	idStr, token, ok := strings.Cut(d.Handle, ".")
	if ok {
		id, err = strconv.ParseInt(idStr, 10, 64)
	}
	if !ok || err != nil || token == "" || (d.ID != "" && d.ID != idStr) {
		return 0, "", fmt.Errorf("%w: %q is not a receipt handle of message %q", queue.ErrStaleHandle, d.Handle, d.ID)
	}
	return id, token, nil
}

// staleError reports the messages whose handles were stale, of n.
func staleError(stale []string, n int) error {
	return fmt.Errorf("%w: %d of %d messages: %s", queue.ErrStaleHandle, len(stale), n, strings.Join(stale, "; "))
}

// Delete removes the messages whose handles are current. A stale handle is
// not an error and deletes nothing (see the package comment); a malformed
// one, which no receive returned, is reported after the others are deleted.
func (q *Queue) Delete(ctx context.Context, ds ...queue.Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	var malformed []string
	err := q.inTx(ctx, func(tx *sql.Tx) error {
		malformed = malformed[:0]
		for _, d := range ds {
			id, token, err := parseHandle(d)
			if err != nil {
				malformed = append(malformed, err.Error())
				continue
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE id = ? AND receipt = ?`, id, token); err != nil {
				return fmt.Errorf("message %s: %w", d.ID, err)
			}
		}
		return nil
	})
	if err == nil && len(malformed) > 0 {
		err = staleError(malformed, len(ds))
	}
	if err != nil {
		return fmt.Errorf("delete %d messages from %s: %w", len(ds), q, err)
	}
	return nil
}

// ChangeVisibility makes the messages visible d from now (0: at once). Each
// message is changed on its own, as SQS does: a heartbeat must extend the
// lease of the messages it still holds even when it lost one of them.
func (q *Queue) ChangeVisibility(ctx context.Context, d time.Duration, ds ...queue.Delivery) error {
	if err := queue.CheckVisibility(d); err != nil {
		return fmt.Errorf("change visibility in %s: %w", q, err)
	}
	if len(ds) == 0 {
		return nil
	}
	until := q.opts.Now().Add(d).UnixNano()
	var stale []string
	changed := 0
	err := q.inTx(ctx, func(tx *sql.Tx) error {
		stale, changed = stale[:0], 0
		for _, m := range ds {
			id, token, err := parseHandle(m)
			if err != nil {
				stale = append(stale, err.Error())
				continue
			}
			res, err := tx.ExecContext(ctx, `UPDATE messages SET visible_at = ? WHERE id = ? AND receipt = ?`, until, id, token)
			if err != nil {
				return fmt.Errorf("message %s: %w", m.ID, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			if n == 0 {
				stale = append(stale, "message "+m.ID)
			}
			changed += int(n)
		}
		return nil
	})
	if err == nil && len(stale) > 0 {
		err = staleError(stale, len(ds))
	}
	if d == 0 && changed > 0 {
		q.notify()
	}
	if err != nil {
		return fmt.Errorf("change visibility in %s to %s: %w", q, d, err)
	}
	return nil
}

// DeadLetter moves the message to the dead-letter table with reason. A stale
// handle returns queue.ErrStaleHandle: whoever holds the current one decides.
func (q *Queue) DeadLetter(ctx context.Context, d queue.Delivery, reason string) error {
	id, token, err := parseHandle(d)
	if err != nil {
		return fmt.Errorf("dead-letter message %s in %s: %w", d.ID, q, err)
	}
	now := q.opts.Now().UnixNano()
	err = q.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `
			INSERT INTO dead_letters (id, body, sent_at, receive_count, reason, dead_at)
			SELECT id, body, sent_at, receive_count, ?, ? FROM messages WHERE id = ? AND receipt = ?`,
			reason, now, id, token)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return queue.ErrStaleHandle
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM messages WHERE id = ?`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("dead-letter message %s in %s: %w", d.ID, q, err)
	}
	return nil
}

// DeadLetters lists the dead-letter table, oldest message first.
func (q *Queue) DeadLetters(ctx context.Context) ([]DeadLetter, error) {
	rows, err := q.db.QueryContext(ctx, `
		SELECT id, body, sent_at, receive_count, reason, dead_at FROM dead_letters ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list dead letters of %s: %w", q, q.classify(err))
	}
	defer rows.Close()
	var out []DeadLetter
	for rows.Next() {
		var dl DeadLetter
		var id, sentAt, deadAt int64
		if err := rows.Scan(&id, &dl.Body, &sentAt, &dl.ReceiveCount, &dl.Reason, &deadAt); err != nil {
			return nil, fmt.Errorf("list dead letters of %s: %w", q, q.classify(err))
		}
		dl.ID = strconv.FormatInt(id, 10)
		dl.SentAt = time.Unix(0, sentAt).UTC()
		dl.DeadAt = time.Unix(0, deadAt).UTC()
		out = append(out, dl)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list dead letters of %s: %w", q, q.classify(err))
	}
	return out, nil
}

// Redrive moves every dead letter back into the queue, visible at once and
// with its receive count reset so it gets MaxReceive fresh attempts. It keeps
// the message's ID and send time. It returns how many it moved.
func (q *Queue) Redrive(ctx context.Context) (int, error) {
	now := q.opts.Now().UnixNano()
	var n int64
	err := q.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `
			INSERT INTO messages (id, body, sent_at, visible_at, receive_count, receipt)
			SELECT id, body, sent_at, ?, 0, NULL FROM dead_letters ORDER BY id`, now)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM dead_letters`)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("redrive dead letters of %s: %w", q, err)
	}
	if n > 0 {
		q.notify()
	}
	return int(n), nil
}

// Len counts the messages visible now and those in flight (received, not yet
// deleted, visibility timeout not over). Dead letters are not counted.
func (q *Queue) Len(ctx context.Context) (visible, inFlight int, err error) {
	now := q.opts.Now().UnixNano()
	err = q.db.QueryRowContext(ctx, `
		SELECT COALESCE(SUM(visible_at <= ?), 0), COALESCE(SUM(visible_at > ?), 0) FROM messages`,
		now, now).Scan(&visible, &inFlight)
	if err != nil {
		return 0, 0, fmt.Errorf("count messages in %s: %w", q, q.classify(err))
	}
	return visible, inFlight, nil
}
