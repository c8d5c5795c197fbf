package backfill_test

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/parking-newtaipei/parking-newtaipei/internal/awstest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/dbtest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/snapshottest"
	"github.com/parking-newtaipei/parking-newtaipei/reliability"
	"github.com/parking-newtaipei/parking-newtaipei/shared/clock"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/load/backfill"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store/filestore"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store/s3store"
)

// start is 23:00 Taipei, 15:00 UTC: a range that crosses a UTC day.
var start = time.Date(2026, 11, 26, 23, 0, 0, 0, time.FixedZone("Asia/Taipei", 8*3600))

const (
	n        = 40
	interval = 15 * time.Minute // 40 snapshots: 10 hours, two UTC days
)

func fileStore(t testing.TB) store.Store {
	t.Helper()
	st, err := filestore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func s3Store(t *testing.T) store.Store {
	t.Helper()
	client, bucket := awstest.S3(t)
	return s3store.New(client, bucket, "snapshots").WithPageSize(7) // small pages: paging is exercised
}

func openDB(t testing.TB, path string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func run(t *testing.T, st store.Store, path string, cfg backfill.Config, from, to time.Time) backfill.Summary {
	t.Helper()
	db := openDB(t, path)
	defer db.Close()
	cfg.Store, cfg.DB = st, db
	b, err := backfill.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := b.Run(context.Background(), from, to)
	if err != nil {
		t.Fatalf("run: %v (summary %+v)", err, s)
	}
	return s
}

func dump(t *testing.T, path string) string {
	t.Helper()
	return dbtest.Dump(t, path)
}

func TestRunTwiceFile(t *testing.T) { testRunTwice(t, fileStore(t)) }
func TestRunTwiceS3(t *testing.T)   { testRunTwice(t, s3Store(t)) }

// testRunTwice: a backfill applies everything in the range once, in batches,
// and a second run downloads nothing and changes nothing.
func testRunTwice(t *testing.T, st store.Store) {
	ctx := context.Background()
	if err := snapshottest.Month(ctx, st, start, n, interval, 4); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "parking.db")
	from, to := start, start.Add(n*interval)
	var batches int
	s := run(t, st, path, backfill.Config{BatchSize: 7, Concurrency: 3, OnBatch: func([]snapshot.Result) { batches++ }}, from, to)
	if s.Listed != n+2 || s.Applied != n+2 || s.Failed != 0 || s.Refused != 0 || s.Skipped != 0 {
		t.Fatalf("first run: %+v", s)
	}
	if batches < (n+2)/7 {
		t.Errorf("%d transactions for %d snapshots in batches of 7", batches, n+2)
	}
	if s.Rows == 0 || s.Bytes == 0 || s.LastKey == "" {
		t.Errorf("summary lacks rows, bytes or last key: %+v", s)
	}
	first := dump(t, path)
	if obs := dbtest.Count(t, path, "availability", ""); obs == 0 {
		t.Fatal("no observations")
	}
	if lots := dbtest.Count(t, path, "parking_lots", "deleted_at IS NOT NULL"); lots != 1 {
		t.Errorf("%d deleted lots, want 1 (the second lots snapshot drops one)", lots)
	}

	s = run(t, st, path, backfill.Config{}, from, to)
	if s.Listed != n+2 || s.Skipped != n+2 || s.Applied != 0 || s.Bytes != 0 {
		t.Fatalf("second run: %+v (want every snapshot skipped without a download)", s)
	}
	if second := dump(t, path); second != first {
		t.Fatal("the second backfill changed the database")
	}
}

// TestRangeAndDatasets: only snapshots in [from, to) of the chosen dataset are applied.
func TestRangeAndDatasets(t *testing.T) {
	ctx := context.Background()
	st := fileStore(t)
	if err := snapshottest.Month(ctx, st, start, n, interval, 4); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "parking.db")
	from, to := start.Add(10*interval), start.Add(20*interval)
	s := run(t, st, path, backfill.Config{Datasets: []feed.Dataset{feed.Availability}}, from, to)
	if s.Listed != 10 || s.Applied != 10 {
		t.Fatalf("%+v, want 10 availability snapshots", s)
	}
	if got := dbtest.Query(t, path, "SELECT count(DISTINCT recorded_at) FROM availability")[0][0]; got != "10" {
		t.Fatalf("%s fetch times stored, want 10", got)
	}
	// The rest, then all: the result equals one run over everything.
	run(t, st, path, backfill.Config{}, start, start.Add(n*interval))
	whole := filepath.Join(t.TempDir(), "whole.db")
	run(t, st, whole, backfill.Config{}, start, start.Add(n*interval))
	if dump(t, path) != dump(t, whole) {
		t.Fatal("a backfill in parts differs from one in a single run")
	}
}

// TestCorruptObject: a damaged snapshot is counted as failed, the rest go in,
// and the summary says to run again.
func TestCorruptObject(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := filestore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := snapshottest.Month(ctx, st, start, 5, interval, 1); err != nil {
		t.Fatal(err)
	}
	// An object whose name claims a checksum it does not have.
	bad := snapshottest.Availability(start.Add(time.Minute))
	res, _, err := snapshottest.Put(ctx, st, bad)
	if err != nil {
		t.Fatal(err)
	}
	fake := strings.Replace(res.Key, res.SHA256[:16], "0000000000000000", 1)
	other := snapshottest.Availability(start.Add(2 * time.Minute))
	res2, _, _ := snapshottest.Put(ctx, st, other)
	data, _, err := st.Get(ctx, st.Locate(res2.Key), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(ctx, fake, data, store.Meta{}); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	path := filepath.Join(t.TempDir(), "parking.db")
	s := run(t, st, path, backfill.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))}, start, start.Add(time.Hour))
	if s.Failed != 1 || s.Applied != 4+2+2 {
		t.Fatalf("%+v, want 1 failed and the others applied", s)
	}
	if s.Err() == nil || !strings.Contains(logs.String(), "checksum mismatch") {
		t.Fatalf("no failure reported: err %v, log:\n%s", s.Err(), logs.String())
	}
}

// TestReconcile applies only the recent snapshots missing from the ledger.
func TestReconcile(t *testing.T) {
	ctx := context.Background()
	st := fileStore(t)
	if err := snapshottest.Month(ctx, st, start, n, interval, 4); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "parking.db")
	// The loader applied everything but the last five snapshots.
	run(t, st, path, backfill.Config{}, start, start.Add((n-5)*interval))
	now := start.Add(n*interval - interval/2)
	db := openDB(t, path)
	defer db.Close()
	b, err := backfill.New(backfill.Config{Store: st, DB: db, Clock: clock.NewFake(now)})
	if err != nil {
		t.Fatal(err)
	}
	s, err := b.Reconcile(ctx, 3*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if s.Applied != 5 || s.Skipped != 12-5 {
		t.Fatalf("%+v, want the 5 missing applied and 7 skipped", s)
	}
}

// TestProgressBar: on a terminal the bar is redrawn in place and ends at the total.
func TestProgressBar(t *testing.T) {
	st := fileStore(t)
	if err := snapshottest.Month(context.Background(), st, start, 10, interval, 4); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	run(t, st, filepath.Join(t.TempDir(), "p.db"), backfill.Config{Progress: &out, Terminal: true}, start, start.Add(10*interval))
	last := out.String()[strings.LastIndex(out.String(), "\r")+1:]
	if !strings.Contains(last, "12/12") || !strings.Contains(last, "100.0%") || !strings.Contains(last, "/s") || !strings.Contains(last, "ETA") {
		t.Fatalf("last bar %q", last)
	}
	if backfill.IsTerminal(&out) {
		t.Error("a buffer is not a terminal")
	}
}

// TestEmptyDecadeOnS3CostsAFewRequests: a backfill or reconcile over ten
// years of which the bucket holds one day lists each dataset once from the
// range's start (StartAfter) and stops past its end. Counted on the wire,
// through a proxy in front of the S3 test server: the day-by-day listing
// it replaces made two LIST requests per day, 7,300 for the decade.
func TestEmptyDecadeOnS3CostsAFewRequests(t *testing.T) {
	ctx := context.Background()
	client, bucket := awstest.S3(t)
	srv := awstest.S3Endpoint(t)
	px, err := reliability.NewProxy(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	counted := s3.NewFromConfig(awstest.Config(t, srv.AccessKey, srv.SecretKey), func(o *s3.Options) {
		o.BaseEndpoint = aws.String(px.URL)
		o.UsePathStyle = true
	})
	if err := snapshottest.Month(ctx, s3store.New(client, bucket, "snapshots"), start, n, interval, 4); err != nil {
		t.Fatal(err)
	}
	st := s3store.New(counted, bucket, "snapshots")
	requests := func(since int) (lists, others int) {
		for _, r := range px.Requests()[since:] {
			if strings.Contains(r.Query, "list-type=2") {
				lists++
			} else {
				others++
			}
		}
		return lists, others
	}

	path := filepath.Join(t.TempDir(), "parking.db")
	decade := []struct {
		name     string
		from, to time.Time
		applied  int
	}{
		{"an empty decade before", start.AddDate(-10, 0, 0), start, 0},
		{"an empty decade after", start.AddDate(0, 1, 0), start.AddDate(10, 1, 0), 0},
		{"a decade holding one day", start.AddDate(-5, 0, 0), start.AddDate(5, 0, 0), n + 2},
	}
	for _, d := range decade {
		before := len(px.Requests())
		s := run(t, st, path, backfill.Config{}, d.from, d.to)
		lists, others := requests(before)
		if s.Applied != d.applied {
			t.Errorf("%s: %d applied, want %d", d.name, s.Applied, d.applied)
		}
		// One LIST per dataset and per 1,000 keys; a GET per snapshot applied.
		if lists > 2*(1+(n+2)/1000) || others != d.applied || lists+others >= 10+d.applied {
			t.Errorf("%s: %d LIST and %d other requests, want at most 2 LIST and a GET per snapshot applied", d.name, lists, others)
		}
		t.Logf("%s: %d LIST requests, %d GET requests, %d applied", d.name, lists, others, s.Applied)
	}
}
