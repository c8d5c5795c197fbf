// Package legacy reads what the original Python project (parking-newtaipei)
// left on its users' disks: data/db/parking.db, the monthly
// data/availability/availability_YYYYMM.db files, for `loader import-legacy`.
// (Its saved HTTP exchanges under data/responses/ are the extractor's: see
// package extract.) See docs/BACKFILL.md for how each maps onto this
// project's database and snapshots.
package legacy

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"

	"github.com/parking-newtaipei/parking-newtaipei/shared/clock"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
)

// openRO opens an original SQLite file read-only: the import never changes it.
func openRO(path string) (*sql.DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}

// ReadLots reads every row of the original's parking_lots table.
func ReadLots(ctx context.Context, path string) ([]sqlite.LegacyLot, error) {
	db, err := openRO(path)
	if err != nil {
		return nil, fmt.Errorf("read legacy lots: %w", err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT id, area, name, type, summary, address, tel, pay_ex, service_time,
		tw97x, tw97y, total_car, total_motor, total_bike, created_at, updated_at, deleted_at
		FROM parking_lots ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("read legacy lots from %s: %w", path, err)
	}
	defer rows.Close()
	var out []sqlite.LegacyLot
	for rows.Next() {
		var (
			l                                                      sqlite.LegacyLot
			area, name, typ, summary, address, tel, payEx, service sql.NullString
			car, motor, bike                                       sql.NullInt64
			created, updated, deleted                              sql.NullString
		)
		if err := rows.Scan(&l.ID, &area, &name, &typ, &summary, &address, &tel, &payEx, &service,
			&l.TW97X, &l.TW97Y, &car, &motor, &bike, &created, &updated, &deleted); err != nil {
			return nil, fmt.Errorf("read legacy lots from %s: %w", path, err)
		}
		l.Area, l.Name, l.Type, l.Summary = area.String, name.String, typ.String, summary.String
		l.Address, l.Tel, l.PayEx, l.ServiceTime = address.String, tel.String, payEx.String, service.String
		l.TotalCar, l.TotalMotor, l.TotalBike = car.Int64, motor.Int64, bike.Int64
		if l.CreatedAt, err = clock.ParsePython(created.String); err != nil {
			return nil, fmt.Errorf("legacy lot %s: created_at: %w", l.ID, err)
		}
		if updated.Valid && updated.String != "" {
			if l.UpdatedAt, err = clock.ParsePython(updated.String); err != nil {
				return nil, fmt.Errorf("legacy lot %s: updated_at: %w", l.ID, err)
			}
		}
		if deleted.Valid && deleted.String != "" {
			if l.DeletedAt, err = clock.ParsePython(deleted.String); err != nil {
				return nil, fmt.Errorf("legacy lot %s: deleted_at: %w", l.ID, err)
			}
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read legacy lots from %s: %w", path, err)
	}
	return out, nil
}

var availabilityFile = regexp.MustCompile(`^availability_(\d{6})\.db$`)

// AvailabilityFiles lists dir's availability_YYYYMM.db files, oldest month first.
func AvailabilityFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list legacy availability files: %w", err)
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() && availabilityFile.MatchString(e.Name()) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(out)
	return out, nil
}

// AvailabilityStats counts the rows of one file that are not observations.
type AvailabilityStats struct {
	Rows int `json:"rows"`
	// NotObservations are rows with a negative or missing value (the original
	// dropped only -9, so -3, -6, -1 are in its files) or no time: this
	// project stores only values >= 0.
	NotObservations int `json:"not_observations"`
}

// ReadAvailability streams one availability_YYYYMM.db in batches of at most
// batch rows, in the order the original inserted them.
func ReadAvailability(ctx context.Context, path string, batch int, fn func([]sqlite.LegacyObservation) error) (AvailabilityStats, error) {
	var st AvailabilityStats
	db, err := openRO(path)
	if err != nil {
		return st, fmt.Errorf("read legacy availability: %w", err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "SELECT parking_id, available_car, recorded_at FROM availability ORDER BY id")
	if err != nil {
		return st, fmt.Errorf("read legacy availability from %s: %w", path, err)
	}
	defer rows.Close()
	buf := make([]sqlite.LegacyObservation, 0, batch)
	for rows.Next() {
		var id, at sql.NullString
		var v sql.NullInt64
		if err := rows.Scan(&id, &v, &at); err != nil {
			return st, fmt.Errorf("read legacy availability from %s: %w", path, err)
		}
		st.Rows++
		t, terr := clock.ParsePython(at.String)
		if !id.Valid || id.String == "" || !v.Valid || v.Int64 < 0 || terr != nil {
			st.NotObservations++
			continue
		}
		buf = append(buf, sqlite.LegacyObservation{ParkingID: id.String, AvailableCar: v.Int64, RecordedAt: t})
		if len(buf) == batch {
			if err := fn(buf); err != nil {
				return st, err
			}
			buf = buf[:0]
		}
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("read legacy availability from %s: %w", path, err)
	}
	if len(buf) > 0 {
		if err := fn(buf); err != nil {
			return st, err
		}
	}
	return st, nil
}
