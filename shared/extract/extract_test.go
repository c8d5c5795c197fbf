package extract_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/internal/feedtest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/snapshottest"
	"github.com/parking-newtaipei/parking-newtaipei/shared/extract"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue/sqlitequeue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store/filestore"
)

type fixture struct {
	feed  *feedtest.Server
	store *filestore.Store
	queue *sqlitequeue.Queue
	job   *extract.Job
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{feed: feedtest.NewServer(t)}
	var err error
	if f.store, err = filestore.Open(filepath.Join(dir, "snapshots")); err != nil {
		t.Fatal(err)
	}
	if f.queue, err = sqlitequeue.Open(context.Background(), filepath.Join(dir, "queue.db"), sqlitequeue.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.queue.Close() })
	fetcher, err := extract.NewClient(extract.ClientConfig{BaseURL: f.feed.URL})
	if err != nil {
		t.Fatal(err)
	}
	f.job = &extract.Job{Fetcher: fetcher, Store: f.store, Queue: f.queue}
	return f
}

func (f *fixture) count(t *testing.T) (snapshots, messages int) {
	t.Helper()
	if err := f.store.List(context.Background(), "", "", func(store.Object) error { snapshots++; return nil }); err != nil {
		t.Fatal(err)
	}
	v, fl, err := f.queue.Len(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return snapshots, v + fl
}

func TestStoresThenEnqueuesAMessageThatPointsAtTheSnapshot(t *testing.T) {
	f := newFixture(t)
	res, err := f.job.Run(context.Background(), extract.Request{Dataset: feed.Availability, Format: feed.JSON})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Stored || !res.Enqueued || res.Rows != feedtest.SampleAvailabilityRows || res.Responses != 2 {
		t.Fatalf("result %+v", res)
	}
	ds, err := f.queue.Receive(context.Background(), 10, 0, time.Minute)
	if err != nil || len(ds) != 1 {
		t.Fatalf("receive: %v (%d)", err, len(ds))
	}
	m, err := queue.DecodeMessage(ds[0].Body)
	if err != nil {
		t.Fatal(err)
	}
	ref := snapshot.Ref{Location: store.Location{Bucket: m.Bucket, Key: m.Key}, Dataset: m.Dataset, Size: m.Size, SHA256: m.SHA256, FetchedAt: m.FetchedAt}
	if _, err := snapshot.Read(context.Background(), f.store, ref, snapshot.ReadOptions{}); err != nil {
		t.Fatalf("the message does not point at a verifiable snapshot: %v", err)
	}
	if m.Rows != res.Rows || !m.FetchedAt.Equal(res.FetchedAt) {
		t.Fatalf("message %+v does not describe result %+v", m, res)
	}
}

func TestUnchangedLotsAreSkippedUnlessForced(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.job.Run(ctx, extract.Request{Dataset: feed.Lots, Format: feed.JSON}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.job.Run(ctx, extract.Request{Dataset: feed.Lots, Format: feed.JSON}); !errors.Is(err, extract.ErrUnchanged) {
		t.Fatalf("second fetch of the same lots: %v, want ErrUnchanged", err)
	}
	// The same content in another row order is still unchanged.
	rows := feedtest.SampleLots()
	for i, j := 0, len(rows)-1; i < j; i, j = i+1, j-1 {
		rows[i], rows[j] = rows[j], rows[i]
	}
	f.feed.SetLots(rows)
	if _, err := f.job.Run(ctx, extract.Request{Dataset: feed.Lots, Format: feed.JSON}); !errors.Is(err, extract.ErrUnchanged) {
		t.Fatalf("reordered lots: %v, want ErrUnchanged", err)
	}
	if s, m := f.count(t); s != 1 || m != 1 {
		t.Fatalf("after skips: %d snapshots, %d messages; want 1 and 1", s, m)
	}
	if _, err := f.job.Run(ctx, extract.Request{Dataset: feed.Lots, Format: feed.JSON, Force: true}); err != nil {
		t.Fatalf("forced: %v", err)
	}
	rows[0].Name = "changed"
	f.feed.SetLots(rows)
	if _, err := f.job.Run(ctx, extract.Request{Dataset: feed.Lots, Format: feed.JSON}); err != nil {
		t.Fatalf("changed lots: %v", err)
	}
	if s, m := f.count(t); s != 3 || m != 3 {
		t.Fatalf("after force and change: %d snapshots, %d messages; want 3 and 3", s, m)
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	f := newFixture(t)
	res, err := f.job.Run(context.Background(), extract.Request{Dataset: feed.Lots, Format: feed.JSON, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stored || res.Enqueued || res.Key == "" || res.SHA256 == "" {
		t.Fatalf("dry run result %+v", res)
	}
	if s, m := f.count(t); s != 0 || m != 0 {
		t.Fatalf("dry run wrote %d snapshots and %d messages", s, m)
	}
	if _, err := f.store.ReadState(context.Background(), "lots-content"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("dry run recorded a content hash: %v", err)
	}
}

// The job takes the rows the fetcher parsed (to accept each body) and does
// not parse the snapshot again for the content hash.
func TestRunUsesTheFetchersRows(t *testing.T) {
	f := newFixture(t)
	lots := feedtest.SampleLots()
	fetcher := rowsFetcher{snap: snapshottest.Lots(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC), lots),
		rows: extract.Rows{Lots: lots[:3]}}
	job := &extract.Job{Fetcher: fetcher, Store: f.store, Queue: f.queue}
	res, err := job.Run(context.Background(), extract.Request{Dataset: feed.Lots, Format: feed.JSON, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows != 3 || res.ContentHash != feed.LotsContentHash(lots[:3]) {
		t.Fatalf("result %+v: want the fetcher's 3 rows and their content hash", res)
	}
}

// rowsFetcher returns a fixed snapshot and rows.
type rowsFetcher struct {
	snap *snapshot.Snapshot
	rows extract.Rows
}

func (r rowsFetcher) Fetch(context.Context, feed.Dataset, feed.Format) (*snapshot.Snapshot, extract.Rows, error) {
	return r.snap, r.rows, nil
}

func TestRejectedFeedStoresNothing(t *testing.T) {
	f := newFixture(t)
	f.feed.RejectCSVFile(feed.Availability, true)
	_, err := f.job.Run(context.Background(), extract.Request{Dataset: feed.Availability, Format: feed.CSV})
	if err == nil {
		t.Fatal("the WAF page was accepted")
	}
	if s, m := f.count(t); s != 0 || m != 0 {
		t.Fatalf("a rejected fetch wrote %d snapshots and %d messages", s, m)
	}
}

// Issue 13, item 2: the lots URL answering the live feed's rows (IDs and
// nothing else) stores nothing; the error names the URL and what is missing.
func TestWrongShapeStoresNothing(t *testing.T) {
	f := newFixture(t)
	var rows []feed.LotRow
	for _, r := range feedtest.SampleAvailability(1) {
		rows = append(rows, feed.LotRow{ID: r.ID})
	}
	f.feed.SetLots(rows)
	for _, dry := range []bool{true, false} {
		_, err := f.job.Run(context.Background(), extract.Request{Dataset: feed.Lots, Format: feed.JSON, DryRun: dry})
		want := f.feed.URL + feedtest.JSONPath(feed.Lots) + "?page=0&size=1000"
		if !errors.Is(err, extract.ErrShape) || !strings.Contains(err.Error(), want) ||
			!strings.Contains(err.Error(), "no row has a value for NAME, AREA, ADDRESS, TW97X, TW97Y, TOTALCAR") {
			t.Fatalf("dry run %v: %v; want ErrShape naming %s and the missing columns", dry, err, want)
		}
	}
	if s, m := f.count(t); s != 0 || m != 0 {
		t.Fatalf("a wrong-shape fetch wrote %d snapshots and %d messages", s, m)
	}
	if _, err := f.store.ReadState(context.Background(), "lots-content"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a wrong-shape fetch recorded a content hash: %v", err)
	}
}

// Issue 13, item 11: an identical lots list is skipped only within
// UnchangedWindow of the last stored one, so the next day's fetch stores it
// again and the loader judges it again (a refused one cannot hide for ever).
func TestUnchangedLotsAreStoredAgainAfterTheWindow(t *testing.T) {
	f := newFixture(t)
	lots := feedtest.SampleLots()
	t0 := time.Date(2026, 11, 26, 18, 0, 30, 0, time.UTC)
	run := func(at time.Time) error {
		job := &extract.Job{Fetcher: rowsFetcher{snap: snapshottest.Lots(at, lots), rows: extract.Rows{Lots: lots}}, Store: f.store, Queue: f.queue}
		_, err := job.Run(context.Background(), extract.Request{Dataset: feed.Lots, Format: feed.JSON})
		return err
	}
	if err := run(t0); err != nil {
		t.Fatal(err)
	}
	if err := run(t0.Add(extract.UnchangedWindow - time.Second)); !errors.Is(err, extract.ErrUnchanged) {
		t.Fatalf("within the window: %v, want ErrUnchanged", err)
	}
	if err := run(t0.Add(24 * time.Hour)); err != nil {
		t.Fatalf("the next day's identical list: %v, want it stored", err)
	}
	if err := run(t0.Add(25 * time.Hour)); !errors.Is(err, extract.ErrUnchanged) {
		t.Fatalf("an hour after that: %v, want ErrUnchanged (the window starts again)", err)
	}
	if s, m := f.count(t); s != 2 || m != 2 {
		t.Fatalf("%d snapshots and %d messages; want 2 and 2", s, m)
	}
}
