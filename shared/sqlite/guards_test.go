package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	modernc "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
)

// stored returns in with the store's write time set to stored.
func stored(in snapshot.Input, at time.Time) snapshot.Input {
	in.StoredAt = at
	return in
}

// Issue 13, item 1: a snapshot whose fetch time is far ahead of the time the
// store wrote it is refused, in the ledger and in rejections, once; real
// snapshots after it apply as if it had never come.
func TestFetchTimeAheadOfTheStoreIsRefused(t *testing.T) {
	db := newDB(t)
	rows := genAvailability(30, 50, 1)
	apply(t, db, stored(availInput("av-0", at(0), rows), at(0).Add(2*time.Second)))
	clean := newDB(t)
	apply(t, clean, stored(availInput("av-0", at(0), rows), at(0).Add(2*time.Second)))

	year := at(1).AddDate(1, 0, 0)
	future := stored(availInput("av-future", year, genAvailability(30, 0, 2)), at(1))
	r := apply(t, db, future)[0]
	if r.Outcome != snapshot.Refused || !strings.Contains(r.Reason, "after the store wrote it") || !strings.Contains(r.Reason, "at most 15m0s") {
		t.Fatalf("a snapshot fetched a year after it was stored: %+v", r)
	}
	// Judged again on a redelivery, the same way, and listed in rejections once.
	if r := apply(t, db, future)[0]; r.Outcome != snapshot.Refused {
		t.Fatalf("redelivery: %+v", r)
	}
	if got := query(t, db, "SELECT key, dataset, message_id FROM rejections"); !reflect.DeepEqual(got, []string{"av-future|availability|"}) {
		t.Errorf("rejections = %v, want the future snapshot once", got)
	}

	// The tolerance: a fetch up to 15 minutes ahead of the put is a clock
	// difference; a snapshot stored years after its fetch (import-responses)
	// is fine; without a write time (a direct apply) nothing is judged.
	for _, c := range []struct {
		name     string
		in       snapshot.Input
		accepted bool
	}{
		{"15 minutes ahead", stored(availInput("av-2", at(2), rows), at(2).Add(-snapshot.MaxFetchAhead)), true},
		{"15 minutes and a second ahead", stored(availInput("av-3", at(3), rows), at(3).Add(-snapshot.MaxFetchAhead-time.Second)), false},
		{"stored three years later", stored(availInput("av-4", at(4), rows), at(4).AddDate(3, 0, 0)), true},
		{"no write time", availInput("av-5", at(5), rows), true},
	} {
		r := apply(t, db, c.in)[0]
		if (r.Outcome == snapshot.Applied) != c.accepted {
			t.Errorf("%s: %s %q", c.name, r.Outcome, r.Reason)
		}
		if c.accepted {
			apply(t, clean, c.in)
		}
	}
	if got, want := dump(t, db), dump(t, clean); got != want {
		t.Errorf("the refused snapshots left traces:\n%s\nwant\n%s", got, want)
	}
}

// Issue 13, item 3: lot ordinals past the 16 bits of the packed key go to
// the overflow table, so a snapshot with new lots still applies after any
// number of IDs, and reads through the view like any other.
func TestLotOrdinalsPast16BitsStillApply(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parking.db")
	db := openTest(t, path)
	// Every ordinal up to the packed key's last one is taken, as after the
	// hostile snapshot of ~64.6k invented IDs.
	if _, err := db.conn.ExecContext(context.Background(), `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 65535)
		INSERT INTO lot_ids (n, id) SELECT i, 'F' || i FROM n`); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, path)
	rows := []feed.AvailabilityRow{av(0, "12"), av(1, "-9"), av(2, "4")}
	r := apply(t, db, availInput("av-0", at(0), rows))[0]
	if r.Outcome != snapshot.Applied {
		t.Fatalf("a snapshot with new lots after 65,535 ordinals: %+v", r)
	}
	again := []feed.AvailabilityRow{av(0, "3"), av(1, "8"), av(2, "4")}
	apply(t, db, availInput("av-1", at(1), again), availInput("av-1-same-second", at(1), []feed.AvailabilityRow{av(0, "5")}))
	ts0, ts1 := formatTime(at(0)), formatTime(at(1))
	got := query(t, db, "SELECT parking_id, available_car, recorded_at FROM availability ORDER BY recorded_at, parking_id")
	want := []string{"010001|12|" + ts0, "010003|4|" + ts0, "010001|5|" + ts1, "010002|8|" + ts1, "010003|4|" + ts1}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("availability = %v, want %v", got, want)
	}
	if n := query(t, db, "SELECT min(lot) > 65535, count(*) FROM availability_obs_overflow"); n[0] != "1|5" {
		t.Errorf("overflow table: %v, want 5 rows, all of ordinals past 65535", n)
	}
	// A legacy import of a new lot too, with a repeat (the larger value kept).
	legacy := []LegacyObservation{{ParkingID: "L1", AvailableCar: 6, RecordedAt: at(2)}, {ParkingID: "L1", AvailableCar: 9, RecordedAt: at(2)}}
	if res, err := db.ImportLegacyObservations(context.Background(), legacy); err != nil || res.Imported != 1 || res.Merged != 1 {
		t.Fatalf("legacy import: %+v, %v", res, err)
	}
	if got := query(t, db, "SELECT available_car, recorded_at FROM availability WHERE parking_id = 'L1'"); !reflect.DeepEqual(got, []string{"9|" + formatTime(at(2))}) {
		t.Errorf("legacy observation past 16 bits: %v", got)
	}
	st, err := db.Stats(context.Background())
	if err != nil || st.Observations != 6 || len(st.Months) != 1 || st.Months[0].DistinctLots != 4 {
		t.Errorf("stats = %+v, %v; want 6 observations of 4 lots", st, err)
	}
}

// Issue 13, item 3: a flood of invented IDs is refused before it takes any
// ordinal; a first real snapshot into an empty database is not a flood.
func TestFloodOfNewLotIDsIsRefused(t *testing.T) {
	db := newDB(t)
	first := genAvailability(1430, 70, 1)
	if r := apply(t, db, availInput("av-0", at(0), first))[0]; r.Outcome != snapshot.Applied {
		t.Fatalf("the whole live feed into an empty database: %+v", r)
	}
	flood := make([]feed.AvailabilityRow, snapshot.MaxNewLotIDs+1)
	for i := range flood {
		flood[i] = feed.AvailabilityRow{ID: fmt.Sprintf("F%06d", i), AvailableCar: "1"}
	}
	before := query(t, db, "SELECT count(*) FROM lot_ids")
	r := apply(t, db, availInput("av-flood", at(1), append(first[:10:10], flood...)))[0]
	if r.Outcome != snapshot.Refused || !strings.Contains(r.Reason, "would add 5001 lot IDs seen in neither feed before (at most 5000") {
		t.Fatalf("flood: %+v", r)
	}
	if after := query(t, db, "SELECT count(*) FROM lot_ids"); !reflect.DeepEqual(after, before) {
		t.Errorf("a refused flood took ordinals: %v -> %v", before, after)
	}
	if r := apply(t, db, availInput("av-flood-allowed", at(2), flood[:snapshot.MaxNewLotIDs]))[0]; r.Outcome != snapshot.Applied {
		t.Errorf("%d new IDs, the most allowed: %+v", snapshot.MaxNewLotIDs, r)
	}
	again := make([]feed.AvailabilityRow, snapshot.MaxNewLotIDs+1)
	for i := range again {
		again[i] = feed.AvailabilityRow{ID: fmt.Sprintf("G%06d", i), AvailableCar: "2"}
	}
	in := availInput("av-flood-override", at(3), again)
	if r := apply(t, db, in)[0]; r.Outcome != snapshot.Refused {
		t.Fatalf("another %d new IDs: %+v", len(again), r)
	}
	in.AllowMassDelete = true
	if r := apply(t, db, in)[0]; r.Outcome != snapshot.Applied || r.Quality.Availability.NewLotIDs != len(again) {
		t.Errorf("with the override: %+v", r)
	}
}

// Issue 13, item 3: an apply error that the same rows give on every try is
// permanent (the consume loop dead-letters it at once); a database that
// cannot take them now is not.
func TestUnappliableRowsArePermanent(t *testing.T) {
	db := newDB(t)
	// SQLite's length limit lowered so that a 2 KB name is too big for it,
	// as a value beyond the real limit would be.
	if _, err := modernc.Limit(db.conn, sqlite3.SQLITE_LIMIT_LENGTH, 1000); err != nil {
		t.Fatal(err)
	}
	rows := genLots(3, 0)
	rows[1].Name = strings.Repeat("名", 700)
	_, err := db.Apply(context.Background(), lotsInput("lots-big", at(0), rows))
	if err == nil || !snapshot.IsPermanent(err) || !errors.Is(err, snapshot.ErrUnappliable) || !strings.Contains(err.Error(), "lots-big") {
		t.Fatalf("Apply = %v; want a permanent error naming the snapshot", err)
	}
	if n := query(t, db, "SELECT count(*) FROM snapshots"); n[0] != "0" {
		t.Errorf("ledger rows after a failed apply: %v", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := db.Apply(ctx, lotsInput("lots-0", at(0), genLots(3, 0))); err == nil || snapshot.IsPermanent(err) {
		t.Errorf("a cancelled apply: %v; want a transient error", err)
	}
}

// Issue 13, item 2: a lots answer without the lots columns, or one that
// would blank most lots, is refused; availability rows without values too.
func TestWrongShapeAndMassBlankingAreRefused(t *testing.T) {
	db := newDB(t)
	lots := genLots(20, 0)
	apply(t, db, lotsInput("lots-0", at(0), lots))
	before := dump(t, db)

	// The availability feed's rows at the lots URL: only IDs.
	idsOnly := make([]feed.LotRow, len(lots))
	for i := range lots {
		idsOnly[i] = feed.LotRow{ID: lots[i].ID}
	}
	blank := func(rows []feed.LotRow, n int, f func(*feed.LotRow)) []feed.LotRow {
		out := append([]feed.LotRow(nil), rows...)
		for i := range n {
			f(&out[i])
		}
		return out
	}
	noPlace := func(r *feed.LotRow) { r.TW97X, r.TW97Y = "", "" }
	for _, c := range []struct {
		name, reason string
		in           snapshot.Input
	}{
		{"availability rows", "no row has a value for NAME, AREA, ADDRESS, TW97X, TW97Y, TOTALCAR: not the lots feed", lotsInput("lots-ids", at(1), idsOnly)},
		{"no coordinates anywhere", "no row has a value for TW97X, TW97Y", lotsInput("lots-nowhere", at(2), blank(lots, 20, noPlace))},
		{"11 of 20 without a name", "would blank the name, district, address, coordinates or capacity of 11 of 20 active lots",
			lotsInput("lots-blank", at(3), blank(lots, 11, func(r *feed.LotRow) { r.Name = " " }))},
		{"availability without values", "no row has a value for AVAILABLECAR: not the live feed",
			availInput("av-empty-values", at(4), []feed.AvailabilityRow{{ID: lotID(0)}, {ID: lotID(1)}})},
	} {
		r := apply(t, db, c.in)[0]
		if r.Outcome != snapshot.Refused || !strings.Contains(r.Reason, c.reason) {
			t.Errorf("%s: %s %q; want refused with %q", c.name, r.Outcome, r.Reason, c.reason)
		}
	}
	if got := dump(t, db); got != before {
		t.Errorf("refused snapshots changed the data")
	}
	// Half is not more than half; the override applies the rest.
	if r := apply(t, db, lotsInput("lots-half", at(5), blank(lots, 10, noPlace)))[0]; r.Outcome != snapshot.Applied || r.Quality.Lots.Blanked != 10 {
		t.Errorf("10 of 20 without coordinates: %+v", r)
	}
	in := lotsInput("lots-blank-allowed", at(6), blank(lots, 15, func(r *feed.LotRow) { r.TotalCar = "" }))
	in.AllowMassDelete = true
	if r := apply(t, db, in)[0]; r.Outcome != snapshot.Applied {
		t.Errorf("with the override: %+v", r)
	}
}
