package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
)

// Stats summarises the database, like the original project's stats and
// availability-stats commands together.
type Stats struct {
	Path         string          `json:"path"`
	Lots         LotStats        `json:"lots"`
	Observations int64           `json:"observations"`
	Months       []MonthStats    `json:"months"`
	Datasets     []DatasetStats  `json:"datasets"`
	Refused      RefusedStats    `json:"refused"`
	Rejections   RejectionsStats `json:"rejections"`
	Retractions  RetractionStats `json:"retractions"`
}

// LotStats counts parking_lots rows.
type LotStats struct {
	Total   int `json:"total"`
	Active  int `json:"active"`
	Deleted int `json:"deleted"`
}

// MonthStats describes one calendar month (Asia/Taipei) of stored observations.
type MonthStats struct {
	Month        string `json:"month"` // 2026-11
	Observations int64  `json:"observations"`
	DistinctLots int    `json:"distinct_lots"`
	First        string `json:"first"`
	Last         string `json:"last"`
}

// DatasetStats describes the newest applied snapshot of a dataset.
type DatasetStats struct {
	Dataset   string            `json:"dataset"`
	Applied   int               `json:"applied"` // snapshots with data applied (applied or superseded)
	LastKey   string            `json:"last_key,omitempty"`
	FetchedAt string            `json:"fetched_at,omitempty"`
	AppliedAt string            `json:"applied_at,omitempty"`
	Quality   *snapshot.Quality `json:"quality,omitempty"`
}

// RefusedStats counts the snapshots the ledger holds as refused (not those
// retracted: see RetractionStats), by dataset, and lists the latest: each
// waits for a decision (the override, a retraction, or nothing when the next
// snapshot makes it moot).
type RefusedStats struct {
	Count     int            `json:"count"`
	ByDataset map[string]int `json:"by_dataset,omitempty"`
	Latest    []LedgerEntry  `json:"latest,omitempty"`
}

// RetractionStats counts retracted snapshots and lists the latest.
type RetractionStats struct {
	Count  int               `json:"count"`
	Latest []RetractionEntry `json:"latest,omitempty"`
}

// RetractionEntry is one row of retractions.
type RetractionEntry struct {
	Key       string `json:"key"`
	Dataset   string `json:"dataset"`
	FetchedAt string `json:"fetched_at"`
	Reason    string `json:"reason"`
	At        string `json:"at"`
}

// LedgerEntry is one row of the snapshots ledger.
type LedgerEntry struct {
	Key       string `json:"key"`
	Dataset   string `json:"dataset"`
	FetchedAt string `json:"fetched_at"`
	AppliedAt string `json:"applied_at"`
	Reason    string `json:"reason"`
}

// RejectionsStats counts rejections and lists the latest.
type RejectionsStats struct {
	Count  int              `json:"count"`
	Latest []RejectionEntry `json:"latest,omitempty"`
}

// RejectionEntry is one row of rejections, without the body.
type RejectionEntry struct {
	MessageID string `json:"message_id"`
	Key       string `json:"key"`
	Dataset   string `json:"dataset"`
	Reason    string `json:"reason"`
	At        string `json:"at"`
}

// statsLatest is how many refused snapshots and rejections Stats lists.
const statsLatest = 5

// Stats reads the summary. The per-month figures scan the observations table
// (one pass per month over its key range).
func (db *DB) Stats(ctx context.Context) (Stats, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	s := Stats{Path: db.path}
	c := db.conn
	if err := c.QueryRowContext(ctx, `SELECT count(*), count(*) FILTER (WHERE deleted_at IS NULL),
		count(*) FILTER (WHERE deleted_at IS NOT NULL) FROM parking_lots`).
		Scan(&s.Lots.Total, &s.Lots.Active, &s.Lots.Deleted); err != nil {
		return s, fmt.Errorf("stats lots: %w", err)
	}

	months, err := months(ctx, c)
	if err != nil {
		return s, err
	}
	s.Months = months
	for _, m := range s.Months {
		s.Observations += m.Observations
	}

	for _, d := range feed.Datasets {
		ds := DatasetStats{Dataset: string(d)}
		if err := c.QueryRowContext(ctx, "SELECT count(*) FROM snapshots WHERE dataset = ? AND "+hasData, string(d)).
			Scan(&ds.Applied); err != nil {
			return s, fmt.Errorf("stats %s: %w", d, err)
		}
		var quality string
		err := c.QueryRowContext(ctx, `SELECT key, fetched_at, applied_at, quality FROM snapshots
			WHERE dataset = ? AND outcome = 'applied' ORDER BY fetched_ms DESC, key DESC LIMIT 1`, string(d)).
			Scan(&ds.LastKey, &ds.FetchedAt, &ds.AppliedAt, &quality)
		switch {
		case err == sql.ErrNoRows:
		case err != nil:
			return s, fmt.Errorf("stats %s: %w", d, err)
		default:
			var q snapshot.Quality
			if err := json.Unmarshal([]byte(quality), &q); err != nil {
				return s, fmt.Errorf("stats %s: quality of %s: %w", d, ds.LastKey, err)
			}
			ds.Quality = &q
		}
		s.Datasets = append(s.Datasets, ds)
	}

	const refused = "outcome = 'refused' AND key NOT IN (SELECT key FROM retractions)"
	type count struct {
		dataset string
		n       int
	}
	counts, err := queryAll(ctx, c, func(r *sql.Rows, e *count) error { return r.Scan(&e.dataset, &e.n) },
		"SELECT dataset, count(*) FROM snapshots WHERE "+refused+" GROUP BY dataset")
	if err != nil {
		return s, fmt.Errorf("stats refused: %w", err)
	}
	for _, e := range counts {
		if s.Refused.ByDataset == nil {
			s.Refused.ByDataset = map[string]int{}
		}
		s.Refused.ByDataset[e.dataset] = e.n
		s.Refused.Count += e.n
	}
	if s.Refused.Latest, err = queryAll(ctx, c, func(r *sql.Rows, e *LedgerEntry) error {
		return r.Scan(&e.Key, &e.Dataset, &e.FetchedAt, &e.AppliedAt, &e.Reason)
	}, `SELECT key, dataset, fetched_at, applied_at, reason FROM snapshots
		WHERE `+refused+` ORDER BY applied_at DESC, key DESC LIMIT ?`, statsLatest); err != nil {
		return s, fmt.Errorf("stats refused: %w", err)
	}

	if err := c.QueryRowContext(ctx, "SELECT count(*) FROM retractions").Scan(&s.Retractions.Count); err != nil {
		return s, fmt.Errorf("stats retractions: %w", err)
	}
	if s.Retractions.Latest, err = queryAll(ctx, c, func(r *sql.Rows, e *RetractionEntry) error {
		return r.Scan(&e.Key, &e.Dataset, &e.FetchedAt, &e.Reason, &e.At)
	}, `SELECT key, dataset, fetched_at, reason, at FROM retractions ORDER BY at DESC, key DESC LIMIT ?`, statsLatest); err != nil {
		return s, fmt.Errorf("stats retractions: %w", err)
	}

	if err := c.QueryRowContext(ctx, "SELECT count(*) FROM rejections").Scan(&s.Rejections.Count); err != nil {
		return s, fmt.Errorf("stats rejections: %w", err)
	}
	if s.Rejections.Latest, err = queryAll(ctx, c, func(r *sql.Rows, e *RejectionEntry) error {
		return r.Scan(&e.MessageID, &e.Key, &e.Dataset, &e.Reason, &e.At)
	}, `SELECT message_id, key, dataset, reason, at FROM rejections ORDER BY id DESC LIMIT ?`, statsLatest); err != nil {
		return s, fmt.Errorf("stats rejections: %w", err)
	}
	return s, nil
}

// querier is a connection or a transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// queryAll runs query and returns one T per row, each filled by scan.
func queryAll[T any](ctx context.Context, c querier, scan func(*sql.Rows, *T) error, query string, args ...any) ([]T, error) {
	rows, err := c.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var e T
		if err := scan(rows, &e); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// months counts the observations per Taipei month: the packed table, plus
// the overflow table's (empty in practice) merged in. The two hold different
// lots, so distinct lots add up.
func months(ctx context.Context, c *sql.Conn) ([]MonthStats, error) {
	var out []MonthStats
	byMonth := map[string]int{}
	for _, q := range []string{
		`SELECT strftime('%Y-%m', (k >> 16) + 28800, 'unixepoch') AS month,
			count(*), count(DISTINCT k & 65535), min(k) >> 16, max(k) >> 16 FROM availability_obs GROUP BY month ORDER BY month`,
		`SELECT strftime('%Y-%m', t + 28800, 'unixepoch') AS month,
			count(*), count(DISTINCT lot), min(t), max(t) FROM availability_obs_overflow GROUP BY month ORDER BY month`,
	} {
		rows, err := c.QueryContext(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("stats months: %w", err)
		}
		for rows.Next() {
			var m MonthStats
			var first, last int64
			if err := rows.Scan(&m.Month, &m.Observations, &m.DistinctLots, &first, &last); err != nil {
				rows.Close()
				return nil, fmt.Errorf("stats months: %w", err)
			}
			m.First, m.Last = formatUnix(first), formatUnix(last)
			i, ok := byMonth[m.Month]
			if !ok {
				byMonth[m.Month] = len(out)
				out = append(out, m)
				continue
			}
			o := &out[i]
			o.Observations += m.Observations
			o.DistinctLots += m.DistinctLots
			o.First, o.Last = min(o.First, m.First), max(o.Last, m.Last)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("stats months: %w", err)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Month < out[j].Month })
	return out, nil
}
