package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
)

func av(id int, v string) feed.AvailabilityRow {
	return feed.AvailabilityRow{ID: lotID(id), AvailableCar: v}
}

func TestApplyAvailabilityNineRule(t *testing.T) {
	db := newDB(t)
	apply(t, db, lotsInput("lots-0", at(0), genLots(6, 0)))
	rows := []feed.AvailabilityRow{av(0, "12"), av(1, "-9"), av(2, "0"), av(3, "-3"), av(4, "n/a"), av(5, " 7 "), av(6, "4"),
		av(2, "5")} // lot 2 twice: the last row wins; lot 6 is not a known lot.
	r := apply(t, db, availInput("av-0", at(1), rows))[0]
	q := r.Quality
	if r.Outcome != snapshot.Applied || r.Dataset != feed.Availability || q.Rows != 8 || q.DuplicateIDs != 1 {
		t.Fatalf("result = %+v", r)
	}
	a := q.Availability
	if a.Valid != 4 || a.Unknown != 3 || a.NoFigure != 1 || a.OtherNegative != 1 || a.NotInteger != 1 ||
		a.UnknownLotIDs != 1 || a.UnknownLotIDSample[0] != lotID(6) {
		t.Errorf("availability quality = %+v", a)
	}
	ts := formatTime(at(1))
	got := query(t, db, "SELECT parking_id, available_car, recorded_at FROM availability ORDER BY parking_id")
	want := []string{"010001|12|" + ts, "010003|5|" + ts, "010006|7|" + ts, "010007|4|" + ts}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("availability = %v, want %v", got, want)
	}
	got = query(t, db, "SELECT parking_id, available_car, raw FROM availability_latest ORDER BY parking_id")
	want = []string{"010001|12|12", "010002|NULL|-9", "010003|5|5", "010004|NULL|-3", "010005|NULL|n/a", "010006|7| 7 ", "010007|4|4"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("availability_latest = %v, want %v", got, want)
	}
	if r.Changed != 4+7 {
		t.Errorf("changed = %d", r.Changed)
	}

	// A replay under the same key does nothing; under a new key (a re-fetch
	// stored twice) it adds nothing either.
	data := "SELECT * FROM availability UNION ALL SELECT parking_id, available_car, raw || observed_at FROM availability_latest"
	before := query(t, db, data)
	if r := apply(t, db, availInput("av-0", at(1), rows))[0]; !r.AlreadyApplied || r.Dataset != feed.Availability {
		t.Errorf("replay = %+v", r)
	}
	if r := apply(t, db, availInput("av-0-again", at(1), rows))[0]; r.Changed != 0 || r.Outcome != snapshot.Applied {
		t.Errorf("re-fetch = %+v", r)
	}
	if !reflect.DeepEqual(query(t, db, data), before) {
		t.Error("replay changed data")
	}

	if r := apply(t, db, availInput("av-empty", at(2), nil))[0]; r.Outcome != snapshot.Refused {
		t.Errorf("empty = %+v", r)
	}
}

func TestAvailabilityLatestOnlyMovesForward(t *testing.T) {
	db := newDB(t)
	apply(t, db, availInput("av-2", at(2), []feed.AvailabilityRow{av(0, "20"), av(1, "-9")}))
	r := apply(t, db, availInput("av-1", at(1), []feed.AvailabilityRow{av(0, "10"), av(1, "3"), av(2, "1")}))[0]
	if r.Outcome != snapshot.Applied {
		t.Fatalf("late = %+v", r)
	}
	got := query(t, db, "SELECT parking_id, available_car, raw, observed_at FROM availability_latest ORDER BY parking_id")
	t1, t2 := formatTime(at(1)), formatTime(at(2))
	want := []string{"010001|20|20|" + t2, "010002|NULL|-9|" + t2, "010003|1|1|" + t1}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("latest = %v, want %v", got, want)
	}
	if n := query(t, db, "SELECT count(*) FROM availability"); n[0] != "4" {
		t.Errorf("observations = %v", n)
	}
}

// TestOrderInvariance applies one set of snapshots (lots added, changed,
// removed and restored; availability with unknowns, duplicate IDs, unknown
// lots and two snapshots in the same second) in many orders and groupings, with
// replays, and requires identical user-facing tables every time.
func TestOrderInvariance(t *testing.T) {
	all := genLots(12, 0)
	set := func(rows []feed.LotRow, i int, variant int) []feed.LotRow {
		out := append([]feed.LotRow(nil), rows...)
		for k := range out {
			if out[k].ID == lotID(i) {
				out[k] = genLot(i, variant)
				return out
			}
		}
		return append(out, genLot(i, variant))
	}
	l := make([][]feed.LotRow, 10)
	l[0] = all[:10]
	l[1] = set(l[0], 2, 1)
	l[2] = without(l[1], 3)
	l[3] = set(set(l[2], 3, 0), 10, 0)
	l[4] = without(set(l[3], 2, 0), 5)
	l[5] = l[4]
	l[6] = set(set(without(l[5], 10), 11, 0), 5, 2)
	l[7] = set(l[6], 0, 3)
	l[8] = set(l[6], 0, 4) // Same second as l[7], greater key: it defines that second.
	l[9] = append(without(set(l[8], 1, 5), 3), genLot(1, 6))

	var inputs []snapshot.Input
	for i, rows := range l {
		ft := at(i)
		if i == 8 {
			ft = at(7).Add(400 * time.Millisecond)
		}
		in := lotsInput(fmt.Sprintf("lots-%02d", i), ft, rows)
		in.AllowMassDelete = true // The guard depends on arrival order by design.
		inputs = append(inputs, in)
	}
	for i := range 20 {
		rows := genAvailability(13, 50, uint64(i))
		rows = append(rows, feed.AvailabilityRow{ID: lotID(4), AvailableCar: fmt.Sprint(i)}) // duplicate ID
		ft := at(i / 2).Add(30*time.Second + time.Duration(i%2)*time.Minute)
		if i == 19 {
			ft = at(9).Add(30*time.Second + time.Minute) // The same second as i == 18.
		}
		if i == 18 {
			ft = at(9).Add(30*time.Second + time.Minute + 200*time.Millisecond)
		}
		inputs = append(inputs, availInput(fmt.Sprintf("av-%02d", i), ft, rows))
	}

	reference := func() string {
		db := newDB(t)
		for _, in := range inputs {
			apply(t, db, in)
		}
		return dump(t, db)
	}()

	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 25 {
		db := applyShuffled(t, newDB(t), rng, inputs, nil)
		// Replays of random earlier snapshots change nothing.
		apply(t, db, inputs[rng.IntN(len(inputs))], inputs[rng.IntN(len(inputs))])
		if got := dump(t, db); got != reference {
			t.Fatalf("round %d: tables differ from the in-order reference\n%s", round, diff(reference, got))
		}
	}
}

func diff(a, b string) string {
	la, lb := splitLines(a), splitLines(b)
	for i := range max(len(la), len(lb)) {
		var x, y string
		if i < len(la) {
			x = la[i]
		}
		if i < len(lb) {
			y = lb[i]
		}
		if x != y {
			return fmt.Sprintf("first difference at line %d:\nwant %s\n got %s", i+1, x, y)
		}
	}
	return ""
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := range len(s) {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}

// TestBytesPerObservation measures the file size per stored observation over
// a realistic load: 1,430 lots, 30% of them with a live figure, one snapshot
// every 3 minutes, applied in batches as the loader would.
func TestBytesPerObservation(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	apply(t, db, lotsInput("lots-0", at(0), genLots(1430, 0)))
	const snapshots = 700 // ~300,000 observations, about 35 hours of the live feed
	count := func() (obs, size int64) {
		if err := db.conn.QueryRowContext(ctx, "SELECT count(*) FROM availability_obs").Scan(&obs); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(db.Path())
		if err != nil {
			t.Fatal(err)
		}
		return obs, fi.Size()
	}
	var obs0, size0 int64
	var batch []snapshot.Input
	for i := range snapshots {
		batch = append(batch, availInput(fmt.Sprintf("av-%04d", i), at(i), genAvailability(1430, 70, uint64(i))))
		if len(batch) == 50 {
			apply(t, db, batch...)
			batch = batch[:0]
		}
		if i == 99 {
			obs0, size0 = count() // after the fixed costs: lots, lot_ids, first pages
		}
	}
	apply(t, db, batch...)
	obs, size := count()

	// The table's own pages (dbstat), and the file's growth per observation,
	// which includes the ledger row of every snapshot.
	var pages, pageSize int64
	if err := db.conn.QueryRowContext(ctx, "SELECT count(*) FROM dbstat WHERE name = 'availability_obs'").Scan(&pages); err != nil {
		t.Fatalf("dbstat: %v", err)
	}
	if err := db.conn.QueryRowContext(ctx, "PRAGMA page_size").Scan(&pageSize); err != nil {
		t.Fatal(err)
	}
	table := float64(pages*pageSize) / float64(obs)
	marginal := float64(size-size0) / float64(obs-obs0)
	t.Logf("%d observations: availability_obs %.2f bytes/observation; file growth %.2f bytes/observation (ledger included); whole file %d bytes (%.2f/observation, lots and fixed costs included)",
		obs, table, marginal, size, float64(size)/float64(obs))
	if obs < 250_000 {
		t.Errorf("only %d observations", obs)
	}
	if table > 16 || marginal > 16 {
		t.Errorf("%.2f (table) / %.2f (file growth) bytes per observation, want <= 16", table, marginal)
	}
}

// TestLatestChangesCountedAsIfAppliedOneByOne: availability_latest is
// written once per transaction, yet each snapshot's Changed counts the rows
// it would have changed alone, in its place in the transaction: the same in
// one transaction as in one per snapshot, in any order.
func TestLatestChangesCountedAsIfAppliedOneByOne(t *testing.T) {
	var inputs []snapshot.Input
	for i := range 12 {
		ft := at(i / 3) // three snapshots a second: ties decided by value, then raw
		inputs = append(inputs, availInput(fmt.Sprintf("av-%02d", i), ft, genAvailability(30, 40, uint64(i))))
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 5 {
		order := rng.Perm(len(inputs))
		var in []snapshot.Input
		for _, i := range order {
			in = append(in, inputs[i])
		}
		one, all := newDB(t), newDB(t)
		var alone []int
		for _, x := range in {
			alone = append(alone, apply(t, one, x)[0].Changed)
		}
		for i, r := range apply(t, all, in...) {
			if r.Changed != alone[i] {
				t.Fatalf("round %d, %s: changed %d in one transaction, %d alone", round, r.Key, r.Changed, alone[i])
			}
		}
		if dump(t, one) != dump(t, all) {
			t.Fatalf("round %d: one transaction and one per snapshot differ", round)
		}
	}
}

// TestLatestTiesAtOneSecond: at one second a known value beats an unknown
// one, the larger value wins, and between equal values the raw text decides
// (bytewise, as SQLite compares text), whatever the arrival order.
func TestLatestTiesAtOneSecond(t *testing.T) {
	cases := []struct {
		raws []string
		want string
	}{
		{[]string{"-9", "-3", "x"}, "NULL|x"},
		{[]string{"05", "5", "-9"}, "5|5"},
		{[]string{"7", "12", "-1"}, "12|12"},
	}
	for _, c := range cases {
		for _, perm := range [][]int{{0, 1, 2}, {2, 1, 0}, {1, 0, 2}} {
			db := newDB(t)
			for _, i := range perm {
				apply(t, db, availInput("av-"+c.raws[i], at(0), []feed.AvailabilityRow{av(0, c.raws[i])}))
			}
			if got := query(t, db, "SELECT available_car, raw FROM availability_latest"); len(got) != 1 || got[0] != c.want {
				t.Errorf("%v in order %v: latest %v, want %s", c.raws, perm, got, c.want)
			}
		}
	}
}

// TestUnknownLotIDsFollowTheLots: the lots an availability snapshot's
// quality knows are those of parking_lots when it is applied, kept between
// transactions but forgotten by any that applies lots (snapshot or legacy).
func TestUnknownLotIDsFollowTheLots(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	unknown := func(key string, i int) int {
		t.Helper()
		return apply(t, db, availInput(key, at(i), genAvailability(12, 0, uint64(i))))[0].Quality.Availability.UnknownLotIDs
	}
	apply(t, db, lotsInput("lots-0", at(0), genLots(5, 0)))
	if n := unknown("av-1", 1); n != 7 {
		t.Fatalf("%d unknown lot IDs, want 7 of 12", n)
	}
	if n := unknown("av-2", 2); n != 7 { // from the cache
		t.Fatalf("%d unknown lot IDs, want 7 again", n)
	}
	apply(t, db, lotsInput("lots-3", at(3), genLots(10, 0)))
	if n := unknown("av-4", 4); n != 2 {
		t.Fatalf("%d unknown lot IDs after a lots snapshot of 10, want 2", n)
	}
	if _, err := db.ImportLegacyLots(ctx, []LegacyLot{{ID: lotID(10), Name: "x", CreatedAt: at(0)}, {ID: lotID(11), Name: "y", CreatedAt: at(0)}}); err != nil {
		t.Fatal(err)
	}
	if n := unknown("av-5", 5); n != 0 {
		t.Fatalf("%d unknown lot IDs after a legacy import of the last two, want 0", n)
	}
}
