package backfill_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/parking-newtaipei/parking-newtaipei/internal/feedtest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/snapshottest"
	"github.com/parking-newtaipei/parking-newtaipei/shared/load/backfill"
)

// BenchmarkBackfillPerSnapshot measures what one more live snapshot costs a
// backfill from a directory: read, checksum, gunzip, decode, parse and
// apply, with the defaults (8 readers, 32 snapshots a transaction), per
// snapshot of b.N (run it with -benchtime 3000x: fixed costs spread thin).
// "646 lots" is the payload the original project was measured on (~30% of
// the rows valid, the rest -9), "1430 rows" today's feed.
//
//	go test -run XXX -bench BackfillPerSnapshot -benchtime 3000x ./shared/load/backfill/
func BenchmarkBackfillPerSnapshot(b *testing.B) {
	for _, lots := range []int{646, 0} {
		name := fmt.Sprintf("%d lots", lots)
		if lots == 0 {
			name = fmt.Sprintf("%d rows", feedtest.SampleAvailabilityRows)
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			// Every fetch time in the past: the loader refuses one far ahead
			// of the store's write time of the snapshot, which is now.
			start := time.Now().Truncate(time.Minute).Add(-time.Duration(b.N+12) * 5 * time.Minute)
			st := fileStore(b)
			all := feedtest.SampleLots()
			if lots > 0 {
				all = all[:lots]
			}
			if _, _, err := snapshottest.Put(ctx, st, snapshottest.Lots(start.Add(-time.Minute), all)); err != nil {
				b.Fatal(err)
			}
			var g errgroup.Group
			g.SetLimit(4)
			for i := range b.N {
				g.Go(func() error {
					_, _, err := snapshottest.Put(ctx, st, snapshottest.AvailabilityOf(start.Add(time.Duration(i)*5*time.Minute), lots))
					return err
				})
			}
			if err := g.Wait(); err != nil {
				b.Fatal(err)
			}
			db := openDB(b, filepath.Join(b.TempDir(), "parking.db"))
			defer db.Close()
			bf, err := backfill.New(backfill.Config{Store: st, DB: db})
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			s, err := bf.Run(ctx, start.Add(-time.Hour), start.Add(time.Duration(b.N)*5*time.Minute))
			b.StopTimer()
			if err != nil || s.Applied != b.N+1 {
				b.Fatalf("%+v, %v: want %d applied", s, err, b.N+1)
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/snapshot")
			b.ReportMetric(float64(s.Rows)/float64(s.Applied), "rows/snapshot")
		})
	}
}
