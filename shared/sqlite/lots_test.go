package sqlite

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
)

func newDB(t testing.TB) *DB {
	t.Helper()
	return openTest(t, filepath.Join(t.TempDir(), "parking.db"))
}

// without returns rows minus the lots with the given indexes.
func without(rows []feed.LotRow, drop ...int) []feed.LotRow {
	skip := map[string]bool{}
	for _, i := range drop {
		skip[lotID(i)] = true
	}
	var out []feed.LotRow
	for _, r := range rows {
		if !skip[r.ID] {
			out = append(out, r)
		}
	}
	return out
}

func lotRow(t testing.TB, db *DB, i int) string {
	t.Helper()
	rows := query(t, db, "SELECT name, total_car, created_at, updated_at, deleted_at FROM parking_lots WHERE id = ?", lotID(i))
	if len(rows) != 1 {
		t.Fatalf("lot %s: %d rows", lotID(i), len(rows))
	}
	return rows[0]
}

func versions(t testing.TB, db *DB, i int) []string {
	t.Helper()
	return query(t, db, "SELECT effective_at, present FROM lot_versions WHERE parking_id = ? ORDER BY effective_at", lotID(i))
}

func TestApplyLotsFirstSnapshot(t *testing.T) {
	db := newDB(t)
	rows := genLots(300, 0)
	res := apply(t, db, lotsInput("lots-0", at(0), rows))
	r := res[0]
	if r.Outcome != snapshot.Applied || r.Dataset != feed.Lots || r.Rows != 300 || r.Changed != 600 || r.AlreadyApplied {
		t.Fatalf("result = %+v", r)
	}
	if q := r.Quality.Lots; q.Active != 300 || q.Appeared != 300 || q.Disappeared != 0 {
		t.Errorf("quality = %+v", q)
	}
	// Lots with i%17 == 3 have "0"/"0" coordinates.
	if q := r.Quality.Lots; q.LotsWithoutPosition < 300/17 || q.WithoutPositionByReason == nil {
		t.Errorf("without position = %d %v", q.LotsWithoutPosition, q.WithoutPositionByReason)
	}
	got := query(t, db, `SELECT id, area, name, type, tw97x, tw97y, total_car, total_motor, total_bike,
		created_at, updated_at, deleted_at, coord_note FROM parking_lots WHERE id IN (?, ?, ?) ORDER BY id`,
		lotID(3), lotID(5), lotID(6))
	want := []string{
		"010004|永和區|第3號公有停車場|2|0|0|23|3|0|2026-11-26T18:00:00.000+08:00|2026-11-26T18:00:00.000+08:00|NULL|" + query(t, db, "SELECT coord_note FROM parking_lots WHERE id = '010004'")[0],
		"010006|新店區|第5號公有停車場|2|290185|2.760265e+06|0|5|0|2026-11-26T18:00:00.000+08:00|2026-11-26T18:00:00.000+08:00|NULL|" + query(t, db, "SELECT coord_note FROM parking_lots WHERE id = '010006'")[0],
		"010007|土城區|第6號公有停車場|1|290222|2.760318e+06|26|6|0|2026-11-26T18:00:00.000+08:00|2026-11-26T18:00:00.000+08:00|NULL|" + query(t, db, "SELECT coord_note FROM parking_lots WHERE id = '010007'")[0],
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parking_lots:\n got %q\nwant %q", got, want)
	}
	// A plausible TWD97 pair gets a WGS84 position in New Taipei; "0"/"0" gets none.
	pos := query(t, db, "SELECT lon IS NOT NULL, lat BETWEEN 24.5 AND 25.4 FROM parking_lots WHERE id = ?", lotID(6))
	if pos[0] != "1|1" {
		t.Errorf("lot 6 position: %v (note %v)", pos, query(t, db, "SELECT coord_note FROM parking_lots WHERE id = ?", lotID(6)))
	}
	if pos := query(t, db, "SELECT lon, lat FROM parking_lots WHERE id = ?", lotID(3)); pos[0] != "NULL|NULL" {
		t.Errorf("lot 3 position: %v", pos)
	}
}

func TestApplySameSnapshotTwice(t *testing.T) {
	db := newDB(t)
	in := lotsInput("lots-0", at(0), genLots(50, 0))
	apply(t, db, in)
	before := dump(t, db)
	res := apply(t, db, in, in)
	for _, r := range res {
		if !r.AlreadyApplied || r.Outcome != snapshot.Applied || r.Changed != 0 {
			t.Errorf("replay = %+v", r)
		}
	}
	if after := dump(t, db); after != before {
		t.Error("replay changed the database")
	}
	// Twice within one Apply call: the second sees the first's ledger row.
	db2 := newDB(t)
	res = apply(t, db2, in, in)
	if res[0].AlreadyApplied || !res[1].AlreadyApplied {
		t.Errorf("same call: %+v", res)
	}
}

func TestApplyDuplicateContent(t *testing.T) {
	db := newDB(t)
	in := lotsInput("lots-a", at(0), genLots(20, 0))
	apply(t, db, in)
	again := in
	again.Key = "lots-b"
	r := apply(t, db, again)[0]
	if r.Outcome != snapshot.Duplicate || r.AlreadyApplied || !strings.Contains(r.Reason, "lots-a") {
		t.Errorf("result = %+v", r)
	}
	if k, _ := db.Known(context.Background(), []string{"lots-b"}); !k["lots-b"] {
		t.Error("duplicate key not known")
	}
}

func TestApplyLotsDuplicateIDsLastWins(t *testing.T) {
	db := newDB(t)
	rows := genLots(10, 0)
	first, last := genLot(4, 1), genLot(4, 2)
	rows = append(rows, first, last)
	r := apply(t, db, lotsInput("lots-0", at(0), rows))[0]
	if r.Quality.DuplicateIDs != 2 || r.Quality.Lots.Active != 10 {
		t.Errorf("quality = %+v", r.Quality)
	}
	if got := lotRow(t, db, 4); !strings.HasPrefix(got, last.Name+"|") {
		t.Errorf("lot 4 = %s, want the last row (%s)", got, last.Name)
	}
}

func TestApplyLotsLifecycle(t *testing.T) {
	db := newDB(t)
	all := genLots(10, 0)
	t0, t1, t2 := formatMilli(at(0).UnixMilli()), formatMilli(at(1).UnixMilli()), formatMilli(at(2).UnixMilli())

	apply(t, db, lotsInput("lots-0", at(0), all))
	changed := append(without(all, 3, 4), genLot(4, 1))
	r := apply(t, db, lotsInput("lots-1", at(1), changed))[0]
	if q := r.Quality.Lots; q.Disappeared != 1 || q.Appeared != 0 || q.Active != 9 {
		t.Errorf("quality = %+v", q)
	}
	if got, want := lotRow(t, db, 3), "第3號公有停車場|23|"+t0+"|"+t0+"|"+t1; got != want {
		t.Errorf("deleted lot 3 = %s, want %s", got, want)
	}
	if got, want := lotRow(t, db, 4), "第4號公有停車場(v1)|26|"+t0+"|"+t1+"|NULL"; got != want {
		t.Errorf("changed lot 4 = %s, want %s", got, want)
	}
	// Lot 3 stays away for a while: its deletion time is the first one.
	apply(t, db, lotsInput("lots-1b", at(1).Add(time.Minute), changed))
	if got, want := lotRow(t, db, 3), "第3號公有停車場|23|"+t0+"|"+t0+"|"+t1; got != want {
		t.Errorf("still deleted lot 3 = %s, want %s", got, want)
	}
	// Restored: deleted_at clears, created_at stays, updated_at is the return.
	r = apply(t, db, lotsInput("lots-2", at(2), append(changed, genLot(3, 0))))[0]
	if r.Quality.Lots.Appeared != 1 {
		t.Errorf("quality = %+v", r.Quality.Lots)
	}
	if got, want := lotRow(t, db, 3), "第3號公有停車場|23|"+t0+"|"+t2+"|NULL"; got != want {
		t.Errorf("restored lot 3 = %s, want %s", got, want)
	}
	if got, want := versions(t, db, 3), []string{t0 + "|1", t1 + "|0", t2 + "|1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("lot 3 versions = %v, want %v", got, want)
	}
}

func TestApplyOldLotsSnapshotSuperseded(t *testing.T) {
	db := newDB(t)
	all := genLots(12, 0)
	t0, t1, t2 := formatMilli(at(0).UnixMilli()), formatMilli(at(1).UnixMilli()), formatMilli(at(2).UnixMilli())
	// Newest first: lots 0-9 at t0, then at t2 lot 9 is gone and lot 10 appeared.
	apply(t, db, lotsInput("lots-0", at(0), all[:10]))
	apply(t, db, lotsInput("lots-2", at(2), append(without(all[:10], 9), all[10])))
	current := query(t, db, "SELECT id, name, total_car, deleted_at IS NULL FROM parking_lots ORDER BY id")
	if got := lotRow(t, db, 9); !strings.HasSuffix(got, "|"+t2) {
		t.Fatalf("lot 9 = %s", got)
	}

	// The older t1 snapshot arrives late: lot 9 already gone then, lot 4 had a
	// different name at t1 only.
	late := append(without(all[:10], 9, 4), genLot(4, 1))
	r := apply(t, db, lotsInput("lots-1", at(1), late))[0]
	if r.Outcome != snapshot.Superseded || r.AlreadyApplied {
		t.Fatalf("result = %+v", r)
	}
	// The current attributes and listing did not move back in time...
	if got := query(t, db, "SELECT id, name, total_car, deleted_at IS NULL FROM parking_lots ORDER BY id"); !reflect.DeepEqual(got, current) {
		t.Errorf("current rows changed:\n got %v\nwant %v", got, current)
	}
	// ...but the history is refined: lot 9 disappeared at t1, lot 4 had a t1 version.
	if got, want := lotRow(t, db, 9), "第9號公有停車場|29|"+t0+"|"+t0+"|"+t1; got != want {
		t.Errorf("lot 9 = %s, want %s", got, want)
	}
	if got, want := versions(t, db, 4), []string{t0 + "|1", t1 + "|1", t2 + "|1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("lot 4 versions = %v, want %v", got, want)
	}
	if got, want := versions(t, db, 10), []string{t2 + "|1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("lot 10 versions = %v, want %v", got, want)
	}
	// Lot 4's t2 row exists now because its state at t2 differs from t1's, so
	// its updated_at is refined from t0 to t2 (it did change back at t2).
	if got := lotRow(t, db, 4); !strings.HasPrefix(got, "第4號公有停車場|") || !strings.Contains(got, "|"+t2+"|") {
		t.Errorf("lot 4 = %s", got)
	}

	// A snapshot before everything with an extra lot 11: created and deleted
	// before the first snapshot we had.
	tm := formatMilli(at(-1).UnixMilli())
	r = apply(t, db, lotsInput("lots-m1", at(-1), append(all[:10:10], all[11])))[0]
	if r.Outcome != snapshot.Superseded {
		t.Errorf("result = %+v", r)
	}
	if got, want := lotRow(t, db, 11), "第11號公有停車場|31|"+tm+"|"+tm+"|"+t0; got != want {
		t.Errorf("lot 11 = %s, want %s", got, want)
	}
	if got, want := lotRow(t, db, 0), "第0號公有停車場|20|"+tm+"|"+tm+"|NULL"; got != want {
		t.Errorf("lot 0 = %s, want %s", got, want)
	}
}

func TestApplyMassDelete(t *testing.T) {
	db := newDB(t)
	all := genLots(10, 0)
	apply(t, db, lotsInput("lots-0", at(0), all))
	before := dump(t, db)

	in := lotsInput("lots-1", at(1), all[:4])
	r := apply(t, db, in)[0]
	if r.Outcome != snapshot.Refused || !strings.Contains(r.Reason, "6 of 10") {
		t.Fatalf("result = %+v", r)
	}
	if dump(t, db) != before {
		t.Error("refused snapshot changed the data")
	}
	if k, _ := db.Known(context.Background(), []string{"lots-1"}); k["lots-1"] {
		t.Error("refused key reported as known")
	}
	// An operator allows it: the same key applies now.
	in.AllowMassDelete = true
	r = apply(t, db, in)[0]
	if r.Outcome != snapshot.Applied || r.AlreadyApplied {
		t.Fatalf("allowed: %+v", r)
	}
	if got := query(t, db, "SELECT count(*) FROM parking_lots WHERE deleted_at IS NULL"); got[0] != "4" {
		t.Errorf("active = %v", got)
	}

	// Exactly half is not "more than half".
	r = apply(t, db, lotsInput("lots-h", at(2), all[:2]))[0]
	if r.Outcome != snapshot.Applied {
		t.Errorf("half: %+v", r)
	}

	r = apply(t, db, lotsInput("lots-empty", at(3), nil))[0]
	if r.Outcome != snapshot.Refused || r.Reason != "no lots rows" {
		t.Errorf("empty: %+v", r)
	}
}
