package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
)

// inLedger is the SQL condition for "this snapshot's data is in the database"
// (or needs none): such a key is never applied again.
const inLedger = "outcome IN ('applied', 'duplicate', 'superseded')"

// hasData is the SQL condition for snapshots whose rows were applied.
const hasData = "outcome IN ('applied', 'superseded')"

func (a *applier) ledgerOutcome(ctx context.Context, key string) (snapshot.Outcome, bool, error) {
	s, err := a.stmt(ctx, "SELECT outcome FROM snapshots WHERE key = ?")
	if err != nil {
		return "", false, err
	}
	var o string
	err = s.QueryRowContext(ctx, key).Scan(&o)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("ledger lookup: %w", err)
	}
	return snapshot.Outcome(o), true, nil
}

// sameContent returns the key of an applied snapshot of x's dataset with x's
// checksum, or "".
func (a *applier) sameContent(ctx context.Context, x snapshot.Input) (string, error) {
	s, err := a.stmt(ctx, "SELECT key FROM snapshots WHERE dataset = ? AND sha256 = ? AND key <> ? AND "+hasData+" ORDER BY key LIMIT 1")
	if err != nil {
		return "", err
	}
	var key string
	err = s.QueryRowContext(ctx, string(x.Dataset), x.SHA256, x.Key).Scan(&key)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("ledger checksum lookup: %w", err)
	}
	return key, nil
}

// Known reports which keys are in the ledger as applied, duplicate or
// superseded, or retracted, so that a backfill can skip them without
// downloading them. Refused keys are not known: they may be tried again.
func (db *DB) Known(ctx context.Context, keys []string) (map[string]bool, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	known := make(map[string]bool, len(keys))
	// Chunks stay far below SQLite's limit on bound parameters.
	const chunk = 500
	for start := 0; start < len(keys); start += chunk {
		part := keys[start:min(start+chunk, len(keys))]
		args := make([]any, len(part))
		for i, k := range part {
			args[i] = k
		}
		in := "key IN (?" + strings.Repeat(", ?", len(part)-1) + ")"
		q := "SELECT key FROM snapshots WHERE " + inLedger + " AND " + in + " UNION SELECT key FROM retractions WHERE " + in
		args = append(args, args...)
		rows, err := db.conn.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("known keys: %w", err)
		}
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				rows.Close()
				return nil, fmt.Errorf("known keys: %w", err)
			}
			known[k] = true
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("known keys: %w", err)
		}
	}
	return known, nil
}

// Rejection is a message or snapshot refused before it could be applied.
type Rejection struct {
	MessageID string
	Key       string
	Dataset   string
	Reason    string
	// Body is the message body or the start of the object; at most
	// MaxRejectionBody bytes are kept.
	Body []byte
	// At is when it was refused; zero means now.
	At time.Time
}

// MaxRejectionBody caps the body excerpt kept for a rejection.
const MaxRejectionBody = 1024

// Reject records a poison message.
func (db *DB) Reject(ctx context.Context, r Rejection) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	at := r.At
	if at.IsZero() {
		at = db.now()
	}
	body := r.Body
	if len(body) > MaxRejectionBody {
		body = body[:MaxRejectionBody]
	}
	err := db.withTx(ctx, nil, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO rejections (message_id, key, dataset, reason, body, at)
			VALUES (?, ?, ?, ?, ?, ?)`, r.MessageID, r.Key, r.Dataset, r.Reason, body, formatTime(at))
		return err
	})
	if err != nil {
		return fmt.Errorf("reject %s (message %s): %w", r.Key, r.MessageID, err)
	}
	return nil
}

// LatestFetchedAt returns the fetch time of the newest applied snapshot of the
// dataset, and false if there is none.
func (db *DB) LatestFetchedAt(ctx context.Context, dataset feed.Dataset) (time.Time, bool, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	var t sql.NullInt64
	err := db.conn.QueryRowContext(ctx, "SELECT max(fetched_ms) FROM snapshots WHERE dataset = ? AND "+hasData,
		string(dataset)).Scan(&t)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("latest %s fetch time: %w", dataset, err)
	}
	if !t.Valid {
		return time.Time{}, false, nil
	}
	return time.UnixMilli(t.Int64).In(taipei), true, nil
}

// lotsNeighbours describes where a lots snapshot at time t (unix ms) falls among the
// applied lots snapshots.
type lotsNeighbours struct {
	newest  sql.NullInt64  // newest applied fetch time
	next    sql.NullInt64  // the first applied fetch time after t
	sameKey sql.NullString // the greatest key of an applied snapshot at t itself
}

func (a *applier) lotsNeighbours(ctx context.Context, t int64) (lotsNeighbours, error) {
	var n lotsNeighbours
	s, err := a.stmt(ctx, `SELECT
		(SELECT max(fetched_ms) FROM snapshots WHERE dataset = 'lots' AND `+hasData+`),
		(SELECT min(fetched_ms) FROM snapshots WHERE dataset = 'lots' AND `+hasData+` AND fetched_ms > ?1),
		(SELECT max(key) FROM snapshots WHERE dataset = 'lots' AND `+hasData+` AND fetched_ms = ?1)`)
	if err != nil {
		return n, err
	}
	if err := s.QueryRowContext(ctx, t).Scan(&n.newest, &n.next, &n.sameKey); err != nil {
		return n, fmt.Errorf("lots neighbours: %w", err)
	}
	return n, nil
}
