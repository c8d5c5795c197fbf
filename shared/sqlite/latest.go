package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
)

// availability_latest moves forward only: a row is replaced by an offered
// value that is newer, by the order of the tuple
// (observed_unix, coalesce(available_car, -1), raw), so that any arrival
// order ends with the same row. That order is decided here, in Go, against
// a cache of the committed rows, and each transaction writes each changed
// row once, at its end: a backfill transaction of 32 live snapshots writes
// ~1,430 rows instead of 32 times as many, which were most of its cost.

// latestValue is one availability_latest row; id is "" for none.
type latestValue struct {
	id    string
	unix  int64
	v     int64
	known bool // available_car is not NULL
	raw   string
}

// newer reports whether x replaces y in availability_latest.
func (x latestValue) newer(y latestValue) bool {
	if x.unix != y.unix {
		return x.unix > y.unix
	}
	xv, yv := int64(-1), int64(-1)
	if x.known {
		xv = x.v
	}
	if y.known {
		yv = y.v
	}
	if xv != yv {
		return xv > yv
	}
	return x.raw > y.raw
}

// latestRows are availability_latest rows indexed by lot ordinal (lot_ids.n):
// slices, not maps, since an apply offers ~1,430 values a snapshot.
type latestRows []latestValue

func (l latestRows) get(lot int64) (latestValue, bool) {
	if lot < int64(len(l)) && l[lot].id != "" {
		return l[lot], true
	}
	return latestValue{}, false
}

func (l *latestRows) set(lot int64, x latestValue) {
	if lot >= int64(len(*l)) {
		*l = append(*l, make(latestRows, lot+1-int64(len(*l)))...)
	}
	(*l)[lot] = x
}

// offerLatest offers the value of lot (whose ID is x.id) of a snapshot and
// reports whether it replaces the current one (committed, or set earlier in
// the transaction).
func (a *applier) offerLatest(ctx context.Context, lot int64, x latestValue) (bool, error) {
	cur, ok := a.latest.get(lot)
	if !ok && a.retracted != nil {
		// A retraction has changed the table in SQL, past the cache.
		var err error
		if cur, ok, err = a.currentLatest(ctx, x.id); err != nil {
			return false, err
		}
	} else if !ok {
		committed, err := a.db.committedLatest(ctx, a)
		if err != nil {
			return false, err
		}
		cur, ok = committed.get(lot)
	}
	if ok && !x.newer(cur) {
		return false, nil
	}
	a.latest.set(lot, x)
	return true, nil
}

// currentLatest reads the availability_latest row of id in the transaction.
func (a *applier) currentLatest(ctx context.Context, id string) (latestValue, bool, error) {
	s, err := a.stmt(ctx, "SELECT available_car, raw, observed_unix FROM availability_latest WHERE parking_id = ?")
	if err != nil {
		return latestValue{}, false, err
	}
	x := latestValue{id: id}
	var v *int64
	switch err := s.QueryRowContext(ctx, id).Scan(&v, &x.raw, &x.unix); {
	case errors.Is(err, sql.ErrNoRows):
		return latestValue{}, false, nil
	case err != nil:
		return latestValue{}, false, fmt.Errorf("read the latest value of %s: %w", id, err)
	}
	if v != nil {
		x.v, x.known = *v, true
	}
	return x, true, nil
}

// committedLatest returns the cache of availability_latest, read in a's
// transaction the first time: before the transaction has written to it, so
// the rows are the committed ones. Every row has a lot ordinal: an apply
// gives one to every ID it sees.
func (db *DB) committedLatest(ctx context.Context, a *applier) (latestRows, error) {
	if db.latest != nil {
		return db.latest, nil
	}
	rows, err := a.tx.QueryContext(ctx, `SELECT l.n, a.parking_id, a.available_car, a.raw, a.observed_unix
		FROM availability_latest a JOIN lot_ids l ON l.id = a.parking_id`)
	if err != nil {
		return nil, fmt.Errorf("read latest values: %w", err)
	}
	defer rows.Close()
	m := latestRows{}
	for rows.Next() {
		var n int64
		var v *int64
		var x latestValue
		if err := rows.Scan(&n, &x.id, &v, &x.raw, &x.unix); err != nil {
			return nil, fmt.Errorf("read latest values: %w", err)
		}
		if v != nil {
			x.v, x.known = *v, true
		}
		m.set(n, x)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read latest values: %w", err)
	}
	db.latest = m
	return m, nil
}

// flushLatest writes the rows the transaction changed, before COMMIT.
func (a *applier) flushLatest(ctx context.Context) error {
	var changed []latestValue
	for _, x := range a.latest {
		if x.id != "" {
			changed = append(changed, x)
		}
	}
	if len(changed) == 0 {
		return nil
	}
	// In key order, like every other batch write.
	sort.Slice(changed, func(i, j int) bool { return changed[i].id < changed[j].id })
	args := make([]any, 0, 5*len(changed))
	var at string
	var atUnix int64
	for _, x := range changed {
		var v any
		if x.known {
			v = x.v
		}
		if at == "" || x.unix != atUnix {
			at, atUnix = formatUnix(x.unix), x.unix // a live snapshot's rows share one time
		}
		args = append(args, x.id, v, x.raw, at, x.unix)
	}
	// The order is the one newer decides, stated again in SQL: whatever the
	// cache holds, a row never moves backwards.
	_, err := a.moveLatest(ctx, args)
	return err
}

// committedLatestRows tells the cache what a committed transaction wrote.
func (a *applier) committedLatestRows() {
	if a.db.latest == nil {
		return // Never read: it will be, whole, when next needed.
	}
	for lot, x := range a.latest {
		if x.id != "" {
			a.db.latest.set(int64(lot), x)
		}
	}
}
