package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
	"time"

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

// refusedByDataset counts the refused snapshots through the partial index
// snapshots_refused, as many rows as refusals: left to itself, SQLite groups
// by dataset along snapshots_dataset_fetched, reading the whole ledger (50 ms
// at a year, 100,000 rows a year).
const refusedByDataset = `SELECT dataset, count(*) FROM snapshots INDEXED BY snapshots_refused
	WHERE outcome = 'refused' AND key NOT IN (SELECT key FROM retractions) GROUP BY dataset`

// refusedLatest lists the newest refusals, along the same index.
const refusedLatest = `SELECT key, dataset, fetched_at, applied_at, reason FROM snapshots
	WHERE outcome = 'refused' AND key NOT IN (SELECT key FROM retractions) ORDER BY applied_at DESC, key DESC LIMIT ?`

// statsLatest is how many refused snapshots and rejections Stats lists.
const statsLatest = 5

// Stats reads the summary from the summary tables (summary.go): a few dozen
// rows whatever the size of the history, so it answers in milliseconds.
func (db *DB) Stats(ctx context.Context) (Stats, error) {
	return db.stats(ctx, false)
}

// StatsFull computes the same figures from the tables themselves: every
// observation and every ledger row is read (minutes at five years). It is
// the check of the summaries (`loader stats -full`, SummaryDifferences).
func (db *DB) StatsFull(ctx context.Context) (Stats, error) {
	return db.stats(ctx, true)
}

func (db *DB) stats(ctx context.Context, full bool) (Stats, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	s := Stats{Path: db.path}
	c := db.conn
	if err := c.QueryRowContext(ctx, `SELECT count(*), count(*) FILTER (WHERE deleted_at IS NULL),
		count(*) FILTER (WHERE deleted_at IS NOT NULL) FROM parking_lots`).
		Scan(&s.Lots.Total, &s.Lots.Active, &s.Lots.Deleted); err != nil {
		return s, fmt.Errorf("stats lots: %w", err)
	}

	var err error
	if full {
		s.Months, err = monthsFull(ctx, c)
	} else {
		s.Months, err = months(ctx, c)
	}
	if err != nil {
		return s, fmt.Errorf("stats months: %w", err)
	}
	for _, m := range s.Months {
		s.Observations += m.Observations
	}

	applied := "SELECT coalesce(sum(snapshots), 0) FROM ledger_counts WHERE dataset = ? AND " + hasData
	if full {
		applied = "SELECT count(*) FROM snapshots WHERE dataset = ? AND " + hasData
	}
	for _, d := range feed.Datasets {
		ds := DatasetStats{Dataset: string(d)}
		if err := c.QueryRowContext(ctx, applied, string(d)).Scan(&ds.Applied); err != nil {
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

	type count struct {
		dataset string
		n       int
	}
	counts, err := queryAll(ctx, c, func(r *sql.Rows, e *count) error { return r.Scan(&e.dataset, &e.n) },
		refusedByDataset)
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
	}, refusedLatest, statsLatest); err != nil {
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
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
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

// months reads obs_months.
func months(ctx context.Context, c *sql.Conn) ([]MonthStats, error) {
	return queryAll(ctx, c, func(r *sql.Rows, m *MonthStats) error {
		var first, last int64
		if err := r.Scan(&m.Month, &m.Observations, &m.DistinctLots, &first, &last); err != nil {
			return err
		}
		m.First, m.Last = formatUnix(first), formatUnix(last)
		return nil
	}, "SELECT month, observations, lots, first_unix, last_unix FROM obs_months ORDER BY month")
}

// monthsFull computes the month figures from the observation tables, one
// key range (month) at a time: each is a range scan, and nothing sorts every
// observation, so memory stays flat however many there are.
func monthsFull(ctx context.Context, c *sql.Conn) ([]MonthStats, error) {
	var lo, hi sql.NullInt64
	if err := c.QueryRowContext(ctx, `SELECT min(t), max(t) FROM (
		SELECT min(k) >> 16 AS t FROM availability_obs UNION ALL SELECT max(k) >> 16 FROM availability_obs
		UNION ALL SELECT min(t) FROM availability_obs_overflow UNION ALL SELECT max(t) FROM availability_obs_overflow)`).
		Scan(&lo, &hi); err != nil {
		return nil, err
	}
	if !lo.Valid {
		return nil, nil
	}
	var out []MonthStats
	last := time.Unix(hi.Int64, 0).In(taipei)
	for m := time.Unix(lo.Int64, 0).In(taipei); !m.After(last); {
		start := time.Date(m.Year(), m.Month(), 1, 0, 0, 0, 0, taipei)
		ms, first, lastObs, err := monthFigures(ctx, c, start)
		if err != nil {
			return nil, err
		}
		if ms.Observations > 0 {
			ms.First, ms.Last = formatUnix(first), formatUnix(lastObs)
			out = append(out, ms)
		}
		m = start.AddDate(0, 1, 0)
	}
	return out, nil
}

// monthFigures counts the observations of the Taipei month that starts at
// start, from the tables, with the first and last fetch second. The overflow
// table (empty in practice) holds other lots than the packed one, so the
// distinct lots of the two add up.
func monthFigures(ctx context.Context, c querier, start time.Time) (ms MonthStats, first, last int64, err error) {
	next := start.AddDate(0, 1, 0)
	ms.Month = start.Format("2006-01")
	first, last = -1, -1
	for _, q := range []struct {
		query string
		args  []any
	}{
		{`SELECT count(*), count(DISTINCT k & 65535), min(k) >> 16, max(k) >> 16
			FROM availability_obs WHERE k >= ? AND k < ?`, []any{obsKey(start.Unix(), 0), obsKey(next.Unix(), 0)}},
		{`SELECT count(*), count(DISTINCT lot), min(t), max(t)
			FROM availability_obs_overflow WHERE t >= ? AND t < ?`, []any{start.Unix(), next.Unix()}},
	} {
		var n int64
		var lots int
		var f, l sql.NullInt64
		if err := c.QueryRowContext(ctx, q.query, q.args...).Scan(&n, &lots, &f, &l); err != nil {
			return ms, 0, 0, fmt.Errorf("count %s: %w", ms.Month, err)
		}
		if n == 0 {
			continue
		}
		ms.Observations += n
		ms.DistinctLots += lots
		if first < 0 || f.Int64 < first {
			first = f.Int64
		}
		last = max(last, l.Int64)
	}
	return ms, first, last, nil
}

// SummaryDifferences compares the figures Stats read from the summaries
// with those StatsFull computed from the tables, and describes each
// difference; none means the summaries are right.
func SummaryDifferences(summary, full Stats) []string {
	var diffs []string
	byMonth := map[string]MonthStats{}
	for _, m := range summary.Months {
		byMonth[m.Month] = m
	}
	for _, f := range full.Months {
		m, ok := byMonth[f.Month]
		delete(byMonth, f.Month)
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("month %s: missing from the summaries (full scan: %+v)", f.Month, f))
		case m != f:
			diffs = append(diffs, fmt.Sprintf("month %s: summaries %+v, full scan %+v", f.Month, m, f))
		}
	}
	for _, m := range byMonth {
		diffs = append(diffs, fmt.Sprintf("month %s: in the summaries (%+v) but no observation", m.Month, m))
	}
	for i, f := range full.Datasets {
		if i < len(summary.Datasets) && summary.Datasets[i].Applied != f.Applied {
			diffs = append(diffs, fmt.Sprintf("%s: summaries count %d applied snapshots, the ledger %d",
				f.Dataset, summary.Datasets[i].Applied, f.Applied))
		}
	}
	sort.Strings(diffs)
	return diffs
}
