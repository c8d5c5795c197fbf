package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
)

// LatestAvailability is what the original project's availability.json held:
// the valid values of the newest applied availability snapshot.
type LatestAvailability struct {
	// UpdatedAt is the fetch time of that snapshot (+08:00 text), "" when no
	// availability snapshot has been applied yet. It is a data time, not the
	// loader's clock, so an export is a function of the database alone.
	UpdatedAt string
	// Rows are the lots with a known value (>= 0) at UpdatedAt, by parking ID.
	// Unknown values (-9) are left out, as the original left them out.
	Rows []LatestRow
}

// LatestRow is one lot's value in LatestAvailability.
type LatestRow struct {
	ParkingID    string
	AvailableCar int64
}

// LatestAvailability reads the newest applied availability snapshot's known
// values from availability_latest. Lots that were missing from that snapshot
// keep older values in availability_latest; they are left out here because
// the original's file held exactly the last fetch.
func (db *DB) LatestAvailability(ctx context.Context) (LatestAvailability, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	var out LatestAvailability
	var updated sql.NullString
	var unix sql.NullInt64
	err := db.conn.QueryRowContext(ctx, `SELECT fetched_at, fetched_ms FROM snapshots
		WHERE dataset = ? AND outcome = 'applied' ORDER BY fetched_ms DESC, key DESC LIMIT 1`,
		string(feed.Availability)).Scan(&updated, &unix)
	if errors.Is(err, sql.ErrNoRows) {
		return out, nil
	}
	if err != nil {
		return out, fmt.Errorf("latest availability: %w", err)
	}
	out.UpdatedAt = updated.String
	rows, err := db.conn.QueryContext(ctx, `SELECT parking_id, available_car FROM availability_latest
		WHERE observed_unix = ? AND available_car IS NOT NULL ORDER BY parking_id`, unix.Int64/1000)
	if err != nil {
		return out, fmt.Errorf("latest availability: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r LatestRow
		if err := rows.Scan(&r.ParkingID, &r.AvailableCar); err != nil {
			return out, fmt.Errorf("latest availability: %w", err)
		}
		out.Rows = append(out.Rows, r)
	}
	if err := rows.Err(); err != nil {
		return out, fmt.Errorf("latest availability: %w", err)
	}
	return out, nil
}

// ActiveLots returns every lot not soft-deleted, by ID, with or without a
// position, with its newest live observation (which may be older than the
// newest snapshot when the lot was missing from the live feed since:
// ObservedAt tells), for the GeoJSON and CSV exports.
func (db *DB) ActiveLots(ctx context.Context) ([]Lot, error) {
	return db.lots(ctx, "active lots", "p.deleted_at IS NULL")
}

// LastApplied returns, per dataset, the loader's clock time of the newest
// snapshot applied as current data (outcome applied). A restarted loader seeds
// its "seconds since the last apply" gauge from it, so a restart does not
// hide a stall. Read from ledger_counts: the ledger itself is a row per
// snapshot, and this runs before the loader reports ready.
func (db *DB) LastApplied(ctx context.Context) (map[feed.Dataset]time.Time, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	rows, err := db.conn.QueryContext(ctx, `SELECT dataset, last_applied_at FROM ledger_counts
		WHERE outcome = 'applied' AND snapshots > 0`)
	if err != nil {
		return nil, fmt.Errorf("last applied: %w", err)
	}
	defer rows.Close()
	out := map[feed.Dataset]time.Time{}
	for rows.Next() {
		var d, at string
		if err := rows.Scan(&d, &at); err != nil {
			return nil, fmt.Errorf("last applied: %w", err)
		}
		t, err := parseTime(at)
		if err != nil {
			return nil, fmt.Errorf("last applied: %s: %w", d, err)
		}
		out[feed.Dataset(d)] = t
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("last applied: %w", err)
	}
	return out, nil
}
