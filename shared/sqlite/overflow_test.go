package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
)

// overflowLots is how many lots of overflowFixture have ordinals past 16
// bits when it is asked to place them there.
const overflowLots = 10

// overflowID is the j-th such lot's ID: between the packed lots' IDs
// ("010001X" sorts after "010001"), so that sorting by ID interleaves them.
func overflowID(j int) string { return fmt.Sprintf("%06dX", 10001+3*j) }

// overflowSnapshots is how many snapshots overflowFixture applies.
const overflowSnapshots = 12

// overflowFixture applies the same snapshots to a new database: 20 lots
// and overflowLots others, three minutes apart, the first and the last
// snapshot with only the others. With high, the others' lot_ids ordinals
// are put past 16 bits first (as after ~64,000 IDs), so their observations
// are stored in availability_obs_overflow; without, every lot is packed.
func overflowFixture(t *testing.T, mode Locking, high bool) *DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "parking.db")
	db := openMode(t, path, mode)
	if high {
		ctx := context.Background()
		for i := range 20 {
			if _, err := db.conn.ExecContext(ctx, "INSERT INTO lot_ids (n, id) VALUES (?, ?)", i+1, lotID(i)); err != nil {
				t.Fatal(err)
			}
		}
		for j := range overflowLots {
			if _, err := db.conn.ExecContext(ctx, "INSERT INTO lot_ids (n, id) VALUES (?, ?)", 70000+j, overflowID(j)); err != nil {
				t.Fatal(err)
			}
		}
		// The ordinals are cached at open.
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		db = openMode(t, path, mode)
	}
	for i := range overflowSnapshots {
		var rows []feed.AvailabilityRow
		if i > 0 && i < overflowSnapshots-1 {
			rows = genAvailability(20, 30, uint64(i))
		}
		for j := range overflowLots {
			v := fmt.Sprint((i*7 + j*13) % 90)
			if (i+j)%4 == 0 {
				v = "-9"
			}
			rows = append(rows, feed.AvailabilityRow{ID: overflowID(j), AvailableCar: v})
		}
		apply(t, db, availInput(fmt.Sprintf("ov-%02d", i), at(i), rows))
	}
	overflowRows := query(t, db, "SELECT count(*) > 0 FROM availability_obs_overflow")[0] == "1"
	if overflowRows != high {
		t.Fatalf("fixture: rows in availability_obs_overflow: %v, want %v", overflowRows, high)
	}
	return db
}

// The publication's reads (issue 14's gap in migration 0002): the rows of
// lots past 16 bits are part of a month's observations, its count and sum,
// and its span, in the same order as any other; where a lot's rows are
// stored changes nothing a reader gets.
func TestPublicationReadsOverflowLots(t *testing.T) {
	ctx := context.Background()
	packed := overflowFixture(t, "", false)
	mixed := overflowFixture(t, "", true)

	first, last, ok, err := mixed.ObservationSpan(ctx)
	if err != nil || !ok || !first.Equal(at(0)) || !last.Equal(at(overflowSnapshots-1)) {
		t.Errorf("span = %v .. %v (ok %v, err %v), want %v .. %v: the first and last snapshots' rows are all in the overflow table",
			first, last, ok, err, at(0), at(overflowSnapshots-1))
	}

	for _, r := range [][2]time.Time{{at(0), at(overflowSnapshots)}, {at(1), at(5)}, {at(0), at(1)}, {at(3).Add(time.Second), at(11)}} {
		from, to := r[0], r[1]
		want := viewRows(t, mixed, from, to)
		if !slices.Equal(want, viewRows(t, packed, from, to)) {
			t.Fatalf("fixture: the two databases' views differ for %v..%v", from, to)
		}
		for _, batch := range []int{1, 2, 7, 30, observationBatch} {
			for name, db := range map[string]*DB{"packed": packed, "mixed": mixed} {
				var got []string
				err := db.observations(ctx, from, to, batch, func(obs []Observation) error {
					for _, o := range obs {
						got = append(got, fmt.Sprintf("%s|%d|%s", o.ParkingID, o.AvailableCar, formatUnix(o.ObservedAt)))
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, want) {
					t.Fatalf("%s, %v..%v, batch %d: %d observations, the view has %d\ngot  %q\nwant %q",
						name, from, to, batch, len(got), len(want), got, want)
				}
			}
		}
		for name, db := range map[string]*DB{"packed": packed, "mixed": mixed} {
			s, err := db.ObservationStats(ctx, from, to)
			if err != nil {
				t.Fatal(err)
			}
			ref := query(t, db, "SELECT count(*), coalesce(sum(available_car), 0) FROM availability WHERE recorded_at >= ? AND recorded_at < ?",
				formatTime(from), formatTime(to))
			if got := fmt.Sprintf("%d|%d", s.Rows, s.SumAvailable); got != ref[0] {
				t.Errorf("%s: stats of %v..%v = %s, the view says %s", name, from, to, got, ref[0])
			}
		}
	}
}

// The read API's history of a lot past 16 bits reads the overflow table,
// in both locking modes.
func TestHistoryOfOverflowLots(t *testing.T) {
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			db := overflowFixture(t, mode, true)
			ctx := context.Background()
			ids := []string{lotID(0), lotID(7)}
			for j := range overflowLots {
				ids = append(ids, overflowID(j))
			}
			for _, id := range ids {
				for _, r := range [][2]time.Time{{at(0), at(overflowSnapshots)}, {at(2).Add(time.Second), at(9)}} {
					var got []HistoryPoint
					if err := db.Read(ctx, func(rd *DB) error {
						var err error
						got, err = rd.History(ctx, id, r[0], r[1])
						return err
					}); err != nil {
						t.Fatalf("History(%s): %v", id, err)
					}
					want := query(t, db, `SELECT recorded_at, available_car FROM availability
						WHERE parking_id = ? AND recorded_at >= ? AND recorded_at < ? ORDER BY recorded_at`,
						id, formatTime(r[0].Add(time.Second-1)), formatTime(r[1].Add(time.Second-1)))
					if len(want) == 0 {
						t.Fatalf("fixture: lot %s has no observations in %v..%v", id, r[0], r[1])
					}
					var gotRows []string
					for _, p := range got {
						gotRows = append(gotRows, fmt.Sprintf("%s|%d", formatTime(p.At), p.AvailableCar))
					}
					if !slices.Equal(gotRows, want) {
						t.Errorf("History(%s, %v, %v) = %v, want %v", id, r[0], r[1], gotRows, want)
					}
				}
			}
		})
	}
}

// The summaries count the rows of lots past 16 bits like any other: as the
// apply keeps them, as migration 0003 fills them, and as the full scan
// (`loader stats -full`) counts them, the same figures as when every lot is
// packed.
func TestSummariesCountOverflowLots(t *testing.T) {
	ctx := context.Background()
	packed := checkSummaries(t, overflowFixture(t, LockingExclusive, false), "every lot packed")
	db := overflowFixture(t, LockingExclusive, true)
	high := checkSummaries(t, db, "lots past 16 bits")
	if d := SummaryDifferences(high, packed); len(d) > 0 || high.Observations != packed.Observations || high.Observations == 0 {
		t.Fatalf("lots past 16 bits counted otherwise (%d observations, packed %d):\n%s",
			high.Observations, packed.Observations, strings.Join(d, "\n"))
	}
	path := db.path
	for _, q := range []string{"DELETE FROM obs_months", "DELETE FROM obs_month_lots", "DROP TABLE obs_months",
		"DROP TABLE obs_month_lots", "DROP TABLE ledger_counts", "DROP INDEX snapshots_refused", "PRAGMA user_version = 2"} {
		if _, err := db.conn.ExecContext(ctx, q); err != nil {
			t.Fatal(q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	migrated := checkSummaries(t, openMode(t, path, LockingExclusive), "migrated with lots past 16 bits")
	if d := SummaryDifferences(migrated, packed); len(d) > 0 {
		t.Fatalf("migration 0003 counted lots past 16 bits otherwise:\n%s", strings.Join(d, "\n"))
	}
}
