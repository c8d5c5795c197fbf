package sqlite

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// publishFixture applies n availability snapshots three minutes apart from
// base, for lots listed in reverse ID order in the first one, so the lot
// ordinals run against the ID order.
func publishFixture(t *testing.T, n, lots int) *DB {
	t.Helper()
	db := newDB(t)
	for i := range n {
		rows := genAvailability(lots, 30, uint64(i))
		if i == 0 {
			slices.Reverse(rows)
		}
		apply(t, db, availInput(fmt.Sprintf("a%03d", i), at(i), rows))
	}
	return db
}

// viewRows is what the availability view holds for [from, to), sorted by
// time then parking ID: the reference for Observations.
func viewRows(t *testing.T, db *DB, from, to time.Time) []string {
	t.Helper()
	return query(t, db, `SELECT parking_id, available_car, recorded_at FROM availability
		WHERE recorded_at >= ? AND recorded_at < ? ORDER BY recorded_at, parking_id`, formatTime(from), formatTime(to))
}

func TestObservationsOrderAndBatches(t *testing.T) {
	ctx := context.Background()
	db := publishFixture(t, 40, 25)
	from, to := at(3), at(31) // a range inside the data: both ends are cut
	want := viewRows(t, db, from, to)
	if len(want) < 200 {
		t.Fatalf("fixture too small: %d observations", len(want))
	}
	// Batches smaller than one fetch time, about one, and far larger.
	for _, batch := range []int{3, 17, 25, 1000, observationBatch} {
		var got []string
		var calls int
		err := db.observations(ctx, from, to, batch, func(obs []Observation) error {
			calls++
			for _, o := range obs {
				got = append(got, fmt.Sprintf("%s|%d|%s", o.ParkingID, o.AvailableCar, formatUnix(o.ObservedAt)))
			}
			// A fetch time is never split between two calls.
			if n := len(got) - len(obs); n > 0 && strings.HasSuffix(got[n-1], formatUnix(obs[0].ObservedAt)) {
				t.Errorf("batch %d: fetch time %s split between two calls", batch, formatUnix(obs[0].ObservedAt))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("batch %d: %d observations differ from the view's %d (first got %q, want %q)", batch, len(got), len(want), got[:min(3, len(got))], want[:3])
		}
		if batch == 3 && calls < 2 {
			t.Errorf("batch 3 took %d calls", calls)
		}
	}
}

// fn runs without the database held: an apply can commit in the middle of
// a month's read (it would deadlock otherwise).
func TestObservationsLetAppliesThrough(t *testing.T) {
	ctx := context.Background()
	db := publishFixture(t, 10, 20)
	applied := false
	err := db.observations(ctx, at(0), at(100), 20, func(obs []Observation) error {
		if !applied {
			applied = true
			apply(t, db, availInput("late", at(50), genAvailability(20, 0, 99)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !applied {
		t.Fatal("fn was never called")
	}
}

func TestObservationStatsAndSpan(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	if _, _, ok, err := db.ObservationSpan(ctx); err != nil || ok {
		t.Fatalf("span of an empty database: ok %v, err %v", ok, err)
	}
	// Observations over three days, so the count crosses pieces.
	var times []time.Time
	for i := range 7 {
		ti := base.Add(time.Duration(i) * 11 * time.Hour)
		times = append(times, ti)
		apply(t, db, availInput(fmt.Sprintf("s%d", i), ti, genAvailability(30, 40, uint64(i))))
	}
	first, last, ok, err := db.ObservationSpan(ctx)
	if err != nil || !ok || !first.Equal(times[0]) || !last.Equal(times[6]) {
		t.Fatalf("span = %v .. %v (ok %v, err %v), want %v .. %v", first, last, ok, err, times[0], times[6])
	}
	for _, r := range [][2]time.Time{{times[0], times[6].Add(time.Second)}, {times[1], times[5]}, {times[2], times[2]}} {
		got, err := db.ObservationStats(ctx, r[0], r[1])
		if err != nil {
			t.Fatal(err)
		}
		ref := query(t, db, "SELECT count(*), coalesce(sum(available_car), 0) FROM availability WHERE recorded_at >= ? AND recorded_at < ?",
			formatTime(r[0]), formatTime(r[1]))
		if s := fmt.Sprintf("%d|%d", got.Rows, got.SumAvailable); s != ref[0] {
			t.Errorf("stats of %v..%v = %s, the view says %s", r[0], r[1], s, ref[0])
		}
	}
}

func TestLotRecords(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	apply(t, db, lotsInput("l1", at(0), genLots(20, 0)))
	apply(t, db, lotsInput("l2", at(1), without(genLots(20, 0), 4)))
	recs, err := db.LotRecords(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 20 {
		t.Fatalf("%d records, want 20 (a deleted lot included)", len(recs))
	}
	for i, r := range recs {
		if r.ID != lotID(i) {
			t.Fatalf("record %d is lot %s, want %s (by ID)", i, r.ID, lotID(i))
		}
		if (r.DeletedAt != nil) != (i == 4) {
			t.Errorf("lot %s: deleted_at %v", r.ID, r.DeletedAt)
		}
		if i == 4 && !r.DeletedAt.Equal(at(1)) {
			t.Errorf("lot %s deleted at %v, want %v", r.ID, r.DeletedAt, at(1))
		}
		// genLot gives every 17th lot (from the 3rd) zero coordinates.
		if (r.Lon == nil) != (i%17 == 3) || (r.Lat == nil) != (r.Lon == nil) {
			t.Errorf("lot %s: lon %v, lat %v, note %q", r.ID, r.Lon, r.Lat, r.CoordNote)
		}
		if !r.CreatedAt.Equal(at(0)) || r.UpdatedAt.Before(r.CreatedAt) {
			t.Errorf("lot %s: created %v, updated %v", r.ID, r.CreatedAt, r.UpdatedAt)
		}
	}
	want := genLot(7, 0)
	if r := recs[7]; r.Name != want.Name || r.Area != want.Area || r.PayEx != want.PayEx || fmt.Sprint(r.TotalCar) != want.TotalCar {
		t.Errorf("lot 7 = %+v, want the attributes of %+v", r, want)
	}
}

func TestPublishState(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	if _, ok, err := db.PublishState(ctx, "s3://b/public"); err != nil || ok {
		t.Fatalf("state of a new database: ok %v, err %v", ok, err)
	}
	for _, doc := range []string{`{"v":1}`, `{"v":2}`} {
		if err := db.SetPublishState(ctx, "s3://b/public", []byte(doc)); err != nil {
			t.Fatal(err)
		}
		got, ok, err := db.PublishState(ctx, "s3://b/public")
		if err != nil || !ok || string(got) != doc {
			t.Fatalf("state = %q (ok %v, err %v), want %q", got, ok, err, doc)
		}
	}
	// Another destination has its own.
	if _, ok, err := db.PublishState(ctx, "file:///srv/public"); err != nil || ok {
		t.Fatalf("state of another destination: ok %v, err %v", ok, err)
	}
}
