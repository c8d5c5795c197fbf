package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
)

func TestStatsKnownReject(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	all := genLots(10, 0)
	apply(t, db,
		lotsInput("lots-0", at(0), all),
		lotsInput("lots-1", at(1), without(all, 7)),
		lotsInput("lots-bad", at(2), all[:2]), // refused: mass delete
		availInput("av-0", at(0), genAvailability(12, 50, 1)),
		// 2026-11-30T23:59 and 2026-12-01T00:00 in Taipei: two months.
		availInput("av-nov", time.Date(2026, 11, 30, 23, 59, 0, 0, taipei), genAvailability(12, 0, 2)),
		availInput("av-dec", time.Date(2026, 12, 1, 0, 0, 0, 0, taipei), genAvailability(12, 0, 3)),
	)
	body := []byte(strings.Repeat("x", 5000))
	if err := db.Reject(ctx, Rejection{MessageID: "m-1", Key: "k-bad", Dataset: "lots", Reason: "undecodable", Body: body}); err != nil {
		t.Fatal(err)
	}
	if n := query(t, db, "SELECT length(body), at FROM rejections"); n[0] != "1024|2026-11-26T18:00:00+08:00" {
		t.Errorf("rejection = %v", n)
	}

	known, err := db.Known(ctx, []string{"lots-0", "lots-1", "lots-bad", "av-dec", "nope"})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(known) != "map[av-dec:true lots-0:true lots-1:true]" {
		t.Errorf("Known = %v", known)
	}
	// Many keys at once (chunked).
	many := make([]string, 1200)
	for i := range many {
		many[i] = fmt.Sprintf("k%d", i)
	}
	many[1100] = "av-0"
	if known, err := db.Known(ctx, many); err != nil || len(known) != 1 || !known["av-0"] {
		t.Errorf("Known(many) = %v, %v", known, err)
	}

	if last, ok, err := db.LatestFetchedAt(ctx, feed.Lots); err != nil || !ok || !last.Equal(at(1)) {
		t.Errorf("LatestFetchedAt = %v %v %v", last, ok, err)
	}

	s, err := db.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Lots != (LotStats{Total: 10, Active: 9, Deleted: 1}) {
		t.Errorf("lots = %+v", s.Lots)
	}
	if len(s.Months) != 2 || s.Months[0].Month != "2026-11" || s.Months[1].Month != "2026-12" ||
		s.Months[1].Observations != 12 || s.Months[1].First != "2026-12-01T00:00:00+08:00" {
		t.Errorf("months = %+v", s.Months)
	}
	if s.Refused.Count != 1 || s.Refused.ByDataset["lots"] != 1 || !strings.Contains(s.Refused.Latest[0].Reason, "of 9 active") ||
		s.Refused.Latest[0].Dataset != "lots" || s.Refused.Latest[0].FetchedAt != formatMilli(at(2).UnixMilli()) {
		t.Errorf("refused = %+v", s.Refused)
	}
	if s.Rejections.Count != 1 || s.Rejections.Latest[0].Reason != "undecodable" {
		t.Errorf("rejections = %+v", s.Rejections)
	}
	if d := s.Datasets[0]; d.Dataset != "lots" || d.LastKey != "lots-1" || d.Quality == nil || d.Quality.Lots.Disappeared != 1 {
		t.Errorf("lots dataset = %+v", d)
	}
	if d := s.Datasets[1]; d.LastKey != "av-dec" || d.Quality.Availability.Valid != 12 {
		t.Errorf("availability dataset = %+v", d)
	}
	if _, err := json.Marshal(s); err != nil {
		t.Fatal(err)
	}

	// A retracted snapshot is listed as such, and no longer as refused.
	if _, err := db.Retract(ctx, []string{"lots-bad", "av-dec"}, "test", func(context.Context, string) (*snapshot.Input, error) {
		return nil, fmt.Errorf("nothing to read")
	}); err == nil {
		t.Fatal("retracting av-dec needs to read the snapshots before it, and the read fails: want an error")
	}
	if _, err := db.Retract(ctx, []string{"lots-bad"}, "test", nil); err != nil {
		t.Fatal(err)
	}
	if s, err = db.Stats(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Refused.Count != 0 || s.Retractions.Count != 1 || s.Retractions.Latest[0].Key != "lots-bad" || s.Retractions.Latest[0].Reason != "test" {
		t.Errorf("after a retraction: refused %+v, retractions %+v", s.Refused, s.Retractions)
	}
}

// BenchmarkApplyAvailability applies live snapshots of 1,430 rows one to a
// transaction, as the loader does, and 32 to a transaction, as a backfill does.
func BenchmarkApplyAvailability(b *testing.B) {
	for _, batch := range []int{1, 32} {
		b.Run(fmt.Sprintf("%d a transaction", batch), func(b *testing.B) {
			db := newDB(b)
			apply(b, db, lotsInput("lots-0", at(0), genLots(1400, 0)))
			rows := genAvailability(1430, 70, 7)
			b.ReportAllocs()
			b.ResetTimer()
			var commit time.Duration
			for i := 0; i < b.N; i += batch {
				in := make([]snapshot.Input, 0, batch)
				for j := i; j < min(i+batch, b.N); j++ {
					in = append(in, availInput(fmt.Sprintf("av-%d", j), at(j+1), rows))
				}
				commit += apply(b, db, in...)[0].Commit
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/snapshot")
			b.ReportMetric(float64(commit.Microseconds())/float64(b.N)/1000, "commit-ms/snapshot")
		})
	}
}

func BenchmarkApplyLots(b *testing.B) {
	db := newDB(b)
	versions := [2][]feed.LotRow{genLots(1400, 0), genLots(1400, 1)}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		// Alternating versions: every lot changes every time.
		apply(b, db, lotsInput(fmt.Sprintf("lots-%d", i), at(i), versions[i%2]))
	}
	b.ReportMetric(float64(1400*b.N)/b.Elapsed().Seconds(), "rows/s")
}

// Stats reads the refused snapshots through the partial index
// snapshots_refused, whose size is the refusals', never along an index of
// the whole ledger (100,000 rows a year): left to itself SQLite grouped the
// refusals by dataset along snapshots_dataset_fetched (50 ms at a year).
func TestStatsReadsRefusalsThroughTheirIndex(t *testing.T) {
	db := newDB(t)
	for _, q := range []string{refusedByDataset, refusedLatest} {
		plan := strings.Join(query(t, db, "EXPLAIN QUERY PLAN "+strings.Replace(q, "LIMIT ?", "LIMIT 5", 1)), "\n")
		if !strings.Contains(plan, "USING INDEX snapshots_refused") || strings.Contains(plan, "snapshots_dataset_fetched") {
			t.Errorf("plan of %s:\n%s\nwant it along snapshots_refused", q, plan)
		}
	}
}
