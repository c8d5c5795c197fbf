package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"time"
)

// The summaries Stats reads (migration 0003): per Taipei month of
// observations (obs_months, obs_month_lots) and per dataset and outcome of
// the ledger (ledger_counts). Every transaction that inserts observations or
// ledger rows adds to them before it commits, so they always agree with the
// tables; StatsFull recomputes the figures from the tables to check that.
//
// They count what was inserted, never what was offered: observations are
// keyed by (fetch second, lot), a replay inserts nothing and a same-second
// duplicate only raises a value, so the summaries stay a function of the set
// of snapshots applied.

// monthOf is the Taipei calendar month of a fetch second, as obs_months keys it.
func monthOf(t int64) string { return time.Unix(t, 0).In(taipei).Format("2006-01") }

// lotSet is a set of lot ordinals (lot_ids.n) as a bitmap: about 180 bytes
// for the feeds' ~1,400 lots.
type lotSet []uint64

func (s lotSet) has(n int64) bool {
	i := int(n >> 6)
	return i < len(s) && s[i]&(1<<(n&63)) != 0
}

func (s *lotSet) add(n int64) {
	i := int(n >> 6)
	for len(*s) <= i {
		*s = append(*s, 0)
	}
	(*s)[i] |= 1 << (n & 63)
}

func (s lotSet) each(fn func(n int64)) {
	for i, w := range s {
		for b := int64(0); w != 0; b, w = b+1, w>>1 {
			if w&1 != 0 {
				fn(int64(i)<<6 | b)
			}
		}
	}
}

// monthAdd is what one transaction adds to one month's summary.
type monthAdd struct {
	observations int64
	first, last  int64
	// lots with an observation in the month, whether inserted now or before:
	// those not yet in obs_month_lots are the month's new lots.
	lots lotSet
}

// ledgerAdd is what one transaction adds to one ledger_counts row.
type ledgerAdd struct {
	snapshots int64
	last      string
}

// summaries accumulates one transaction's additions; flush writes them.
type summaries struct {
	months map[string]*monthAdd
	ledger map[[2]string]*ledgerAdd
	// monthLots are the (month, lot) pairs flush inserted: the DB's cache
	// learns them once the transaction has committed.
	monthLots map[string]lotSet
}

// observed records that the observations of lots at fetch second t now
// exist, inserted of them by this transaction.
func (s *summaries) observed(t int64, inserted int64, lots []int64) {
	if len(lots) == 0 {
		return
	}
	if s.months == nil {
		s.months = map[string]*monthAdd{}
	}
	m := monthOf(t)
	add := s.months[m]
	if add == nil {
		add = &monthAdd{first: t, last: t}
		s.months[m] = add
	}
	add.observations += inserted
	add.first, add.last = min(add.first, t), max(add.last, t)
	for _, n := range lots {
		add.lots.add(n)
	}
}

// recorded counts a ledger row written (delta 1, applied at appliedAt) or
// replaced (delta -1).
func (s *summaries) recorded(dataset, outcome string, delta int64, appliedAt string) {
	if s.ledger == nil {
		s.ledger = map[[2]string]*ledgerAdd{}
	}
	k := [2]string{dataset, outcome}
	add := s.ledger[k]
	if add == nil {
		add = &ledgerAdd{}
		s.ledger[k] = add
	}
	add.snapshots += delta
	add.last = max(add.last, appliedAt)
}

// flush writes the additions in the transaction, before COMMIT.
func (a *applier) flushSummaries(ctx context.Context) error {
	s := &a.sums
	months := make([]string, 0, len(s.months))
	for m := range s.months {
		months = append(months, m)
	}
	sort.Strings(months)
	for _, m := range months {
		add := s.months[m]
		known, err := a.db.monthLotSet(ctx, a.tx, m)
		if err != nil {
			return err
		}
		var fresh lotSet
		var args []any
		add.lots.each(func(n int64) {
			if !known.has(n) {
				fresh.add(n)
				args = append(args, m, n)
			}
		})
		newLots, err := a.execChunked(ctx, "INSERT INTO obs_month_lots (month, lot) VALUES ", " ON CONFLICT DO NOTHING", 2, args)
		if err != nil {
			return fmt.Errorf("summarise %s: %w", m, err)
		}
		if newLots > 0 {
			if s.monthLots == nil {
				s.monthLots = map[string]lotSet{}
			}
			s.monthLots[m] = fresh
		}
		if add.observations == 0 && newLots == 0 {
			continue // A replay: nothing new, and first/last already cover it.
		}
		if _, err := a.exec(ctx, `INSERT INTO obs_months (month, observations, lots, first_unix, last_unix)
			VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (month) DO UPDATE SET observations = observations + excluded.observations,
				lots = lots + excluded.lots, first_unix = min(first_unix, excluded.first_unix),
				last_unix = max(last_unix, excluded.last_unix)`,
			m, add.observations, newLots, add.first, add.last); err != nil {
			return fmt.Errorf("summarise %s: %w", m, err)
		}
	}
	for k, add := range s.ledger {
		if add.snapshots == 0 && add.last == "" {
			continue
		}
		if _, err := a.exec(ctx, `INSERT INTO ledger_counts (dataset, outcome, snapshots, last_applied_at)
			VALUES (?, ?, ?, ?)
			ON CONFLICT (dataset, outcome) DO UPDATE SET snapshots = snapshots + excluded.snapshots,
				last_applied_at = max(last_applied_at, excluded.last_applied_at)`,
			k[0], k[1], add.snapshots, add.last); err != nil {
			return fmt.Errorf("summarise the ledger: %w", err)
		}
	}
	return nil
}

// committed tells the DB's cache the pairs a committed transaction added.
func (s *summaries) committed(db *DB) {
	for m, fresh := range s.monthLots {
		known := db.monthLots[m]
		fresh.each(func(n int64) { known.add(n) })
		db.monthLots[m] = known
	}
}

// monthLotSet returns the committed lots of month m, read from
// obs_month_lots the first time (a month's ~1,400 rows) and cached: an apply
// then inserts only the month's new pairs instead of offering ~400 a snapshot.
func (db *DB) monthLotSet(ctx context.Context, tx *sql.Tx, m string) (lotSet, error) {
	if s, ok := db.monthLots[m]; ok {
		return s, nil
	}
	lots, err := queryAll(ctx, tx, func(r *sql.Rows, n *int64) error { return r.Scan(n) },
		"SELECT lot FROM obs_month_lots WHERE month = ?", m)
	if err != nil {
		return nil, fmt.Errorf("read the lots of %s: %w", m, err)
	}
	var s lotSet
	for _, n := range lots {
		s.add(n)
	}
	// Only committed rows are read: flush runs once per month and
	// transaction, before inserting any of the month's pairs.
	db.monthLots[m] = s
	return s, nil
}

// countSecond counts the observations stored at fetch second t, in both
// observation tables.
func (a *applier) countSecond(ctx context.Context, t int64) (int64, error) {
	s, err := a.stmt(ctx, `SELECT (SELECT count(*) FROM availability_obs WHERE k BETWEEN ? AND ?)
		+ (SELECT count(*) FROM availability_obs_overflow WHERE t = ?)`)
	if err != nil {
		return 0, err
	}
	var n int64
	if err := s.QueryRowContext(ctx, obsKey(t, 0), obsKey(t, maxPackedLot), t).Scan(&n); err != nil {
		return 0, fmt.Errorf("count observations at %d: %w", t, err)
	}
	return n, nil
}

// resummarise counts the given months and the ledger again from the tables,
// in the transaction: what a retraction, which deletes observations and
// turns ledger rows to refused, does instead of adding. A month's range scan; its rows in obs_month_lots are
// written anew, and the DB's cache of them must be dropped once committed.
func (a *applier) resummarise(ctx context.Context, months map[string]bool) error {
	for m := range months {
		start, err := time.ParseInLocation("2006-01", m, taipei)
		if err != nil {
			return fmt.Errorf("summarise %s: %w", m, err)
		}
		next := start.AddDate(0, 1, 0)
		ms, first, last, err := monthFigures(ctx, a.tx, start)
		if err != nil {
			return err
		}
		for _, q := range []struct {
			query string
			args  []any
		}{
			{"DELETE FROM obs_month_lots WHERE month = ?", []any{m}},
			{"DELETE FROM obs_months WHERE month = ?", []any{m}},
			{"INSERT INTO obs_month_lots (month, lot) SELECT DISTINCT ?, k & 65535 FROM availability_obs WHERE k >= ? AND k < ?",
				[]any{m, obsKey(start.Unix(), 0), obsKey(next.Unix(), 0)}},
			{"INSERT INTO obs_month_lots (month, lot) SELECT DISTINCT ?, lot FROM availability_obs_overflow WHERE t >= ? AND t < ?",
				[]any{m, start.Unix(), next.Unix()}},
		} {
			if _, err := a.tx.ExecContext(ctx, q.query, q.args...); err != nil {
				return fmt.Errorf("summarise %s: %w", m, err)
			}
		}
		if ms.Observations == 0 {
			continue
		}
		if _, err := a.tx.ExecContext(ctx, `INSERT INTO obs_months (month, observations, lots, first_unix, last_unix)
			VALUES (?, ?, ?, ?, ?)`, m, ms.Observations, ms.DistinctLots, first, last); err != nil {
			return fmt.Errorf("summarise %s: %w", m, err)
		}
	}
	for _, q := range []string{"DELETE FROM ledger_counts", `INSERT INTO ledger_counts (dataset, outcome, snapshots, last_applied_at)
		SELECT dataset, outcome, count(*), max(applied_at) FROM snapshots GROUP BY dataset, outcome`} {
		if _, err := a.tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("summarise the ledger: %w", err)
		}
	}
	return nil
}
