package sqlite

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
)

// availabilityValue reads a raw AVAILABLECAR. Only integers >= 0 are
// observations; -9 (no live figure), other negatives and non-integers are
// unknown, as in the original project.
func availabilityValue(raw string) (int64, bool) {
	v, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 64)
	if err != nil || v < 0 {
		return 0, false
	}
	return v, true
}

type observation struct {
	lot   int64
	id    string
	raw   string
	v     int64
	valid bool
}

// applyAvailability stores an availability snapshot's valid observations keyed
// by (fetch second, lot), which makes a replay add nothing, and moves
// availability_latest forward where this snapshot is newer.
func (a *applier) applyAvailability(ctx context.Context, x snapshot.Input, r *snapshot.Result) error {
	q := snapshot.Quality{Rows: len(x.Availability)}
	aq := &snapshot.AvailabilityQuality{}
	q.Availability = aq
	obs := observations(x.Availability, &q)
	r.Quality = q
	if reason := shapeRefusal(feed.Availability, len(obs), feed.MissingAvailabilityColumns(x.Availability)); reason != "" {
		r.Outcome, r.Reason = snapshot.Refused, reason
		return nil
	}

	known, err := a.knownLotIDs(ctx)
	if err != nil {
		return err
	}
	// The flood guard counts before any ordinal is created: a refused
	// snapshot leaves lot_ids as it found it.
	for _, o := range obs {
		if !known[o.id] && !a.hasOrdinal(o.id) {
			aq.NewLotIDs++
		}
	}
	if !x.AllowMassDelete && aq.NewLotIDs > snapshot.MaxNewLotIDs {
		r.Outcome = snapshot.Refused
		r.Reason = fmt.Sprintf("would add %d lot IDs seen in neither feed before (at most %d at once; the live feed has about 1,430 in all): "+
			"invented IDs, or another dataset's (-allow-mass-delete applies it if it is real)", aq.NewLotIDs, snapshot.MaxNewLotIDs)
		return nil
	}
	for i := range obs {
		o := &obs[i]
		if o.valid {
			aq.Valid++
		} else {
			aq.Unknown++
			switch v, err := strconv.ParseInt(strings.TrimSpace(o.raw), 10, 64); {
			case err != nil:
				aq.NotInteger++
			case v == -9:
				aq.NoFigure++
			default:
				aq.OtherNegative++
			}
		}
		if !known[o.id] {
			aq.UnknownLotIDs++
			aq.UnknownLotIDSample = append(aq.UnknownLotIDSample, o.id)
		}
		if o.lot, err = a.lotOrdinal(ctx, o.id); err != nil {
			return err
		}
	}
	aq.UnknownShare = float64(aq.Unknown) / float64(len(obs))
	sort.Strings(aq.UnknownLotIDSample)
	if len(aq.UnknownLotIDSample) > 10 {
		aq.UnknownLotIDSample = aq.UnknownLotIDSample[:10]
	}
	r.Quality = q

	// In key order, so the b-tree is appended to rather than split at random.
	sort.Slice(obs, func(i, j int) bool { return obs[i].lot < obs[j].lot })
	t := x.FetchedAt.Unix()
	obsArgs := make([]any, 0, 2*aq.Valid)
	var overflowArgs []any
	validLots := make([]int64, 0, aq.Valid)
	for _, o := range obs {
		if o.valid {
			if o.lot <= maxPackedLot {
				obsArgs = append(obsArgs, obsKey(t, o.lot), o.v)
			} else {
				overflowArgs = append(overflowArgs, t, o.lot, o.v)
			}
			validLots = append(validLots, o.lot)
		}
	}
	// The summaries count inserted rows: what was stored at this second
	// before (almost always nothing) tells them apart from raised values.
	var before int64
	if len(validLots) > 0 {
		if before, err = a.countSecond(ctx, t); err != nil {
			return err
		}
	}
	n, err := a.storeObservations(ctx, obsArgs, overflowArgs)
	if err != nil {
		return err
	}
	r.Changed += n
	inserted := int64(len(validLots))
	if before > 0 {
		after, err := a.countSecond(ctx, t)
		if err != nil {
			return err
		}
		inserted = after - before
	}
	a.sums.observed(t, inserted, validLots)
	// Forward only: a late older snapshot never overwrites a newer value. At
	// the same second, a known value beats unknown and the larger one wins;
	// then the raw text decides, so any arrival order gives one answer
	// (latestValue.newer; written at the end of the transaction).
	for _, o := range obs {
		changed, err := a.offerLatest(ctx, o.lot, latestValue{id: o.id, unix: t, v: o.v, known: o.valid, raw: o.raw})
		if err != nil {
			return err
		}
		if changed {
			r.Changed++
		}
	}
	r.Outcome = snapshot.Applied
	return nil
}

// observations reads a snapshot's rows as one observation per ID (the last
// row of an ID wins), counting duplicate and empty IDs into q.
func observations(rows []feed.AvailabilityRow, q *snapshot.Quality) []observation {
	// Sized up front: growing them was a fifth of a backfill's apply.
	index := make(map[string]int, len(rows))
	obs := make([]observation, 0, len(rows))
	for _, row := range rows {
		id := strings.TrimSpace(row.ID)
		if id == "" {
			q.EmptyIDs++
			continue
		}
		v, ok := availabilityValue(row.AvailableCar)
		o := observation{id: id, raw: row.AvailableCar, v: v, valid: ok}
		if i, dup := index[id]; dup {
			q.DuplicateIDs++
			obs[i] = o
			continue
		}
		index[id] = len(obs)
		obs = append(obs, o)
	}
	return obs
}

// appendLatest appends moveLatest's arguments for one observation at unix
// second t (ts: t formatted, once per snapshot).
func appendLatest(dst []any, o observation, t int64, ts string) []any {
	var v any
	if o.valid {
		v = o.v
	}
	return append(dst, o.id, v, o.raw, ts, t)
}

// moveLatest moves availability_latest forward to the given rows
// (appendLatest's arguments, concatenated), in SQL: the apply's cache
// (latest.go) decides first, a retraction relies on this alone. Forward only: a late older snapshot never overwrites a newer
// value. At the same second, a known value beats unknown and the larger one
// wins; then the raw text decides, so any arrival order gives one answer.
func (a *applier) moveLatest(ctx context.Context, args []any) (int, error) {
	n, err := a.execChunked(ctx, "INSERT INTO availability_latest (parking_id, available_car, raw, observed_at, observed_unix) VALUES ",
		` ON CONFLICT (parking_id) DO UPDATE SET available_car = excluded.available_car, raw = excluded.raw,
			observed_at = excluded.observed_at, observed_unix = excluded.observed_unix
		WHERE (excluded.observed_unix, coalesce(excluded.available_car, -1), excluded.raw)
		    > (observed_unix, coalesce(available_car, -1), raw)`, 5, args)
	if err != nil {
		return n, fmt.Errorf("update latest values: %w", err)
	}
	return n, nil
}

// storeObservations writes observations: (k, v) pairs into availability_obs,
// (t, lot, v) triples into availability_obs_overflow. Two snapshots in the
// same second: the larger value wins, whatever the order.
func (a *applier) storeObservations(ctx context.Context, packed, overflow []any) (int, error) {
	n, err := a.execChunked(ctx, "INSERT INTO availability_obs (k, v) VALUES ",
		" ON CONFLICT (k) DO UPDATE SET v = excluded.v WHERE excluded.v > v", 2, packed)
	if err != nil {
		return n, fmt.Errorf("store observations: %w", err)
	}
	m, err := a.execChunked(ctx, "INSERT INTO availability_obs_overflow (t, lot, v) VALUES ",
		" ON CONFLICT (t, lot) DO UPDATE SET v = excluded.v WHERE excluded.v > v", 3, overflow)
	if err != nil {
		return n + m, fmt.Errorf("store observations: %w", err)
	}
	return n + m, nil
}

// hasOrdinal reports whether id already has a lot_ids ordinal.
func (a *applier) hasOrdinal(id string) bool {
	_, committed := a.db.lotIDs[id]
	_, created := a.newIDs[id]
	return committed || created
}

// lotOrdinal returns the lot_ids ordinal of id, creating it if needed. An
// ordinal has no upper limit that matters: those beyond maxPackedLot are
// stored in availability_obs_overflow (see the 0002 migration).
func (a *applier) lotOrdinal(ctx context.Context, id string) (int64, error) {
	if n, ok := a.db.lotIDs[id]; ok {
		return n, nil
	}
	if n, ok := a.newIDs[id]; ok {
		return n, nil
	}
	s, err := a.stmt(ctx, "INSERT INTO lot_ids (id) VALUES (?) RETURNING n")
	if err != nil {
		return 0, err
	}
	var n int64
	if err := s.QueryRowContext(ctx, id).Scan(&n); err != nil {
		return 0, fmt.Errorf("new lot ordinal %s: %w", id, err)
	}
	a.newIDs[id] = n
	return n, nil
}

// maxPackedLot is the largest lot_ids.n that fits the low 16 bits of an
// observation key; observations of larger ordinals go to the overflow table.
// The feeds list about 1,430 IDs (660 in 2016).
const maxPackedLot = 1<<16 - 1

// obsKey packs a fetch second and a lot ordinal (at most maxPackedLot) into
// availability_obs.k. Sorting keys sorts by time, then lot.
func obsKey(t, lot int64) int64 { return t<<16 | lot }

// knownLotIDs returns the IDs in parking_lots, read once per transaction
// unless a lots snapshot changed the table, and kept by the DB between
// transactions that apply no lots snapshot: reading ~1,400 IDs was ~7% of a
// live apply.
func (a *applier) knownLotIDs(ctx context.Context) (map[string]bool, error) {
	if a.knownLots != nil {
		return a.knownLots, nil
	}
	if !a.lotsApplied && a.db.knownLots != nil {
		a.knownLots = a.db.knownLots
		return a.knownLots, nil
	}
	rows, err := a.tx.QueryContext(ctx, "SELECT id FROM parking_lots")
	if err != nil {
		return nil, fmt.Errorf("read lot ids: %w", err)
	}
	defer rows.Close()
	known := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("read lot ids: %w", err)
		}
		known[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read lot ids: %w", err)
	}
	a.knownLots = known
	if !a.lotsApplied {
		a.db.knownLots = known // committed rows: nothing in this transaction changed them
	}
	return known, nil
}
