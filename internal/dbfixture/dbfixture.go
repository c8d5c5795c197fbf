// Package dbfixture builds a database as a loader would have it after a day of
// real-looking feeds, for the tests of what reads it (the read API, the map).
package dbfixture

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/internal/feedtest"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
)

// Deleted are the lots the fixture's second lots snapshot leaves out
// (soft-deleted): one with a position, one more.
var Deleted = []string{"010001", "010003"}

// Build builds a database at path as a loader would have it after a day:
// the sample lots (real 2019 rows and synthetic ones, some without a
// position), a second lots snapshot without Deleted, and a live
// snapshot every 5 minutes for the 24 hours up to end. It returns the open
// database.
func Build(t testing.TB, path string, end time.Time, opts sqlite.Options) *sqlite.DB {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, path, opts)
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	end = end.Truncate(5 * time.Minute)
	start := end.Add(-24 * time.Hour)
	lots := feedtest.SampleLots()
	var kept []feed.LotRow
	for _, l := range lots {
		if l.ID != Deleted[0] && l.ID != Deleted[1] {
			kept = append(kept, l)
		}
	}
	in := []snapshot.Input{
		{Key: "fixture/lots-0", Dataset: feed.Lots, FetchedAt: start.Add(-time.Hour), Lots: lots},
		{Key: "fixture/lots-1", Dataset: feed.Lots, FetchedAt: start.Add(-30 * time.Minute), Lots: kept},
	}
	for i := 0; !start.Add(time.Duration(i) * 5 * time.Minute).After(end); i++ {
		at := start.Add(time.Duration(i) * 5 * time.Minute)
		in = append(in, snapshot.Input{Key: fmt.Sprintf("fixture/availability-%03d", i), Dataset: feed.Availability,
			FetchedAt: at, Availability: feedtest.SampleAvailability(uint64(i))})
	}
	for start := 0; start < len(in); start += 50 {
		if _, err := db.Apply(ctx, in[start:min(start+50, len(in))]...); err != nil {
			t.Fatalf("fixture: %v", err)
		}
	}
	return db
}
