package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
)

// checkSummaries fails unless the summaries agree with the tables: Stats
// (from obs_months, ledger_counts) equals StatsFull (from every row), and
// ledger_counts equals the ledger counted.
func checkSummaries(t testing.TB, db *DB, when string) Stats {
	t.Helper()
	ctx := context.Background()
	sum, err := db.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	full, err := db.StatsFull(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := SummaryDifferences(sum, full); len(d) > 0 {
		t.Fatalf("%s: the summaries differ from the tables:\n%s", when, strings.Join(d, "\n"))
	}
	if stored := countRows(t, db, "availability_obs") + countRows(t, db, "availability_obs_overflow"); sum.Observations != int64(stored) {
		t.Fatalf("%s: %d observations summarised, %d stored", when, sum.Observations, stored)
	}
	want := query(t, db, `SELECT dataset, outcome, count(*), CASE outcome WHEN 'refused' THEN '' ELSE max(applied_at) END
		FROM snapshots GROUP BY dataset, outcome ORDER BY dataset, outcome`)
	got := query(t, db, `SELECT dataset, outcome, snapshots, CASE outcome WHEN 'refused' THEN '' ELSE last_applied_at END
		FROM ledger_counts WHERE snapshots > 0 ORDER BY dataset, outcome`)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%s: ledger_counts\n%s\nthe ledger counted\n%s", when, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	return sum
}

// summaryInputs are snapshots that exercise every way an apply can insert,
// raise or skip an observation: three Taipei months (the boundaries at
// midnight Taipei time, 16:00 UTC), same-second snapshots under other keys
// with other values, identical content under another key, snapshots with no
// valid value, a mass delete refused and later applied under the same key.
func summaryInputs() []snapshot.Input {
	var in []snapshot.Input
	boundaries := []time.Time{
		time.Date(2026, 11, 30, 23, 50, 0, 0, taipei),
		time.Date(2026, 12, 31, 23, 55, 0, 0, taipei),
	}
	lots := genLots(40, 0)
	in = append(in, lotsInput("lots-a", boundaries[0].Add(-time.Hour), lots))
	in = append(in, lotsInput("lots-b", boundaries[1].Add(-time.Hour), without(lots, 3, 4)))
	mass := lotsInput("lots-mass", boundaries[1].Add(time.Hour), lots[:5])
	in = append(in, mass) // refused: would remove 35 of 38 lots
	for b, edge := range boundaries {
		for i := range 8 {
			ft := edge.Add(time.Duration(i) * 5 * time.Minute) // across midnight
			rows := genAvailability(45, 60, uint64(b*100+i))   // lots 40-44 are in no lots snapshot
			in = append(in, availInput(fmt.Sprintf("av-%d-%d", b, i), ft, rows))
			if i%3 == 0 {
				// The same second under another key, other values: the larger wins.
				in = append(in, availInput(fmt.Sprintf("av-%d-%d-again", b, i), ft.Add(300*time.Millisecond),
					genAvailability(45, 30, uint64(b*100+i+50))))
			}
		}
	}
	// Identical content under another key: a duplicate, applies nothing.
	dup := in[len(in)-1]
	dup.Key += "-copy"
	in = append(in, dup)
	// Nothing valid: every value -9.
	in = append(in, availInput("av-unknown", boundaries[0].Add(time.Hour), genAvailability(45, 100, 9)))
	return in
}

// summaryLegacy are observations of the original project: some at the
// seconds of snapshots (skipped or merged), some at seconds of their own.
func summaryLegacy() []LegacyObservation {
	var obs []LegacyObservation
	for i := range 30 {
		at := time.Date(2026, 11, 30, 23, 50, 0, 0, taipei).Add(time.Duration(i%10) * 150 * time.Second)
		obs = append(obs, LegacyObservation{ParkingID: lotID(i % 45), AvailableCar: int64(i), RecordedAt: at})
	}
	obs = append(obs, LegacyObservation{ParkingID: "legacy-only", AvailableCar: 5,
		RecordedAt: time.Date(2026, 10, 15, 8, 0, 0, 0, taipei)})
	return obs
}

// TestSummariesEqualFullScan: after any order, grouping and repetition of
// applies (a backfill's batches, redeliveries, replays, a refusal applied
// later), legacy imports and reopens (the month cache cold), the summaries
// equal what a full scan computes, and their figures are the same for every
// order: a function of the set of snapshots.
func TestSummariesEqualFullScan(t *testing.T) {
	ctx := context.Background()
	inputs := summaryInputs()
	legacy := summaryLegacy()
	var reference Stats
	rng := rand.New(rand.NewPCG(14, 14))
	for round := range 12 {
		path := filepath.Join(t.TempDir(), "parking.db")
		legacyAt := rng.IntN(len(inputs))
		db := applyShuffled(t, openTest(t, path), rng, inputs, func(db *DB, done int) *DB {
			checkSummaries(t, db, fmt.Sprintf("round %d after %d inputs", round, done))
			if legacyAt >= 0 && done > legacyAt {
				legacyAt = -1
				if _, err := db.ImportLegacyObservations(ctx, legacy); err != nil {
					t.Fatal(err)
				}
				checkSummaries(t, db, fmt.Sprintf("round %d after the legacy import", round))
			}
			if rng.IntN(6) == 0 {
				db.Close()
				db = openTest(t, path) // the month cache cold
			}
			return db
		})
		// Replays, and the refused mass delete applied at last under its key.
		apply(t, db, inputs[rng.IntN(len(inputs))], inputs[rng.IntN(len(inputs))])
		if _, err := db.ImportLegacyObservations(ctx, legacy); err != nil {
			t.Fatal(err)
		}
		mass := inputs[2]
		mass.AllowMassDelete = true
		if r := apply(t, db, mass); r[0].Outcome == snapshot.Refused {
			t.Fatalf("round %d: the mass delete was refused again: %s", round, r[0].Reason)
		}
		got := checkSummaries(t, db, fmt.Sprintf("round %d at the end", round))
		if got.Refused.Count != 0 || got.Datasets[0].Applied != 3 {
			t.Fatalf("round %d: refused %d, lots applied %d; want 0 and 3", round, got.Refused.Count, got.Datasets[0].Applied)
		}
		if round == 0 {
			reference = got
			if len(got.Months) != 4 {
				t.Fatalf("months %+v, want 2026-10 (legacy) to 2027-01", got.Months)
			}
			continue
		}
		if d := SummaryDifferences(got, reference); len(d) > 0 || got.Observations != reference.Observations {
			t.Fatalf("round %d: other figures than round 0:\n%s", round, strings.Join(d, "\n"))
		}
	}
}

// TestMigrationFillsSummaries: a database from before the summaries (schema
// 1) gets them filled by migration 0003, equal to the full scan.
func TestMigrationFillsSummaries(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "parking.db")
	db := openTest(t, path)
	apply(t, db, summaryInputs()...)
	if _, err := db.ImportLegacyObservations(ctx, summaryLegacy()); err != nil {
		t.Fatal(err)
	}
	want := checkSummaries(t, db, "before")
	// Back to schema 2: the summaries and the index of 0003 gone.
	for _, q := range []string{"DROP TABLE obs_months", "DROP TABLE obs_month_lots", "DROP TABLE ledger_counts",
		"DROP INDEX snapshots_refused", "PRAGMA user_version = 2"} {
		if _, err := db.conn.ExecContext(ctx, q); err != nil {
			t.Fatal(q, err)
		}
	}
	db.Close()

	db = openTest(t, path)
	got := checkSummaries(t, db, "after the migration")
	if d := SummaryDifferences(got, want); len(d) > 0 || got.Refused.Count != want.Refused.Count {
		t.Fatalf("migrated figures differ from the applied ones:\n%s", strings.Join(d, "\n"))
	}
	if len(got.Months) != 4 || got.Refused.Count != 1 {
		t.Fatalf("months %d, refused %d; want 4 and 1", len(got.Months), got.Refused.Count)
	}
	// And they go on from there.
	apply(t, db, availInput("av-later", time.Date(2027, 1, 3, 12, 0, 0, 0, taipei), genAvailability(45, 0, 77)))
	checkSummaries(t, db, "after an apply on the migrated database")
}

// TestMigrationOfAnEmptyDatabase: nothing to fill, and no month appears.
func TestMigrationOfAnEmptyDatabase(t *testing.T) {
	db := newDB(t)
	if s := checkSummaries(t, db, "empty"); len(s.Months) != 0 || s.Observations != 0 {
		t.Fatalf("stats of an empty database: %+v", s)
	}
}

// TestSummaryDifferencesSeesAWrongSummary: the check finds a summary that
// disagrees with the tables (so a passing check means something).
func TestSummaryDifferencesSeesAWrongSummary(t *testing.T) {
	db := newDB(t)
	apply(t, db, availInput("av-1", at(0), genAvailability(20, 0, 1)))
	if _, err := db.conn.ExecContext(context.Background(), "UPDATE obs_months SET observations = observations + 1"); err != nil {
		t.Fatal(err)
	}
	sum, _ := db.Stats(context.Background())
	full, _ := db.StatsFull(context.Background())
	if d := SummaryDifferences(sum, full); len(d) != 1 || !strings.Contains(d[0], "2026-11") {
		t.Fatalf("differences = %q, want one naming 2026-11", d)
	}
	if full.Months[0].Observations != 20 || full.Months[0].DistinctLots != 20 {
		t.Fatalf("full scan %+v, want 20 observations of 20 lots", full.Months[0])
	}
}
