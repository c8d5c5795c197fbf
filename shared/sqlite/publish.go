package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// This file holds the reads of publication (the Parquet history, the lots
// table, what exists to publish) and the publisher's bookkeeping. Reads that
// cover a month are cut into bounded pieces, each taking the connection only
// briefly, so an apply waits for one piece at most, never for a month.

// Observation is one stored availability observation.
type Observation struct {
	ParkingID string
	// ObservedAt is the fetch time in unix seconds.
	ObservedAt   int64
	AvailableCar int32
}

// ObservationStats summarise the observations of a time range: enough to
// tell that a published copy of the range is stale (a late snapshot adds
// rows; a same-second tie that a larger value won changes the sum).
type ObservationStats struct {
	Rows         int64 `json:"rows"`
	SumAvailable int64 `json:"sum_available_car"`
}

// observationBatch is how many observations one piece of a streamed read
// holds: tens of milliseconds of the connection.
const observationBatch = 32768

// statsPiece is the time span one piece of ObservationStats counts: a day is
// at most ~400,000 keys of the index.
const statsPiece = 24 * time.Hour

// ObservationSpan returns the fetch times of the first and the last stored
// observation; ok is false when there is none.
func (db *DB) ObservationSpan(ctx context.Context) (first, last time.Time, ok bool, err error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	var lo, hi, overLo, overHi sql.NullInt64
	// Lookups at the ends of each table's key, not a scan. The overflow
	// table (lot ordinals past 16 bits) may hold the first or the last.
	err = db.conn.QueryRowContext(ctx, `SELECT (SELECT min(k) FROM availability_obs) >> 16, (SELECT max(k) FROM availability_obs) >> 16,
		(SELECT min(t) FROM availability_obs_overflow), (SELECT max(t) FROM availability_obs_overflow)`).Scan(&lo, &hi, &overLo, &overHi)
	if err != nil {
		return first, last, false, fmt.Errorf("observation span: %w", err)
	}
	for _, o := range []struct{ lo, hi sql.NullInt64 }{{lo, hi}, {overLo, overHi}} {
		if !o.lo.Valid {
			continue
		}
		if !ok || o.lo.Int64 < first.Unix() {
			first = time.Unix(o.lo.Int64, 0)
		}
		if !ok || o.hi.Int64 > last.Unix() {
			last = time.Unix(o.hi.Int64, 0)
		}
		ok = true
	}
	return first, last, ok, nil
}

// ObservationStats counts the observations fetched in [from, to) and sums
// their values, a day at a time, both tables.
func (db *DB) ObservationStats(ctx context.Context, from, to time.Time) (ObservationStats, error) {
	var total ObservationStats
	for lo := from; lo.Before(to); lo = lo.Add(statsPiece) {
		hi := min(lo.Add(statsPiece).Unix(), to.Unix())
		if err := db.addObservationStats(ctx, lo.Unix(), hi, &total); err != nil {
			return total, fmt.Errorf("observation stats %s to %s: %w", from.Format(time.RFC3339), to.Format(time.RFC3339), err)
		}
	}
	return total, nil
}

// addObservationStats adds the count and sum of the observations with
// lo <= t < hi (unix seconds) to total.
func (db *DB) addObservationStats(ctx context.Context, lo, hi int64, total *ObservationStats) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	rows, err := db.conn.QueryContext(ctx, `SELECT count(*), coalesce(sum(v), 0) FROM availability_obs WHERE k >= ?1 << 16 AND k < ?2 << 16
		UNION ALL
		SELECT count(*), coalesce(sum(v), 0) FROM availability_obs_overflow WHERE t >= ?1 AND t < ?2`, lo, hi)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var s ObservationStats
		if err := rows.Scan(&s.Rows, &s.SumAvailable); err != nil {
			return err
		}
		total.Rows += s.Rows
		total.SumAvailable += s.SumAvailable
	}
	return rows.Err()
}

// Observations calls fn with the observations fetched in [from, to), in
// batches, sorted by fetch time, then parking ID: the order does not depend
// on the order lots were first seen (the storage's lot ordinals, and which
// table holds a lot's rows), so the same observations always come out the
// same. A batch never splits one fetch time, and fn may keep no reference to
// it after it returns.
//
// Each batch is read in its own short transaction. An apply that commits
// between two batches may add rows the read has passed; the caller learns
// of it from that apply (see ObservationStats).
func (db *DB) Observations(ctx context.Context, from, to time.Time, fn func([]Observation) error) error {
	return db.observations(ctx, from, to, observationBatch, fn)
}

// obsCursor walks one observation table in (time, lot) order, a batch at a
// time.
type obsCursor struct {
	// packed: availability_obs (keys t << 16 | lot); else the overflow
	// table of ordinals past 16 bits (migration 0002).
	packed bool
	// t, lot: the last row read (lot -1 before the first).
	t, lot int64
	// done: every row fetched before it has been read.
	done int64
}

// storedObservation is one row of either table, its lot not yet named.
type storedObservation struct{ t, lot, v int64 }

func (db *DB) observations(ctx context.Context, from, to time.Time, batch int, fn func([]Observation) error) error {
	end := to.Unix()
	cursors := []*obsCursor{
		{packed: true, t: from.Unix(), lot: -1, done: from.Unix()},
		{t: from.Unix(), lot: -1, done: from.Unix()},
	}
	var names lotNames
	buf := make([]Observation, 0, 2*batch)
	read := make([]storedObservation, 0, batch)
	for {
		// Read on from the table that lags, so that neither runs more than
		// a batch ahead of what can be passed on.
		c := cursors[0]
		if cursors[1].done < c.done {
			c = cursors[1]
		}
		if c.done >= end {
			break
		}
		var err error
		db.mu.Lock()
		read, err = db.readObservations(ctx, c, end, batch, read[:0])
		if err == nil && !names.has(read) {
			names = db.lotNames()
		}
		db.mu.Unlock()
		if err != nil {
			return fmt.Errorf("observations %s to %s: %w", from.Format(time.RFC3339), to.Format(time.RFC3339), err)
		}
		for _, o := range read {
			id, ok := names.name(o.lot)
			if !ok {
				return fmt.Errorf("observations: the row of %s names lot ordinal %d, which lot_ids lacks", formatUnix(o.t), o.lot)
			}
			buf = append(buf, Observation{ParkingID: id, ObservedAt: o.t, AvailableCar: int32(o.v)})
		}
		// Pass on the fetch times both tables have been read past. Rows of
		// the overflow table (none in practice) break the time order the
		// packed rows come in.
		if !slices.IsSortedFunc(buf, byTime) {
			slices.SortStableFunc(buf, byTime)
		}
		bound := min(cursors[0].done, cursors[1].done)
		cut, _ := slices.BinarySearchFunc(buf, bound, func(o Observation, t int64) int { return cmp.Compare(o.ObservedAt, t) })
		if cut > 0 {
			sortByTimeThenLot(buf[:cut])
			if err := fn(buf[:cut]); err != nil {
				return err
			}
			buf = append(buf[:0], buf[cut:]...)
		}
	}
	// Both tables were read to the end, and the last pass passed on every
	// row before it: buf is empty.
	return nil
}

// readObservations appends at most batch rows after c's position and
// before end to dst, and moves c past them. The caller holds db.mu.
func (db *DB) readObservations(ctx context.Context, c *obsCursor, end int64, batch int, dst []storedObservation) ([]storedObservation, error) {
	var rows *sql.Rows
	var err error
	if c.packed {
		// (t, lot) after (t0, l0) is k >= t0 << 16 + l0 + 1.
		rows, err = db.conn.QueryContext(ctx, "SELECT k, v FROM availability_obs WHERE k >= ? AND k < ? ORDER BY k LIMIT ?",
			c.t<<16+c.lot+1, end<<16, batch)
	} else {
		rows, err = db.conn.QueryContext(ctx, "SELECT t, lot, v FROM availability_obs_overflow WHERE (t, lot) > (?, ?) AND t < ? ORDER BY t, lot LIMIT ?",
			c.t, c.lot, end, batch)
	}
	if err != nil {
		return dst, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var o storedObservation
		if c.packed {
			var k int64
			err = rows.Scan(&k, &o.v)
			o.t, o.lot = k>>16, k&maxPackedLot
		} else {
			err = rows.Scan(&o.t, &o.lot, &o.v)
		}
		if err != nil {
			return dst, err
		}
		dst = append(dst, o)
		n++
	}
	if err := rows.Err(); err != nil {
		return dst, err
	}
	if n < batch {
		c.done = end
	} else {
		// The last fetch time read may have more rows in the next batch.
		last := dst[len(dst)-1]
		c.t, c.lot, c.done = last.t, last.lot, last.t
	}
	return dst, nil
}

// lotNames inverts the committed lot ordinals: a slice for the packed ones,
// a map for those past 16 bits (none in practice).
type lotNames struct {
	packed []string
	over   map[int64]string
}

func (n lotNames) name(lot int64) (string, bool) {
	if lot < int64(len(n.packed)) {
		return n.packed[lot], n.packed[lot] != ""
	}
	id, ok := n.over[lot]
	return id, ok
}

// has reports whether every row's ordinal has a name (a lot first seen
// since the names were read has none).
func (n lotNames) has(rows []storedObservation) bool {
	for _, o := range rows {
		if _, ok := n.name(o.lot); !ok {
			return false
		}
	}
	return true
}

// lotNames reads the committed lot ordinals. The caller holds db.mu.
func (db *DB) lotNames() lotNames {
	var maxN int64
	for _, n := range db.lotIDs {
		if n <= maxPackedLot {
			maxN = max(maxN, n)
		}
	}
	names := lotNames{packed: make([]string, maxN+1), over: map[int64]string{}}
	for id, n := range db.lotIDs {
		if n <= maxPackedLot {
			names.packed[n] = id
		} else {
			names.over[n] = id
		}
	}
	return names
}

func byTime(a, b Observation) int { return cmp.Compare(a.ObservedAt, b.ObservedAt) }

// sortByTimeThenLot sorts observations already in time order by parking ID
// within each fetch time.
func sortByTimeThenLot(obs []Observation) {
	for i := 0; i < len(obs); {
		j := i + 1
		for j < len(obs) && obs[j].ObservedAt == obs[i].ObservedAt {
			j++
		}
		slices.SortFunc(obs[i:j], func(a, b Observation) int { return strings.Compare(a.ParkingID, b.ParkingID) })
		i = j
	}
}

// LotRecord is one row of parking_lots, deleted lots included, as the
// published lots table holds it.
type LotRecord struct {
	ID, Area, Name, Type, Summary, Address, Tel, PayEx, ServiceTime string
	TotalCar, TotalMotor, TotalBike                                 int64
	// Lon and Lat are nil when the lot has no valid position (CoordNote says why).
	Lon, Lat  *float64
	CoordNote string
	CreatedAt time.Time
	UpdatedAt time.Time
	// DeletedAt is nil while the lot is listed.
	DeletedAt *time.Time
}

// LotRecords returns every lot, deleted ones included, by ID.
func (db *DB) LotRecords(ctx context.Context) ([]LotRecord, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	rows, err := db.conn.QueryContext(ctx, `SELECT id, area, name, type, summary, address, tel, pay_ex, service_time,
		total_car, total_motor, total_bike, lon, lat, coord_note, created_at, updated_at, deleted_at
		FROM parking_lots ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("lot records: %w", err)
	}
	defer rows.Close()
	var out []LotRecord
	for rows.Next() {
		var r LotRecord
		var lon, lat sql.NullFloat64
		var created, updated string
		var deleted sql.NullString
		if err := rows.Scan(&r.ID, &r.Area, &r.Name, &r.Type, &r.Summary, &r.Address, &r.Tel, &r.PayEx, &r.ServiceTime,
			&r.TotalCar, &r.TotalMotor, &r.TotalBike, &lon, &lat, &r.CoordNote, &created, &updated, &deleted); err != nil {
			return nil, fmt.Errorf("lot records: %w", err)
		}
		if lon.Valid && lat.Valid {
			r.Lon, r.Lat = &lon.Float64, &lat.Float64
		}
		if r.CreatedAt, err = time.Parse(time.RFC3339, created); err != nil {
			return nil, fmt.Errorf("lot records: lot %s: created_at %q: %w", r.ID, created, err)
		}
		if r.UpdatedAt, err = time.Parse(time.RFC3339, updated); err != nil {
			return nil, fmt.Errorf("lot records: lot %s: updated_at %q: %w", r.ID, updated, err)
		}
		if deleted.Valid {
			t, err := time.Parse(time.RFC3339, deleted.String)
			if err != nil {
				return nil, fmt.Errorf("lot records: lot %s: deleted_at %q: %w", r.ID, deleted.String, err)
			}
			r.DeletedAt = &t
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("lot records: %w", err)
	}
	return out, nil
}

// publishStatePrefix keys the publisher's documents in meta, one per
// destination URL, so that pointing the loader at a new destination starts
// that one from nothing.
const publishStatePrefix = "publish "

// PublishState returns the publisher's document for destination, or ok
// false when there is none. It lives in the database, not the destination:
// the loader may write the destination but not read it, and the document
// describes what was published from this database.
func (db *DB) PublishState(ctx context.Context, destination string) (doc []byte, ok bool, err error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	var v string
	err = db.conn.QueryRowContext(ctx, "SELECT value FROM meta WHERE key = ?", publishStatePrefix+destination).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read the publication state of %s: %w", destination, err)
	}
	return []byte(v), true, nil
}

// SetPublishState replaces the publisher's document for destination.
func (db *DB) SetPublishState(ctx context.Context, destination string, doc []byte) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	err := db.withTx(ctx, nil, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, publishStatePrefix+destination, string(doc))
		return err
	})
	if err != nil {
		return fmt.Errorf("write the publication state of %s: %w", destination, err)
	}
	return nil
}
