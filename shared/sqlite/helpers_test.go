package sqlite

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/internal/dbtest"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
)

// base is the fetch time of the first test snapshot.
var base = time.Date(2026, 11, 26, 18, 0, 0, 0, taipei)

// at returns the fetch time of the i-th test snapshot, three minutes apart.
func at(i int) time.Time { return base.Add(time.Duration(i) * 3 * time.Minute) }

var districts = []string{"板橋區", "三重區", "中和區", "永和區", "新莊區", "新店區", "土城區", "蘆洲區", "汐止區", "樹林區"}

// lotID returns the i-th test lot ID, zero-padded like the feed's ("010056").
func lotID(i int) string { return fmt.Sprintf("%06d", 10001+i) }

// genLot returns a realistic lots row; variant changes its name and capacity.
func genLot(i, variant int) feed.LotRow {
	x := 290000 + (i*37)%20000
	y := 2760000 + (i*53)%20000
	r := feed.LotRow{
		ID:          lotID(i),
		Area:        districts[i%len(districts)],
		Name:        fmt.Sprintf("第%d號公有停車場", i),
		Type:        fmt.Sprint(1 + i%2),
		Summary:     "平面式停車場",
		Address:     fmt.Sprintf("新北市%s中山路%d號", districts[i%len(districts)], i+1),
		Tel:         "",
		PayEx:       "小型車每小時30元;月租2,900元",
		ServiceTime: "00:00~24:00",
		TW97X:       fmt.Sprint(x),
		TW97Y:       fmt.Sprint(y),
		TotalCar:    fmt.Sprint(20 + i%400),
		TotalMotor:  fmt.Sprint(i % 50),
		TotalBike:   "",
	}
	switch i % 17 {
	case 3:
		r.TW97X, r.TW97Y = "0", "0"
	case 5:
		r.TotalCar = ""
	}
	if variant != 0 {
		r.Name += fmt.Sprintf("(v%d)", variant)
		r.TotalCar = fmt.Sprint(21 + i%400 + variant)
	}
	return r
}

func genLots(n, variant int) []feed.LotRow {
	rows := make([]feed.LotRow, n)
	for i := range rows {
		rows[i] = genLot(i, variant)
	}
	return rows
}

func sum(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:])
}

func lotsInput(key string, t time.Time, rows []feed.LotRow) snapshot.Input {
	return snapshot.Input{Key: key, SHA256: sum(key, t.String()), Dataset: feed.Lots, FetchedAt: t, Lots: rows}
}

func availInput(key string, t time.Time, rows []feed.AvailabilityRow) snapshot.Input {
	return snapshot.Input{Key: key, SHA256: sum(key, t.String()), Dataset: feed.Availability, FetchedAt: t, Availability: rows}
}

// genAvailability returns n live rows for lots 0..n-1, about unknownPct% at
// "-9", deterministic for a seed.
func genAvailability(n, unknownPct int, seed uint64) []feed.AvailabilityRow {
	rng := rand.New(rand.NewPCG(seed, 42))
	rows := make([]feed.AvailabilityRow, n)
	for i := range rows {
		v := "-9"
		if rng.IntN(100) >= unknownPct {
			v = fmt.Sprint(rng.IntN(300))
		}
		rows[i] = feed.AvailabilityRow{ID: lotID(i), AvailableCar: v}
	}
	return rows
}

// dump renders every user-facing table canonically, for comparing
// databases, and the ledger reduced to what must not depend on arrival order.
func dump(t testing.TB, db *DB) string {
	t.Helper()
	return dbtest.DumpWith(t, db.conn, append(slices.Clone(dbtest.DumpQueries),
		"SELECT key, dataset, sha256, fetched_at, fetched_ms, rows FROM snapshots WHERE outcome <> 'refused' ORDER BY key")...)
}

// query returns the rows of q as strings, one per row, columns joined by "|".
func query(t testing.TB, db *DB, q string, args ...any) []string {
	t.Helper()
	var out []string
	for _, row := range dbtest.QueryWith(t, db.conn, q, args...) {
		out = append(out, strings.Join(row, "|"))
	}
	return out
}

func apply(t testing.TB, db *DB, in ...snapshot.Input) []snapshot.Result {
	t.Helper()
	res, err := db.Apply(context.Background(), in...)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// applyShuffled applies inputs in a random order, in groups of one to eight
// to a transaction, each input now and then twice in its group (a
// redelivery), and calls after (if not nil) after each group with how many
// inputs have gone in; after returns the DB to go on with (a reopened one).
func applyShuffled(t testing.TB, db *DB, rng *rand.Rand, inputs []snapshot.Input, after func(db *DB, done int) *DB) *DB {
	t.Helper()
	order := rng.Perm(len(inputs))
	for start := 0; start < len(order); {
		size := 1 + rng.IntN(8)
		var group []snapshot.Input
		for _, i := range order[start:min(start+size, len(order))] {
			group = append(group, inputs[i])
			if rng.IntN(6) == 0 {
				group = append(group, inputs[i])
			}
		}
		apply(t, db, group...)
		start += size
		if after != nil {
			db = after(db, min(start, len(order)))
		}
	}
	return db
}
