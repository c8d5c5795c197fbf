package sqlite

import (
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
	var lo, hi sql.NullInt64
	// Two lookups at the ends of the rowid index, not a scan.
	if err := db.conn.QueryRowContext(ctx, "SELECT (SELECT min(k) FROM availability_obs), (SELECT max(k) FROM availability_obs)").Scan(&lo, &hi); err != nil {
		return first, last, false, fmt.Errorf("observation span: %w", err)
	}
	if !lo.Valid {
		return first, last, false, nil
	}
	return time.Unix(lo.Int64>>16, 0), time.Unix(hi.Int64>>16, 0), true, nil
}

// ObservationStats counts the observations fetched in [from, to) and sums
// their values, a day at a time.
func (db *DB) ObservationStats(ctx context.Context, from, to time.Time) (ObservationStats, error) {
	var total ObservationStats
	for lo := from; lo.Before(to); lo = lo.Add(statsPiece) {
		hi := min(lo.Add(statsPiece).Unix(), to.Unix())
		var s ObservationStats
		db.mu.Lock()
		err := db.conn.QueryRowContext(ctx, "SELECT count(*), coalesce(sum(v), 0) FROM availability_obs WHERE k >= ? AND k < ?",
			lo.Unix()<<16, hi<<16).Scan(&s.Rows, &s.SumAvailable)
		db.mu.Unlock()
		if err != nil {
			return total, fmt.Errorf("observation stats %s to %s: %w", from.Format(time.RFC3339), to.Format(time.RFC3339), err)
		}
		total.Rows += s.Rows
		total.SumAvailable += s.SumAvailable
	}
	return total, nil
}

// Observations calls fn with the observations fetched in [from, to), in
// batches, sorted by fetch time, then parking ID: the order does not depend
// on the order lots were first seen (the storage's lot ordinals), so the
// same observations always come out the same. A batch never splits one
// fetch time, and fn may keep no reference to it after it returns.
//
// Each batch is read in its own short transaction. An apply that commits
// between two batches may add rows the read has passed; the caller learns
// of it from that apply (see ObservationStats).
func (db *DB) Observations(ctx context.Context, from, to time.Time, fn func([]Observation) error) error {
	return db.observations(ctx, from, to, observationBatch, fn)
}

func (db *DB) observations(ctx context.Context, from, to time.Time, batch int, fn func([]Observation) error) error {
	lo, hi := from.Unix()<<16, to.Unix()<<16
	var names []string // lot ordinal -> parking ID
	buf := make([]Observation, 0, 2*batch)
	keys := make([]int64, 0, batch)
	vals := make([]int64, 0, batch)
	for {
		keys, vals = keys[:0], vals[:0]
		var err error
		db.mu.Lock()
		keys, vals, err = db.readObservations(ctx, lo, hi, batch, keys, vals)
		if err == nil && needNames(names, keys) {
			names = db.lotNames()
		}
		db.mu.Unlock()
		if err != nil {
			return fmt.Errorf("observations %s to %s: %w", from.Format(time.RFC3339), to.Format(time.RFC3339), err)
		}
		for i, k := range keys {
			n := k & 0xffff
			if n >= int64(len(names)) || names[n] == "" {
				return fmt.Errorf("observations: key %d names lot ordinal %d, which lot_ids lacks", k, n)
			}
			buf = append(buf, Observation{ParkingID: names[n], ObservedAt: k >> 16, AvailableCar: int32(vals[i])})
		}
		last := len(keys) < batch
		if !last {
			lo = keys[len(keys)-1] + 1
		}
		// Hold back the last fetch time unless the range is done: the next
		// batch may hold more of it.
		cut := len(buf)
		if !last {
			t := buf[len(buf)-1].ObservedAt
			for cut > 0 && buf[cut-1].ObservedAt == t {
				cut--
			}
		}
		if cut > 0 {
			sortByTimeThenLot(buf[:cut])
			if err := fn(buf[:cut]); err != nil {
				return err
			}
			buf = append(buf[:0], buf[cut:]...)
		}
		if last {
			return nil
		}
	}
}

// readObservations appends the keys and values of at most batch
// observations with lo <= k < hi, in key order. The caller holds db.mu.
func (db *DB) readObservations(ctx context.Context, lo, hi int64, batch int, keys, vals []int64) ([]int64, []int64, error) {
	rows, err := db.conn.QueryContext(ctx, "SELECT k, v FROM availability_obs WHERE k >= ? AND k < ? ORDER BY k LIMIT ?", lo, hi, batch)
	if err != nil {
		return keys, vals, err
	}
	defer rows.Close()
	for rows.Next() {
		var k, v int64
		if err := rows.Scan(&k, &v); err != nil {
			return keys, vals, err
		}
		keys, vals = append(keys, k), append(vals, v)
	}
	return keys, vals, rows.Err()
}

// needNames reports whether names lacks an ordinal of keys (a lot first
// seen since the names were read).
func needNames(names []string, keys []int64) bool {
	for _, k := range keys {
		if n := k & 0xffff; n >= int64(len(names)) || names[n] == "" {
			return true
		}
	}
	return false
}

// lotNames inverts the committed lot ordinals. The caller holds db.mu.
func (db *DB) lotNames() []string {
	var maxN int64
	for _, n := range db.lotIDs {
		maxN = max(maxN, n)
	}
	names := make([]string, maxN+1)
	for id, n := range db.lotIDs {
		names[n] = id
	}
	return names
}

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
