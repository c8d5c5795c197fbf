package sqlite

import (
	"context"
	"reflect"
	"testing"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
)

func TestLatestAvailabilityEmpty(t *testing.T) {
	db := newDB(t)
	got, err := db.LatestAvailability(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got.UpdatedAt != "" || len(got.Rows) != 0 {
		t.Errorf("empty database: %+v", got)
	}
	last, err := db.LastApplied(context.Background())
	if err != nil || len(last) != 0 {
		t.Errorf("LastApplied = %v, %v", last, err)
	}
}

func TestLatestAvailabilityIsTheNewestSnapshot(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	apply(t, db, lotsInput("lots-0", at(0), genLots(4, 0)))
	apply(t, db,
		availInput("av-1", at(1), []feed.AvailabilityRow{{ID: lotID(0), AvailableCar: "5"}, {ID: lotID(3), AvailableCar: "8"}}),
		// Lot 3 is missing from the newest snapshot and lot 1 is unknown (-9):
		// neither is in the original's file, which held the last fetch's values.
		availInput("av-2", at(2), []feed.AvailabilityRow{
			{ID: lotID(0), AvailableCar: "6"}, {ID: lotID(1), AvailableCar: "-9"}, {ID: lotID(2), AvailableCar: "0"},
			{ID: "999999", AvailableCar: "3"}}),
	)
	// A late, older snapshot changes nothing.
	apply(t, db, availInput("av-0", at(0), []feed.AvailabilityRow{{ID: lotID(0), AvailableCar: "99"}}))

	got, err := db.LatestAvailability(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := LatestAvailability{UpdatedAt: formatMilli(at(2).UnixMilli()), Rows: []LatestRow{{lotID(0), 6}, {lotID(2), 0}, {"999999", 3}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("LatestAvailability = %+v, want %+v", got, want)
	}

	lots, err := db.ActiveLots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(lots) != 4 {
		t.Fatalf("%d active lots, want 4", len(lots))
	}
	l0, l1, l3 := lots[0], lots[1], lots[3]
	if !l0.HasAvailable || l0.AvailableCar != 6 || l0.ObservedAt != formatTime(at(2)) || !l0.HasPosition {
		t.Errorf("lot 0 = %+v", l0)
	}
	if l1.HasAvailable || l1.ObservedAt != formatTime(at(2)) {
		t.Errorf("lot 1 (unknown) = %+v", l1)
	}
	// genLot gives lot 3 the coordinates 0,0: no position, and the note says why.
	if l3.HasPosition || l3.CoordNote == "" || l3.CoordNote == "ok" || !l3.HasAvailable || l3.AvailableCar != 8 || l3.ObservedAt != formatTime(at(1)) {
		t.Errorf("lot 3 = %+v", l3)
	}

	last, err := db.LastApplied(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if last[feed.Lots].IsZero() || last[feed.Availability].IsZero() {
		t.Errorf("LastApplied = %v", last)
	}
}
