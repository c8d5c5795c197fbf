package main

import (
	"strings"
	"testing"

	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
)

// The text of `loader stats` says what the original's stats and
// availability-stats said, plus the ledger: every figure of the document
// appears, in order, aligned into columns.
func TestWriteStatsText(t *testing.T) {
	s := sqlite.Stats{
		Path:         "data/parking.db",
		Lots:         sqlite.LotStats{Total: 10, Active: 9, Deleted: 1},
		Observations: 24,
		Months: []sqlite.MonthStats{
			{Month: "2026-11", Observations: 12, DistinctLots: 12, First: "2026-11-30T23:59:00+08:00", Last: "2026-11-30T23:59:00+08:00"},
			{Month: "2026-12", Observations: 12, DistinctLots: 11, First: "2026-12-01T00:00:00+08:00", Last: "2026-12-01T00:00:00+08:00"},
		},
		Datasets: []sqlite.DatasetStats{
			{Dataset: "lots", Applied: 2, LastKey: "lots/k1", FetchedAt: "2026-11-26T18:03:00+08:00", AppliedAt: "2026-11-26T18:03:01+08:00",
				Quality: &snapshot.Quality{Rows: 9, DuplicateIDs: 1, Lots: &snapshot.LotsQuality{Active: 9, Appeared: 0, Disappeared: 1,
					LotsWithoutPosition: 3, WithoutPositionByReason: map[string]int{"zero": 2, "out of range": 1}}}},
			{Dataset: "availability", Applied: 0},
		},
		Refused: sqlite.RefusedStats{Count: 1, ByDataset: map[string]int{"lots": 1}, Latest: []sqlite.LedgerEntry{{Key: "lots/bad", Dataset: "lots",
			FetchedAt: "2026-11-26T02:01:20.123+08:00", AppliedAt: "2026-11-26T18:06:00+08:00", Reason: "would remove 8 of 9 active lots"}}},
		Retractions: sqlite.RetractionStats{Count: 1, Latest: []sqlite.RetractionEntry{{Key: "availability/future", Dataset: "availability",
			FetchedAt: "2027-11-26T18:00:00.000+08:00", At: "2026-11-27T09:00:00+08:00", Reason: "fetched a year ahead"}}},
		Rejections: sqlite.RejectionsStats{Count: 1, Latest: []sqlite.RejectionEntry{{Key: "k-bad", At: "2026-11-26T18:00:00+08:00", Reason: "undecodable"}}},
	}
	var b strings.Builder
	if err := writeStats(&b, s); err != nil {
		t.Fatal(err)
	}
	text := b.String()
	want := []string{
		"Database: data/parking.db",
		"  total:    10\n  active:   9\n  deleted:  1\n",
		"Availability observations: 24",
		"  2026-11  12            12    2026-11-30T23:59:00+08:00",
		"  2026-12  12            11    2026-12-01T00:00:00+08:00",
		"lots:          2 applied; latest lots/k1 fetched 2026-11-26T18:03:00+08:00, applied 2026-11-26T18:03:01+08:00",
		"rows 9, duplicate IDs 1, active 9, appeared 0, disappeared 1, without position 3 (out of range 1, zero 2)",
		"availability:  0 applied, none current",
		// The fetch time (Taipei) is what the override's backfill takes.
		"Refused snapshots: 1 (lots 1)\n  lots  fetched 2026-11-26T02:01:20.123+08:00  lots/bad  would remove 8 of 9 active lots",
		"Retracted snapshots: 1\n  availability  fetched 2027-11-26T18:00:00.000+08:00  availability/future  retracted 2026-11-27T09:00:00+08:00: fetched a year ahead",
		"Rejected messages: 1\n  2026-11-26T18:00:00+08:00  k-bad  undecodable",
	}
	at := 0
	for _, w := range want {
		i := strings.Index(text[at:], w)
		if i < 0 {
			t.Fatalf("text lacks %q after byte %d:\n%s", w, at, text)
		}
		at += i + len(w)
	}
}
