package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"time"

	modernc "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
)

// Apply applies every input in one transaction, writing each input's ledger
// row in that same transaction: either all of them are recorded with their
// effects, or none is. Inputs may be in any order and may repeat; the
// resulting data depends only on the set of snapshots applied.
//
// An error means nothing was committed; refusals are results, not errors.
func (db *DB) Apply(ctx context.Context, in ...snapshot.Input) ([]snapshot.Result, error) {
	if len(in) == 0 {
		return nil, nil
	}
	db.mu.Lock()
	defer db.mu.Unlock()

	results := make([]snapshot.Result, 0, len(in))
	a := &applier{db: db, newIDs: map[string]int64{}, stmts: map[string]*sql.Stmt{}}
	err := db.withTx(ctx, &a.commit, func(tx *sql.Tx) error {
		a.tx = tx
		defer a.closeStmts()
		for _, x := range in {
			r, err := a.apply(ctx, x)
			if err != nil {
				if unappliable(err) {
					return fmt.Errorf("apply %s: %w: %w", x.Key, snapshot.ErrUnappliable, err)
				}
				return fmt.Errorf("apply %s: %w", x.Key, err)
			}
			results = append(results, r)
		}
		return a.finish(ctx)
	})
	if err != nil {
		return nil, err
	}
	for i := range results {
		results[i].Commit = a.commit
	}
	a.committed()
	return results, nil
}

// finish writes what the transaction gathered to write once, at its end:
// the latest values and the summaries.
func (a *applier) finish(ctx context.Context) error {
	if err := a.flushLatest(ctx); err != nil {
		return err
	}
	return a.flushSummaries(ctx)
}

// committed tells the DB's caches what a committed transaction wrote: lot
// ordinals, latest values and summarised (month, lot) pairs are real only now.
func (a *applier) committed() {
	for id, n := range a.newIDs {
		a.db.lotIDs[id] = n
	}
	if a.lotsApplied {
		a.db.knownLots = nil
	}
	a.committedLatestRows()
	a.sums.committed(a.db)
}

// applier carries one Apply transaction's state: the transaction, its
// prepared statements (reused across inputs), and lot_ids rows it created.
type applier struct {
	commit time.Duration // how long COMMIT took, once it has
	db     *DB
	tx     *sql.Tx
	stmts  map[string]*sql.Stmt
	chunks map[chunkKey]*sql.Stmt // the chunked statements among stmts
	newIDs map[string]int64
	// knownLots caches parking_lots IDs for availability quality; reset when a
	// lots snapshot changes parking_lots in this transaction.
	knownLots map[string]bool
	// lotsApplied says the transaction wrote lots data (parking_lots may
	// differ from the committed table the DB's cache holds).
	lotsApplied bool
	// upsertLot is the parking_lots upsert, built once.
	upsertLot, upsertLotTail string
	// versionRows and versionDeletes buffer lot_versions writes (see setVersion).
	versionRows, versionDeletes []any
	// sums is what the transaction adds to the summaries (summary.go).
	sums summaries
	// latest holds the availability_latest rows the transaction changed
	// (latest.go).
	latest latestRows
	// retracted are the months whose observations a retraction deleted
	// from: their summaries are counted again (summary.go).
	retracted map[string]bool
}

// stmt returns a prepared statement for query, prepared once per transaction.
func (a *applier) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if s, ok := a.stmts[query]; ok {
		return s, nil
	}
	s, err := a.tx.PrepareContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	a.stmts[query] = s
	return s, nil
}

func (a *applier) exec(ctx context.Context, query string, args ...any) (int, error) {
	s, err := a.stmt(ctx, query)
	if err != nil {
		return 0, err
	}
	res, err := s.ExecContext(ctx, args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// chunkRows is how many VALUES tuples one multi-row INSERT carries at most.
// In the pure-Go driver each statement execution costs far more than each
// row in it, so a snapshot of ~1,400 rows is written in a dozen statements,
// not a few thousand. 128 x 5 columns stays far below SQLite's 32,766
// variables.
const chunkRows = 128

// execChunked runs head + "(?,...),(?,...)" + tail over rows of width
// arguments each (args is rows*width long) and returns the rows changed.
// Chunks are chunkRows, then powers of two for the rest: a transaction
// prepares at most eight shapes of each statement, where one chunk for the
// rest, of any size, prepared a new statement for nearly every snapshot
// (BenchmarkBackfillPerSnapshot's applies spent 0.44 s of 3.15 s preparing,
// 0.28 s of 3.03 s since).
func (a *applier) execChunked(ctx context.Context, head, tail string, width int, args []any) (int, error) {
	rows := len(args) / width
	changed := 0
	for start := 0; start < rows; {
		n := min(rows-start, chunkRows)
		n = 1 << (bits.Len(uint(n)) - 1) // the largest power of two <= n
		s, err := a.chunkStmt(ctx, head, tail, width, n)
		if err != nil {
			return changed, err
		}
		res, err := s.ExecContext(ctx, args[start*width:(start+n)*width]...)
		if err != nil {
			return changed, err
		}
		m, err := res.RowsAffected()
		if err != nil {
			return changed, err
		}
		changed += int(m)
		start += n
	}
	return changed, nil
}

// chunkKey names one shape of a chunked statement.
type chunkKey struct {
	head, tail  string
	width, rows int
}

// chunkStmt returns the statement of rows tuples, built and prepared once
// per transaction.
func (a *applier) chunkStmt(ctx context.Context, head, tail string, width, rows int) (*sql.Stmt, error) {
	k := chunkKey{head, tail, width, rows}
	if s, ok := a.chunks[k]; ok {
		return s, nil
	}
	var q strings.Builder
	q.WriteString(head)
	tuple := "(" + strings.TrimSuffix(strings.Repeat("?,", width), ",") + ")"
	for i := range rows {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString(tuple)
	}
	q.WriteString(tail)
	s, err := a.stmt(ctx, q.String())
	if err != nil {
		return nil, err
	}
	if a.chunks == nil {
		a.chunks = map[chunkKey]*sql.Stmt{}
	}
	a.chunks[k] = s
	return s, nil
}

func (a *applier) closeStmts() {
	for _, s := range a.stmts {
		s.Close()
	}
}

func (a *applier) apply(ctx context.Context, x snapshot.Input) (snapshot.Result, error) {
	if x.Key == "" {
		return snapshot.Result{}, errors.New("empty key")
	}
	r := snapshot.Result{Key: x.Key, Dataset: x.Dataset}

	prev, found, err := a.ledgerOutcome(ctx, x.Key)
	if err != nil {
		return r, err
	}
	if found && prev != snapshot.Refused {
		r.Outcome, r.AlreadyApplied = prev, true
		return r, nil
	}

	retraction, err := a.retraction(ctx, x)
	if err != nil {
		return r, err
	}
	switch {
	case retraction != "":
		r.Outcome, r.Reason = snapshot.Refused, retraction
	case x.Dataset != feed.Lots && x.Dataset != feed.Availability:
		r.Outcome, r.Reason = snapshot.Refused, fmt.Sprintf("unknown dataset %q", x.Dataset)
	case x.FetchedAt.Unix() <= 0:
		// Also keeps observation keys (t << 16) positive.
		r.Outcome, r.Reason = snapshot.Refused, "no fetch time"
	case !x.StoredAt.IsZero() && x.FetchedAt.Sub(x.StoredAt) > snapshot.MaxFetchAhead:
		// Judged against the store's own write time, which no message can
		// forge and which never changes, so the judgement is the same
		// whenever and in whatever order the snapshot arrives.
		r.Outcome = snapshot.Refused
		r.Reason = fmt.Sprintf("fetched at %s, %s after the store wrote it at %s (at most %s allowed): "+
			"a clock ahead or a forged fetch time", formatMilli(x.FetchedAt.UnixMilli()),
			x.FetchedAt.Sub(x.StoredAt).Round(time.Second), formatTime(x.StoredAt), snapshot.MaxFetchAhead)
		if err := a.rejectOnce(ctx, x, prev, found, r.Reason); err != nil {
			return r, err
		}
	}
	if r.Outcome == "" && x.SHA256 != "" {
		dup, err := a.sameContent(ctx, x)
		if err != nil {
			return r, err
		}
		if dup != "" {
			r.Outcome, r.Reason = snapshot.Duplicate, "same sha256 as "+dup
		}
	}
	if r.Outcome == "" {
		switch x.Dataset {
		case feed.Lots:
			r.Rows = len(x.Lots)
			a.lotsApplied = true
			err = a.applyLots(ctx, x, &r)
		case feed.Availability:
			r.Rows = len(x.Availability)
			err = a.applyAvailability(ctx, x, &r)
		}
		if err != nil {
			return r, err
		}
	} else {
		r.Rows = len(x.Lots) + len(x.Availability)
	}
	if err := a.flushVersions(ctx); err != nil {
		return r, err
	}
	if err := a.record(ctx, x, r, found); err != nil {
		return r, err
	}
	return r, nil
}

// rejectOnce records a refused snapshot in rejections too, beside its ledger
// row, unless the ledger already held it refused (a redelivery or a
// reconcile judging it again), so it is listed once.
func (a *applier) rejectOnce(ctx context.Context, x snapshot.Input, prev snapshot.Outcome, found bool, reason string) error {
	if found && prev == snapshot.Refused {
		return nil
	}
	_, err := a.exec(ctx, `INSERT INTO rejections (message_id, key, dataset, reason, body, at) VALUES ('', ?, ?, ?, NULL, ?)`,
		x.Key, string(x.Dataset), reason, formatTime(a.db.now()))
	if err != nil {
		return fmt.Errorf("record the refusal in rejections: %w", err)
	}
	return nil
}

// unappliable reports whether err is SQLite refusing the data itself (too
// large for it, a constraint, a type mismatch): an error the same rows give
// on every try, unlike a full disk, a busy lock or an I/O error.
func unappliable(err error) bool {
	var se *modernc.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_TOOBIG, sqlite3.SQLITE_CONSTRAINT, sqlite3.SQLITE_MISMATCH:
		return true
	}
	return false
}

// record writes the ledger row. A refused key may come back and be applied:
// its row (replaced is true) is then replaced.
func (a *applier) record(ctx context.Context, x snapshot.Input, r snapshot.Result, replaced bool) error {
	q, err := json.Marshal(r.Quality)
	if err != nil {
		return fmt.Errorf("quality json: %w", err)
	}
	if replaced {
		var dataset, outcome string
		if err := a.tx.QueryRowContext(ctx, "SELECT dataset, outcome FROM snapshots WHERE key = ?", x.Key).Scan(&dataset, &outcome); err != nil {
			return fmt.Errorf("ledger lookup: %w", err)
		}
		a.sums.recorded(dataset, outcome, -1, "")
	}
	appliedAt := formatTime(a.db.now())
	a.sums.recorded(string(x.Dataset), string(r.Outcome), 1, appliedAt)
	t := x.FetchedAt.UnixMilli()
	_, err = a.exec(ctx, `INSERT INTO snapshots
		(key, dataset, sha256, fetched_at, fetched_ms, applied_at, rows, changed, outcome, reason, quality)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET dataset = excluded.dataset, sha256 = excluded.sha256,
			fetched_at = excluded.fetched_at, fetched_ms = excluded.fetched_ms,
			applied_at = excluded.applied_at, rows = excluded.rows, changed = excluded.changed,
			outcome = excluded.outcome, reason = excluded.reason, quality = excluded.quality`,
		x.Key, string(x.Dataset), x.SHA256, formatMilli(t), t, appliedAt,
		r.Rows, r.Changed, string(r.Outcome), r.Reason, string(q))
	if err != nil {
		return fmt.Errorf("record in ledger: %w", err)
	}
	return nil
}
