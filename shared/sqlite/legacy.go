package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"time"
)

// LegacyLot is one row of the original Python project's parking_lots table.
type LegacyLot struct {
	ID, Area, Name, Type, Summary, Address, Tel, PayEx, ServiceTime string
	// TW97X and TW97Y were REAL columns (NULL when the feed's text was not a number).
	TW97X, TW97Y                    sql.NullFloat64
	TotalCar, TotalMotor, TotalBike int64
	CreatedAt, UpdatedAt            time.Time
	DeletedAt                       time.Time // zero: not deleted
}

// LegacyObservation is one row of an original availability_YYYYMM.db.
type LegacyObservation struct {
	ParkingID    string
	AvailableCar int64
	RecordedAt   time.Time
}

// LegacyImport counts what an import did.
type LegacyImport struct {
	Imported int `json:"imported"`
	// Skipped rows were already in the database (a second import), or, for
	// lots, the lot already has a history from snapshots.
	Skipped int `json:"skipped"`
	// Merged observations repeat a (lot, time) of the same import with
	// another value (the original stored duplicate feed rows twice); the
	// larger value is kept, as the loader does.
	Merged int `json:"merged,omitempty"`
}

// legacyMilliLayout is how lot history times are written: to the millisecond
// in Taipei time, as the lots apply writes them.
const legacyMilliLayout = "2006-01-02T15:04:05.000-07:00"

func legacyMilli(t time.Time) string {
	return t.In(taipei).Truncate(time.Millisecond).Format(legacyMilliLayout)
}

// ImportLegacyLots brings the original's lots into the lot history: a
// synthetic version at created_at holding the lot's last known attributes
// (the original kept no history, so these are the best knowledge of the
// lot's whole life) and, for a deleted lot, a disappearance at deleted_at.
// parking_lots is derived from that history as for any lot, then given the
// original's updated_at, which the history cannot express (the original
// touched updated_at on every changed download, not when the lot changed).
//
// A lot that already has a history (a second import, or snapshots applied
// before) is skipped and counted: legacy data never rewrites newer history.
// Everything commits in one transaction.
func (db *DB) ImportLegacyLots(ctx context.Context, lots []LegacyLot) (LegacyImport, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	var res LegacyImport
	a := &applier{db: db, newIDs: map[string]int64{}, stmts: map[string]*sql.Stmt{}, lotsApplied: true}
	err := db.withTx(ctx, nil, func(tx *sql.Tx) error {
		a.tx = tx
		defer a.closeStmts()
		for _, l := range lots {
			if l.ID == "" || l.CreatedAt.IsZero() {
				return fmt.Errorf("legacy lot %q: empty id or created_at", l.ID)
			}
			var n int
			if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM lot_versions WHERE parking_id = ?", l.ID).Scan(&n); err != nil {
				return fmt.Errorf("legacy lot %s: %w", l.ID, err)
			}
			if n > 0 {
				res.Skipped++
				continue
			}
			st := lotState{present: true, a: attrs{l.Area, l.Name, l.Type, l.Summary, l.Address, l.Tel, l.PayEx,
				l.ServiceTime, legacyReal(l.TW97X), legacyReal(l.TW97Y),
				strconv.FormatInt(l.TotalCar, 10), strconv.FormatInt(l.TotalMotor, 10), strconv.FormatInt(l.TotalBike, 10)}}
			created := legacyMilli(l.CreatedAt)
			if _, err := a.setVersion(ctx, l.ID, created, st, false, true, absent); err != nil {
				return err
			}
			deleted := ""
			if !l.DeletedAt.IsZero() {
				deleted = legacyMilli(l.DeletedAt)
				if deleted > created {
					if _, err := a.setVersion(ctx, l.ID, deleted, absent, false, true, absent); err != nil {
						return err
					}
				}
			}
			if _, err := a.deriveLot(ctx, l.ID); err != nil {
				return err
			}
			updated := created
			if !l.UpdatedAt.IsZero() && legacyMilli(l.UpdatedAt) > created {
				updated = legacyMilli(l.UpdatedAt)
			}
			var del any
			if deleted != "" {
				del = deleted
			}
			if _, err := tx.ExecContext(ctx, "UPDATE parking_lots SET updated_at = ?, deleted_at = ? WHERE id = ?",
				updated, del, l.ID); err != nil {
				return fmt.Errorf("legacy lot %s: %w", l.ID, err)
			}
			if _, err := a.lotOrdinal(ctx, l.ID); err != nil {
				return err
			}
			res.Imported++
		}
		return nil
	})
	if err != nil {
		return LegacyImport{}, fmt.Errorf("import legacy lots: %w", err)
	}
	a.committed()
	return res, nil
}

// legacyReal renders a REAL coordinate as the text the history keeps: the
// shortest decimal that reads back as the same number ("" for NULL). The
// feed's exact text is not recoverable from the original's REAL column.
func legacyReal(f sql.NullFloat64) string {
	if !f.Valid {
		return ""
	}
	return strconv.FormatFloat(f.Float64, 'f', -1, 64)
}

// The statements of a legacy import: the first observation of a (second,
// lot) is inserted unless one is there; a repeat within the import keeps the
// larger value.
const (
	insertPacked   = "INSERT INTO availability_obs (k, v) VALUES (?, ?) ON CONFLICT (k) DO NOTHING"
	mergePacked    = "UPDATE availability_obs SET v = ? WHERE k = ? AND v < ?"
	insertOverflow = "INSERT INTO availability_obs_overflow (t, lot, v) VALUES (?, ?, ?) ON CONFLICT (t, lot) DO NOTHING"
	mergeOverflow  = "UPDATE availability_obs_overflow SET v = ? WHERE t = ? AND lot = ? AND v < ?"
)

// obsAt is an observation's place: fetch second and lot ordinal.
type obsAt struct{ t, lot int64 }

// ImportLegacyObservations stores the original's availability rows in one
// transaction. A (lot, second) already stored is skipped, so importing a
// file twice adds nothing; within one call, repeats keep the larger value.
// availability_latest moves forward to the newest imported value of a lot
// unless a newer one is there.
func (db *DB) ImportLegacyObservations(ctx context.Context, obs []LegacyObservation) (LegacyImport, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	var res LegacyImport
	a := &applier{db: db, newIDs: map[string]int64{}, stmts: map[string]*sql.Stmt{}}
	type latest struct {
		v int64
		t int64
	}
	newest := map[string]latest{}
	err := db.withTx(ctx, nil, func(tx *sql.Tx) error {
		a.tx = tx
		defer a.closeStmts()
		seen := map[obsAt]bool{}
		for _, o := range obs {
			if o.ParkingID == "" || o.AvailableCar < 0 || o.RecordedAt.IsZero() {
				return fmt.Errorf("legacy observation %+v: empty id, negative value or no time", o)
			}
			lot, err := a.lotOrdinal(ctx, o.ParkingID)
			if err != nil {
				return err
			}
			t := o.RecordedAt.Unix()
			// An ordinal past 16 bits (never in practice, see the 0002
			// migration) has its observations in the overflow table.
			insert, merge, key := insertPacked, mergePacked, []any{obsKey(t, lot)}
			if lot > maxPackedLot {
				insert, merge, key = insertOverflow, mergeOverflow, []any{t, lot}
			}
			at := obsAt{t, lot}
			if seen[at] {
				res.Merged++
				if _, err := a.exec(ctx, merge, append(append([]any{o.AvailableCar}, key...), o.AvailableCar)...); err != nil {
					return fmt.Errorf("legacy observation %s: %w", o.ParkingID, err)
				}
				continue
			}
			seen[at] = true
			n, err := a.exec(ctx, insert, append(key, o.AvailableCar)...)
			if err != nil {
				return fmt.Errorf("legacy observation %s: %w", o.ParkingID, err)
			}
			if n == 0 {
				res.Skipped++
				continue
			}
			res.Imported++
			a.sums.observed(t, 1, []int64{lot})
			if l, ok := newest[o.ParkingID]; !ok || t > l.t || (t == l.t && o.AvailableCar > l.v) {
				newest[o.ParkingID] = latest{v: o.AvailableCar, t: t}
			}
		}
		for id, l := range newest {
			lot, err := a.lotOrdinal(ctx, id)
			if err != nil {
				return err
			}
			if _, err := a.offerLatest(ctx, lot, latestValue{id: id, unix: l.t, v: l.v, known: true, raw: strconv.FormatInt(l.v, 10)}); err != nil {
				return fmt.Errorf("legacy latest %s: %w", id, err)
			}
		}
		return a.finish(ctx)
	})
	if err != nil {
		return LegacyImport{}, fmt.Errorf("import legacy observations: %w", err)
	}
	a.committed()
	return res, nil
}
