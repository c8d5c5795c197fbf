package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
)

// retractWorld is a set of good snapshots, bad ones among them, and a legacy
// import, with a ReadFunc over all of them (the store).
type retractWorld struct {
	good, bad []snapshot.Input
	legacy    []LegacyObservation
	reads     int
}

func (w *retractWorld) read(_ context.Context, key string) (*snapshot.Input, error) {
	for _, in := range append(append([]snapshot.Input(nil), w.good...), w.bad...) {
		if in.Key == key {
			w.reads++
			return &in, nil
		}
	}
	return nil, fmt.Errorf("no snapshot %s in the test store", key)
}

func (w *retractWorld) badKeys() []string {
	var keys []string
	for _, in := range w.bad {
		keys = append(keys, in.Key)
	}
	return keys
}

func newRetractWorld() *retractWorld {
	lots := genLots(20, 0)
	// Half the lots renamed; the other half as they were, so that taking a
	// snapshot out of the middle makes their rows after it redundant.
	renamed := append(genLots(10, 1), lots[10:]...)
	w := &retractWorld{}
	w.good = []snapshot.Input{
		lotsInput("lots-0", at(0), lots),
		// The same millisecond as lots-middle below, which takes precedence
		// (its key is greater) while it is there.
		lotsInput("lots-1", at(10), without(genLots(20, 3), 5)),
		lotsInput("lots-2", at(20), without(renamed, 3, 4)),
		lotsInput("lots-3", at(40), without(renamed, 4)),
	}
	for i := range 8 {
		w.good = append(w.good, availInput(fmt.Sprintf("av-%d", i), at(1+i), genAvailability(18, 60, uint64(i))))
	}
	// Lot 7 has only unknown values after av-1: its latest is -9, which no
	// observation keeps; lot 19 is in no live snapshot but a legacy import.
	for i := range w.good {
		if in := &w.good[i]; in.Dataset == feed.Availability && in.FetchedAt.After(at(2)) {
			in.Availability[7].AvailableCar = "-9"
		}
	}
	w.legacy = []LegacyObservation{
		{ParkingID: lotID(19), AvailableCar: 33, RecordedAt: at(3)},
		{ParkingID: lotID(2), AvailableCar: 44, RecordedAt: at(8).Add(time.Minute)}, // newer than every snapshot's
	}

	// The bad ones: a year ahead (with lots found nowhere else), a lots
	// snapshot a year ahead that renames and removes, one in the middle of
	// the lots history, and one of the same second as a good one with
	// larger values (their merge must come apart).
	future := genAvailability(18, 0, 99)
	future = append(future, feed.AvailabilityRow{ID: "990001", AvailableCar: "5"}, feed.AvailabilityRow{ID: "990002", AvailableCar: "-9"})
	sameSecond := genAvailability(18, 0, 98)
	for i := range sameSecond {
		sameSecond[i].AvailableCar = "299"
	}
	w.bad = []snapshot.Input{
		availInput("av-future", at(1).AddDate(1, 0, 0), future),
		lotsInput("lots-future", at(1).AddDate(1, 0, 0), without(genLots(20, 7), 1, 2, 3)),
		lotsInput("lots-middle", at(10), without(genLots(20, 5), 0, 9)),
		availInput("av-4-same-second", at(5).Add(400*time.Millisecond), sameSecond),
	}
	return w
}

// Issue 13, item 1: retracting applied snapshots leaves exactly the database
// of the snapshots that remain, whatever the order they had arrived in, and
// nothing applies them again.
func TestRetractIsAsIfTheSnapshotsNeverArrived(t *testing.T) {
	ctx := context.Background()
	w := newRetractWorld()

	clean := newDB(t)
	if _, err := clean.ImportLegacyObservations(ctx, w.legacy); err != nil {
		t.Fatal(err)
	}
	apply(t, clean, w.good...)
	want := dump(t, clean)

	for seed := range uint64(4) {
		t.Run(fmt.Sprint("order-", seed), func(t *testing.T) {
			db := newDB(t)
			all := append(append([]snapshot.Input(nil), w.good...), w.bad...)
			rand.New(rand.NewPCG(seed, 7)).Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
			if _, err := db.ImportLegacyObservations(ctx, w.legacy); err != nil {
				t.Fatal(err)
			}
			for _, in := range all {
				if r := apply(t, db, in)[0]; r.Outcome == snapshot.Refused {
					t.Fatalf("%s refused: %s", in.Key, r.Reason)
				}
			}
			if dump(t, db) == want {
				t.Fatal("the bad snapshots changed nothing: the test proves nothing")
			}
			w.reads = 0
			res, err := db.Retract(ctx, w.badKeys(), "fetched a year ahead (clock)", w.read)
			if err != nil {
				t.Fatal(err)
			}
			if got := dump(t, db); got != want {
				t.Fatalf("after the retraction:\n%s\nwant (never applied):\n%s", got, want)
			}
			checkSummaries(t, db, "after the retraction")
			if len(res.Snapshots) != len(w.bad) || res.Reread != w.reads {
				t.Errorf("result %+v (the store was read %d times)", res, w.reads)
			}
			for i, r := range res.Snapshots {
				if r.Key != w.bad[i].Key || r.Outcome == "" || r.AlreadyRetracted || r.Changed == 0 && r.Key != "lots-middle" {
					t.Errorf("retracted %+v", r)
				}
			}

			// Remembered: redelivered, the same content under another key,
			// a backfill's ledger check.
			for _, in := range w.bad {
				if r := apply(t, db, in)[0]; r.Outcome != snapshot.Refused || !strings.Contains(r.Reason, "retracted at ") {
					t.Errorf("%s redelivered: %s %q", in.Key, r.Outcome, r.Reason)
				}
			}
			copied := w.bad[0]
			copied.Key = "av-future-copy"
			if r := apply(t, db, copied)[0]; r.Outcome != snapshot.Refused || !strings.Contains(r.Reason, "same content as av-future, retracted") {
				t.Errorf("the same content under another key: %s %q", r.Outcome, r.Reason)
			}
			known, err := db.Known(ctx, w.badKeys())
			if err != nil || len(known) != len(w.bad) {
				t.Errorf("Known = %v, %v; want every retracted key (a backfill must skip them unread)", known, err)
			}
			if got := dump(t, db); got != want {
				t.Error("a refused redelivery changed the data")
			}
			again, err := db.Retract(ctx, w.badKeys()[:1], "again", w.read)
			if err != nil || !again.Snapshots[0].AlreadyRetracted {
				t.Errorf("retracting twice: %+v, %v", again, err)
			}
		})
	}
}

// A key the loader has not seen yet (its message still queued) is
// remembered, and refused when it comes.
func TestRetractBeforeArrival(t *testing.T) {
	db := newDB(t)
	key := snapshot.Key(feed.Availability, at(1), sum("x"))
	res, err := db.Retract(context.Background(), []string{key}, "known bad", func(context.Context, string) (*snapshot.Input, error) {
		t.Fatal("nothing to read for a key never applied")
		return nil, nil
	})
	if err != nil || res.Snapshots[0].Outcome != "" || res.Snapshots[0].Dataset != "availability" {
		t.Fatalf("retract = %+v, %v", res, err)
	}
	in := availInput(key, at(1), genAvailability(5, 0, 1))
	if r := apply(t, db, in)[0]; r.Outcome != snapshot.Refused || !strings.Contains(r.Reason, "known bad") {
		t.Errorf("apply after the retraction: %+v", r)
	}
	if n := query(t, db, "SELECT count(*) FROM availability_latest"); n[0] != "0" {
		t.Errorf("latest rows: %v", n)
	}
	if _, err := db.Retract(context.Background(), []string{"not-a-key"}, "x", nil); err == nil {
		t.Error("a key that is not a snapshot key was accepted")
	}
	if _, err := db.Retract(context.Background(), []string{key}, "", nil); err == nil {
		t.Error("a retraction without a reason was accepted")
	}
}
