package extract_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/internal/feedtest"
	"github.com/parking-newtaipei/parking-newtaipei/shared/extract"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue/sqlitequeue"
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
	if _, _, err := store.Fetch(context.Background(), f.store, store.Location{Bucket: m.Bucket, Key: m.Key}, m.Size, m.SHA256, 1<<30); err != nil {
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
