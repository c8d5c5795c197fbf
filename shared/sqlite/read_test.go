package sqlite

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
)

// readFixture: 40 lots (some without a position), then a lots snapshot
// without the last 5 (soft-deleted), and 60 live snapshots three minutes
// apart with unknowns, over lots 0-44 (so lots 40-44 are live-only IDs).
func readFixture(t *testing.T, mode Locking) *DB {
	t.Helper()
	db := openMode(t, filepath.Join(t.TempDir(), "parking.db"), mode)
	apply(t, db, lotsInput("lots-0", at(0), genLots(40, 0)))
	apply(t, db, lotsInput("lots-1", at(1), genLots(35, 0)))
	for i := range 60 {
		apply(t, db, availInput(fmt.Sprintf("av-%02d", i), at(2+i), genAvailability(45, 40, uint64(i))))
	}
	return db
}

func TestReadLots(t *testing.T) {
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			db := readFixture(t, mode)
			ctx := context.Background()
			var lots []Lot
			var gone, lone Lot
			var missingErr error
			err := db.Read(ctx, func(r *DB) error {
				var err error
				if lots, err = r.MapLots(ctx); err != nil {
					return err
				}
				if gone, err = r.Lot(ctx, lotID(37)); err != nil {
					return err
				}
				if lone, err = r.Lot(ctx, lotID(3)); err != nil { // i%17 == 3: no position
					return err
				}
				_, missingErr = r.Lot(ctx, "999999")
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			want := dbCount(t, db, "parking_lots", "deleted_at IS NULL AND lon IS NOT NULL")
			if len(lots) != want || want == 0 || want == 35 {
				t.Fatalf("MapLots: %d lots, want the %d active ones with a position", len(lots), want)
			}
			for _, l := range lots {
				if !l.HasPosition || l.DeletedAt != "" {
					t.Errorf("MapLots lists %s: position %v, deleted %q", l.ID, l.HasPosition, l.DeletedAt)
				}
				if l.ObservedAt != formatTime(at(61)) {
					t.Errorf("%s observed at %q, want the newest snapshot %s", l.ID, l.ObservedAt, formatTime(at(61)))
				}
				if !l.HasAvailable && l.Raw != "-9" {
					t.Errorf("%s: unknown value but raw %q", l.ID, l.Raw)
				}
			}
			if gone.DeletedAt == "" || gone.Name == "" {
				t.Errorf("deleted lot: %+v, want its deleted_at and attributes", gone)
			}
			if lone.HasPosition || lone.CoordNote == "" {
				t.Errorf("lot without a position: %+v", lone)
			}
			if !errors.Is(missingErr, ErrNotFound) {
				t.Errorf("unknown lot: %v, want ErrNotFound", missingErr)
			}
		})
	}
}

// TestHistory checks History against a plain scan of the availability view
// over random ranges, in both modes.
func TestHistory(t *testing.T) {
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			db := readFixture(t, mode)
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(1, 2))
			nonEmpty := 0
			for range 200 {
				id := lotID(rng.IntN(45))
				from := at(rng.IntN(70) - 2).Add(time.Duration(rng.IntN(180)) * time.Second)
				to := from.Add(time.Duration(1+rng.IntN(200)) * time.Minute)
				var got []HistoryPoint
				if err := db.Read(ctx, func(r *DB) error {
					var err error
					got, err = r.History(ctx, id, from, to)
					return err
				}); err != nil {
					t.Fatalf("History(%s, %s, %s): %v", id, from, to, err)
				}
				want := queryStrings(t, db, `SELECT recorded_at, available_car FROM availability
					WHERE parking_id = ? AND recorded_at >= ? AND recorded_at < ? ORDER BY recorded_at`,
					id, formatTime(from.Add(time.Second-1)), formatTime(to.Add(time.Second-1)))
				if len(got) != len(want) {
					t.Fatalf("History(%s, %s, %s): %d observations, want %d", id, from, to, len(got), len(want))
				}
				for i, o := range got {
					if w := want[i]; formatTime(o.At) != w[0] || fmt.Sprint(o.AvailableCar) != w[1] {
						t.Fatalf("History(%s) row %d = %s %d, want %v", id, i, formatTime(o.At), o.AvailableCar, w)
					}
				}
				if len(got) > 0 {
					nonEmpty++
				}
			}
			if nonEmpty < 50 {
				t.Errorf("only %d of 200 ranges held observations: the test proves little", nonEmpty)
			}
			// Bounds: [from, to) exactly.
			h := historyOf(t, db, lotID(0), at(10), at(12))
			if len(h) > 2 || (len(h) > 0 && (h[0].At.Before(at(10)) || !h[len(h)-1].At.Before(at(12)))) {
				t.Errorf("History [at(10), at(12)) = %v", h)
			}
		})
	}
}

func historyOf(t *testing.T, db *DB, id string, from, to time.Time) []HistoryPoint {
	t.Helper()
	h, err := db.History(context.Background(), id, from, to)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHistoryRefusals(t *testing.T) {
	db := readFixture(t, LockingShared)
	ctx := context.Background()
	for name, c := range map[string]struct {
		id       string
		from, to time.Time
		want     error
	}{
		"reversed":   {lotID(0), at(5), at(4), ErrRange},
		"empty":      {lotID(0), at(5), at(5), ErrRange},
		"too long":   {lotID(0), at(0), at(0).Add(MaxHistory + time.Second), ErrRange},
		"unknown id": {"999999", at(0), at(5), ErrNotFound},
	} {
		if _, err := db.History(ctx, c.id, c.from, c.to); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	// 31 days exactly is allowed; a lot never in the live feed has no history.
	if h, err := db.History(ctx, lotID(0), at(0), at(0).Add(MaxHistory)); err != nil || len(h) == 0 {
		t.Errorf("31 days: %d observations, %v", len(h), err)
	}
	apply(t, db, lotsInput("lots-2", at(100), append(genLots(35, 0), feed.LotRow{ID: "NEW001", Name: "新停車場", TotalCar: "5"})))
	if h, err := db.History(ctx, "NEW001", at(0), at(200)); err != nil || len(h) != 0 {
		t.Errorf("a lot never observed: %v, %v; want an empty history", h, err)
	}
}

func dbCount(t *testing.T, db *DB, table, where string) int {
	t.Helper()
	var n int
	if err := db.conn.QueryRowContext(context.Background(), "SELECT count(*) FROM "+table+" WHERE "+where).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func queryStrings(t *testing.T, db *DB, q string, args ...any) [][2]string {
	t.Helper()
	rows, err := db.conn.QueryContext(context.Background(), q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out [][2]string
	for rows.Next() {
		var a, b string
		if err := rows.Scan(&a, &b); err != nil {
			t.Fatal(err)
		}
		out = append(out, [2]string{a, b})
	}
	return out
}
