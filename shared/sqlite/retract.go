package sqlite

// This file holds the retraction of applied snapshots: the database rebuilt
// as if they had never arrived, and the keys remembered so that nothing
// applies them again.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"golang.org/x/sync/errgroup"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
)

// ReadFunc reads a stored snapshot by its key. Retract reads the snapshots
// that share a fetch time with a retracted one, and older availability
// snapshots for the latest values the retracted one had replaced: the
// database keeps neither the rows a same-second snapshot lost to the
// retracted one nor the unknown (-9) values of the past. It may be called
// from several goroutines at once.
type ReadFunc func(ctx context.Context, key string) (*snapshot.Input, error)

// Retracted is what Retract did with one key.
type Retracted struct {
	Key       string `json:"key"`
	Dataset   string `json:"dataset"`
	FetchedAt string `json:"fetched_at"`
	// Outcome is the ledger's outcome before the retraction; "" when the
	// ledger had never seen the key (it is then only remembered).
	Outcome string `json:"outcome"`
	// AlreadyRetracted: nothing was done, the key was retracted before.
	AlreadyRetracted bool `json:"already_retracted,omitempty"`
	// Changed counts rows of user-facing tables written or deleted to take
	// the snapshot's data out.
	Changed int `json:"changed"`
}

// RetractResult is what Retract did.
type RetractResult struct {
	Snapshots []Retracted `json:"snapshots"`
	// Reread counts snapshots read again from the store.
	Reread int `json:"reread"`
}

// retractReadAhead is how many older availability snapshots Retract reads
// at once while it looks for the latest values a retracted one replaced.
const retractReadAhead = 8

// Retract withdraws the snapshots with the given keys, in one transaction:
// each is recorded in retractions and refused in the ledger with the reason,
// and the data it brought is taken out so that the user-facing tables are
// what they would be had it never been applied (lot history and the lots
// derived from it, observations, latest values). From then on an apply
// refuses the key and any snapshot with its SHA-256. A key the ledger has
// never seen is only remembered; one retracted before is left as it is.
func (db *DB) Retract(ctx context.Context, keys []string, reason string, read ReadFunc) (RetractResult, error) {
	var res RetractResult
	if reason == "" {
		return res, errors.New("retract: a reason is required")
	}
	if read == nil {
		read = func(_ context.Context, key string) (*snapshot.Input, error) {
			return nil, fmt.Errorf("no store to read %s from", key)
		}
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	a := &applier{db: db, newIDs: map[string]int64{}, stmts: map[string]*sql.Stmt{}, retracted: map[string]bool{}}
	err := db.withTx(ctx, nil, func(tx *sql.Tx) error {
		a.tx = tx
		defer a.closeStmts()
		seen := map[string]bool{}
		for _, key := range keys {
			if seen[key] {
				continue
			}
			seen[key] = true
			r, err := a.retract(ctx, key, reason, read, &res.Reread)
			if err != nil {
				return fmt.Errorf("retract %s: %w", key, err)
			}
			res.Snapshots = append(res.Snapshots, r)
		}
		// Counted again whole, the months from their key ranges (what
		// re-applying a snapshot of the same second added is in that count
		// already) and the ledger (a retracted snapshot may have been the
		// newest applied): a retraction is rare, and the ledger a few
		// hundred thousand rows at most.
		return a.resummarise(ctx, a.retracted)
	})
	if err != nil {
		return RetractResult{}, err
	}
	for id, n := range a.newIDs {
		db.lotIDs[id] = n
	}
	// The retraction wrote lots, latest values and month summaries in SQL,
	// past the caches: they are read again when next needed.
	db.knownLots, db.latest = nil, nil
	for m := range a.retracted {
		delete(db.monthLots, m)
	}
	return res, nil
}

func (a *applier) retract(ctx context.Context, key, reason string, read ReadFunc, reread *int) (Retracted, error) {
	r := Retracted{Key: key}
	var n int
	if err := a.tx.QueryRowContext(ctx, "SELECT count(*) FROM retractions WHERE key = ?", key).Scan(&n); err != nil {
		return r, fmt.Errorf("retractions lookup: %w", err)
	}
	var sha string
	var ms int64
	err := a.tx.QueryRowContext(ctx, "SELECT dataset, sha256, fetched_ms, outcome FROM snapshots WHERE key = ?", key).
		Scan(&r.Dataset, &sha, &ms, &r.Outcome)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		info, err := snapshot.ParseKey(key)
		if err != nil {
			return r, err
		}
		r.Dataset, ms = string(info.Dataset), info.FetchedAt.UnixMilli()
	case err != nil:
		return r, fmt.Errorf("ledger lookup: %w", err)
	}
	r.FetchedAt = formatMilli(ms)
	if n > 0 {
		r.AlreadyRetracted = true
		return r, nil
	}
	now := formatTime(a.db.now())
	if _, err := a.exec(ctx, `INSERT INTO retractions (key, dataset, sha256, fetched_at, outcome, reason, at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, key, r.Dataset, sha, r.FetchedAt, r.Outcome, reason, now); err != nil {
		return r, fmt.Errorf("record the retraction: %w", err)
	}
	// The ledger row stays, refused: the key's history is kept, and a
	// reader of the ledger sees why its data is gone.
	if _, err := a.exec(ctx, `INSERT INTO snapshots (key, dataset, sha256, fetched_at, fetched_ms, applied_at, rows, changed, outcome, reason)
		VALUES (?, ?, ?, ?, ?, ?, 0, 0, 'refused', ?)
		ON CONFLICT (key) DO UPDATE SET applied_at = excluded.applied_at, outcome = 'refused', reason = excluded.reason`,
		key, r.Dataset, sha, r.FetchedAt, ms, now, "retracted: "+reason); err != nil {
		return r, fmt.Errorf("record the retraction in the ledger: %w", err)
	}
	if r.Outcome != string(snapshot.Applied) && r.Outcome != string(snapshot.Superseded) {
		return r, nil // No data of its own in the database.
	}
	var changed int
	switch feed.Dataset(r.Dataset) {
	case feed.Lots:
		changed, err = a.retractLots(ctx, key, ms, read, reread)
	case feed.Availability:
		changed, err = a.retractAvailability(ctx, ms/1000, read, reread)
		a.retracted[monthOf(ms/1000)] = true
	}
	r.Changed = changed
	return r, err
}

// retractLots takes the lots snapshot at ms out of the lot history: its
// point of the run-length encoding is removed, and if another applied lots
// snapshot has the same millisecond, that one's point is put back.
func (a *applier) retractLots(ctx context.Context, key string, ms int64, read ReadFunc, reread *int) (int, error) {
	var same sql.NullString
	if err := a.tx.QueryRowContext(ctx, "SELECT max(key) FROM snapshots WHERE dataset = 'lots' AND "+hasData+" AND fetched_ms = ?",
		ms).Scan(&same); err != nil {
		return 0, fmt.Errorf("lots at the same time: %w", err)
	}
	if same.Valid && same.String > key {
		return 0, nil // That one took precedence: the retracted one's rows were never in the history.
	}
	changed, err := a.removeLotsPoint(ctx, ms)
	if err != nil || !same.Valid {
		return changed, err
	}
	in, err := read(ctx, same.String)
	if err != nil {
		return changed, fmt.Errorf("read %s again: %w", same.String, err)
	}
	*reread++
	// It was applied once; the guards judged it then.
	in.AllowMassDelete = true
	var r snapshot.Result
	if err := a.applyLots(ctx, *in, &r); err != nil {
		return changed, fmt.Errorf("apply %s again: %w", same.String, err)
	}
	return changed + r.Changed, a.flushVersions(ctx)
}

// removeLotsPoint removes the lots snapshot time ms from lot_versions, the
// inverse of applyLots' insertion: the row at ms goes, and the row at the
// next applied time must exist exactly when the state there differs from
// the state before ms. parking_lots is derived again for the lots touched;
// a lot that had no other version disappears from it.
func (a *applier) removeLotsPoint(ctx context.Context, ms int64) (int, error) {
	ts := formatMilli(ms)
	nb, err := a.lotsNeighbours(ctx, ms)
	if err != nil {
		return 0, err
	}
	prev, err := a.statesBefore(ctx, ts)
	if err != nil {
		return 0, err
	}
	atT, err := a.statesAt(ctx, ts)
	if err != nil {
		return 0, err
	}
	var nextTS string
	var atNext map[string]lotState
	if nb.next.Valid {
		nextTS = formatMilli(nb.next.Int64)
		if atNext, err = a.statesAt(ctx, nextTS); err != nil {
			return 0, err
		}
	}
	ids := make([]string, 0, len(atT)+len(atNext))
	for id := range atT {
		ids = append(ids, id)
	}
	for id := range atNext {
		if _, ok := atT[id]; !ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	changed := 0
	var affected []string
	for _, id := range ids {
		sPrev := prev[id]
		sT, hadT := atT[id]
		if !hadT {
			sT = sPrev
		}
		n, err := a.setVersion(ctx, id, ts, absent, hadT, false, sT)
		if err != nil {
			return changed, err
		}
		if nb.next.Valid {
			sNext, hadNext := atNext[id]
			if !hadNext {
				sNext = sT
			}
			m, err := a.setVersion(ctx, id, nextTS, sNext, hadNext, sNext != sPrev, sNext)
			if err != nil {
				return changed, err
			}
			n += m
		}
		if n > 0 {
			changed += n
			affected = append(affected, id)
		}
	}
	n, err := a.deriveLots(ctx, affected)
	if err != nil {
		return changed, err
	}
	a.knownLots = nil
	return changed + n, nil
}

// retractAvailability takes the availability data of unix second t out and
// puts back what the other snapshots say: the observations of t come from
// the other applied snapshots of that second, and each lot whose latest
// value was of t gets the newest value any other snapshot (or a legacy
// import) gave it before.
func (a *applier) retractAvailability(ctx context.Context, t int64, read ReadFunc, reread *int) (int, error) {
	ids, err := queryAll(ctx, a.tx, func(r *sql.Rows, id *string) error { return r.Scan(id) },
		"SELECT parking_id FROM availability_latest WHERE observed_unix = ?", t)
	if err != nil {
		return 0, fmt.Errorf("latest values of the snapshot: %w", err)
	}
	affected := map[string]bool{}
	for _, id := range ids {
		affected[id] = true
	}

	changed := 0
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{"DELETE FROM availability_obs WHERE k BETWEEN ? AND ?", []any{obsKey(t, 0), obsKey(t, maxPackedLot)}},
		{"DELETE FROM availability_obs_overflow WHERE t = ?", []any{t}},
		{"DELETE FROM availability_latest WHERE observed_unix = ?", []any{t}},
	} {
		n, err := a.exec(ctx, q.sql, q.args...)
		if err != nil {
			return changed, fmt.Errorf("take the snapshot's data out: %w", err)
		}
		changed += n
	}

	// The other snapshots of the same second: their observations and latest
	// values come back as they were merged (the larger value wins).
	same, err := a.availabilityKeys(ctx, "fetched_ms BETWEEN ? AND ? ORDER BY key", t*1000, t*1000+999)
	if err != nil {
		return changed, err
	}
	for _, s := range same {
		key := s.key
		in, err := read(ctx, key)
		if err != nil {
			return changed, fmt.Errorf("read %s again: %w", key, err)
		}
		*reread++
		in.AllowMassDelete = true // It was applied once; the guards judged it then.
		var r snapshot.Result
		if err := a.applyAvailability(ctx, *in, &r); err != nil {
			return changed, fmt.Errorf("apply %s again: %w", key, err)
		}
		// Written now: restoreLatest below reads the table.
		if err := a.flushLatest(ctx); err != nil {
			return changed, err
		}
		a.latest = nil
		changed += r.Changed
		for _, o := range observations(in.Availability, &snapshot.Quality{}) {
			delete(affected, o.id)
		}
	}
	n, err := a.restoreLatest(ctx, t, affected, read, reread)
	return changed + n, err
}

// ledgerKey is a key of the ledger and its fetch second.
type ledgerKey struct {
	key string
	sec int64
}

// availabilityKeys returns the availability snapshots with data, filtered
// and ordered by the rest of the WHERE clause.
func (a *applier) availabilityKeys(ctx context.Context, where string, args ...any) ([]ledgerKey, error) {
	keys, err := queryAll(ctx, a.tx, func(r *sql.Rows, k *ledgerKey) error { return r.Scan(&k.key, &k.sec) },
		"SELECT key, fetched_ms / 1000 FROM snapshots WHERE dataset = 'availability' AND "+hasData+" AND "+where, args...)
	if err != nil {
		return nil, fmt.Errorf("availability snapshots: %w", err)
	}
	return keys, nil
}

// restoreLatest gives each lot in missing (its latest value was of second t,
// now taken out) the newest value it had before t: from the applied
// availability snapshots before t, newest first (read again from the store,
// since the database keeps no unknown values), and from the stored
// observations, which also hold what a legacy import brought. Both move
// availability_latest forward only, so the result is the one the remaining
// snapshots would have given in any order. A lot no other snapshot and no
// observation has is left without a latest value, as it was before.
func (a *applier) restoreLatest(ctx context.Context, t int64, missing map[string]bool, read ReadFunc, reread *int) (int, error) {
	if len(missing) == 0 {
		return 0, nil
	}
	older, err := a.availabilityKeys(ctx, "fetched_ms < ? ORDER BY fetched_ms DESC, key DESC", t*1000)
	if err != nil {
		return 0, err
	}
	// found[id] is the second of the newest snapshot that has the lot.
	found := map[string]int64{}
	changed := 0
	// Once every lot is found, only snapshots of the second just read can
	// still matter (a tie: the larger value wins).
	for start := 0; start < len(older) && (len(found) < len(missing) || older[start].sec == older[start-1].sec); start += retractReadAhead {
		chunk := older[start:min(start+retractReadAhead, len(older))]
		inputs := make([]*snapshot.Input, len(chunk))
		g, gctx := errgroup.WithContext(ctx)
		for i, k := range chunk {
			g.Go(func() error {
				in, err := read(gctx, k.key)
				if err != nil {
					return fmt.Errorf("read %s again: %w", k.key, err)
				}
				inputs[i] = in
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return changed, err
		}
		*reread += len(chunk)
		for _, in := range inputs {
			sec := in.FetchedAt.Unix()
			ts := formatUnix(sec)
			var args []any
			for _, o := range observations(in.Availability, &snapshot.Quality{}) {
				// A lot found at a newer second is done; at the same second
				// every snapshot counts (the larger value wins).
				if f, ok := found[o.id]; !missing[o.id] || ok && f > sec {
					continue
				}
				found[o.id] = sec
				args = appendLatest(args, o, sec, ts)
			}
			n, err := a.moveLatest(ctx, args)
			if err != nil {
				return changed, err
			}
			changed += n
		}
	}
	n, err := a.restoreLatestFromObservations(ctx, t, missing, found)
	return changed + n, err
}

// restoreLatestFromObservations moves the latest value of each lot in
// missing forward to its newest stored observation before t, if that is
// newer than the snapshot found for it (only a legacy import's can be).
// It scans back from t no further than the oldest of those snapshots, or
// through the whole table for a lot no snapshot had.
func (a *applier) restoreLatestFromObservations(ctx context.Context, t int64, missing map[string]bool, found map[string]int64) (int, error) {
	lots := map[int64]string{} // ordinal -> id
	floor := t
	for id := range missing {
		n, ok := a.db.lotIDs[id]
		if !ok {
			continue // Never had an ordinal: never had an observation.
		}
		lots[n] = id
		f, ok := found[id]
		if !ok {
			f = 0
		}
		floor = min(floor, f)
	}
	if len(lots) == 0 {
		return 0, nil
	}
	type obs struct {
		lot, t, v int64
	}
	newest := map[int64]obs{}
	scan := func(q string, args ...any) error {
		rows, err := a.tx.QueryContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("stored observations: %w", err)
		}
		defer rows.Close()
		for rows.Next() && len(newest) < len(lots) {
			var o obs
			if err := rows.Scan(&o.lot, &o.t, &o.v); err != nil {
				return fmt.Errorf("stored observations: %w", err)
			}
			if _, want := lots[o.lot]; !want {
				continue
			}
			if prev, ok := newest[o.lot]; !ok || o.t > prev.t || o.t == prev.t && o.v > prev.v {
				newest[o.lot] = o
			}
		}
		return rows.Err()
	}
	// Newest first, so the scan stops as soon as every lot has its newest.
	if err := scan("SELECT k & 65535, k >> 16, v FROM availability_obs WHERE k >= ? AND k < ? ORDER BY k DESC",
		obsKey(floor, 0), obsKey(t, 0)); err != nil {
		return 0, err
	}
	if err := scan("SELECT lot, t, v FROM availability_obs_overflow WHERE t >= ? AND t < ?", floor, t); err != nil {
		return 0, err
	}
	var args []any
	for n, o := range newest {
		id := lots[n]
		if f, ok := found[id]; ok && f > o.t {
			continue
		}
		args = append(args, id, o.v, strconv.FormatInt(o.v, 10), formatUnix(o.t), o.t)
	}
	return a.moveLatest(ctx, args)
}

// retraction returns why x may never be applied, if it was retracted (its
// key, or another key with its content), and "" otherwise.
func (a *applier) retraction(ctx context.Context, x snapshot.Input) (string, error) {
	s, err := a.stmt(ctx, `SELECT key, at, reason FROM retractions WHERE key = ?1 OR (sha256 <> '' AND sha256 = ?2)
		ORDER BY key = ?1 DESC LIMIT 1`)
	if err != nil {
		return "", err
	}
	var key, at, reason string
	err = s.QueryRowContext(ctx, x.Key, x.SHA256).Scan(&key, &at, &reason)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("retractions lookup: %w", err)
	case key == x.Key:
		return fmt.Sprintf("retracted at %s: %s", at, reason), nil
	}
	return fmt.Sprintf("same content as %s, retracted at %s: %s", key, at, reason), nil
}
