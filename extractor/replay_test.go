package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/internal/awstest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/consumetest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/dbtest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/snapshottest"
	"github.com/parking-newtaipei/parking-newtaipei/shared/clock"
	"github.com/parking-newtaipei/parking-newtaipei/shared/load/consume"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue/sqlitequeue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue/sqsqueue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store/filestore"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store/s3store"
)

var replayStart = time.Date(2026, 11, 26, 23, 0, 0, 0, clock.Taipei)

const replayInterval = 10 * time.Minute

// install is a store with snapshots, a local queue and a database path.
type install struct {
	dir, storeURL, queueURL, db string
	env                         map[string]string
}

func newInstall(t *testing.T, n int) *install {
	t.Helper()
	dir := t.TempDir()
	st, err := filestore.Open(filepath.Join(dir, "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	if err := snapshottest.Month(context.Background(), st, replayStart, n, replayInterval, 4); err != nil {
		t.Fatal(err)
	}
	in := &install{dir: dir, storeURL: "file://" + filepath.Join(dir, "snapshots"),
		queueURL: "sqlite://" + filepath.Join(dir, "queue.db"), db: filepath.Join(dir, "parking.db")}
	in.env = map[string]string{"PARKING_STORE": in.storeURL, "PARKING_QUEUE": in.queueURL}
	return in
}

func (in *install) replay(t *testing.T, args ...string) (ReplaySummary, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := program().Run(context.Background(), append([]string{"replay"}, args...), &stdout, &stderr, func(k string) string { return in.env[k] })
	var s ReplaySummary
	out := stdout.String()
	if i := strings.Index(out, "{"); i >= 0 {
		if err := json.Unmarshal([]byte(out[i:]), &s); err != nil {
			t.Fatalf("summary %q: %v", out, err)
		}
	}
	if code != 0 {
		t.Logf("replay %v: exit %d\n%s", args, code, stderr.String())
	}
	return s, out, code
}

// drain runs the loader's consume loop in this process until the queue is
// empty, as the one running loader would, and returns its apply results.
func (in *install) drain(t *testing.T) []snapshot.Result {
	t.Helper()
	ctx := context.Background()
	q, err := sqlitequeue.Open(ctx, strings.TrimPrefix(in.queueURL, "sqlite://"), sqlitequeue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	st, err := filestore.Open(strings.TrimPrefix(in.storeURL, "file://"))
	if err != nil {
		t.Fatal(err)
	}
	results, err := consumetest.Drain(ctx, in.db, consume.Config{Queue: q, Store: st, Wait: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return results
}

func span(n int) []string {
	return []string{"-from", replayStart.Format(time.RFC3339), "-to", replayStart.Add(time.Duration(n) * replayInterval).Format(time.RFC3339)}
}

// TestReplayTwice: replaying a range twice through the loader adds nothing
// the second time: every message is acknowledged by the ledger.
func TestReplayTwice(t *testing.T) {
	const n = 25
	in := newInstall(t, n)
	for _, d := range []string{"lots", "availability"} {
		s, _, code := in.replay(t, append(span(n), "-dataset", d)...)
		if code != 0 || s.Enqueued != s.Listed || s.LastKey == "" {
			t.Fatalf("%s: exit %d, %+v", d, code, s)
		}
	}
	first := in.drain(t)
	if len(first) != n+2 {
		t.Fatalf("%d applied, want %d", len(first), n+2)
	}
	want := dbtest.Dump(t, in.db)

	s, _, code := in.replay(t, append(span(n), "-dataset", "availability")...)
	if code != 0 || s.Enqueued != n {
		t.Fatalf("second replay: exit %d, %+v", code, s)
	}
	for _, r := range in.drain(t) {
		if !r.AlreadyApplied {
			t.Errorf("%s applied again: %+v", r.Key, r)
		}
	}
	if dbtest.Dump(t, in.db) != want {
		t.Fatal("the second replay changed the database")
	}
}

// TestReplayResume: an interrupted replay continues from the printed resume
// point and the loader ends with every snapshot of the range.
func TestReplayResume(t *testing.T) {
	const n = 20
	in := newInstall(t, n)
	s, _, _ := in.replay(t, "-dataset", "availability", "-from", replayStart.Format(time.RFC3339),
		"-to", replayStart.Add(7*replayInterval).Format(time.RFC3339))
	if s.Enqueued != 7 || s.ResumeFrom.IsZero() {
		t.Fatalf("%+v", s)
	}
	s2, _, _ := in.replay(t, "-dataset", "availability", "-from", s.ResumeFrom.Format(time.RFC3339),
		"-to", replayStart.Add(n*replayInterval).Format(time.RFC3339))
	if s2.Enqueued != n-7+1 {
		t.Fatalf("resumed: %+v, want the last key again and the rest", s2)
	}
	applied := 0
	for _, r := range in.drain(t) {
		if !r.AlreadyApplied {
			applied++
		}
	}
	if applied != n {
		t.Fatalf("%d applied, want %d", applied, n)
	}
}

// TestReplayDryRun lists the keys and sends nothing.
func TestReplayDryRun(t *testing.T) {
	in := newInstall(t, 5)
	s, out, code := in.replay(t, append(span(5), "-dataset", "availability", "-dry-run")...)
	if code != 0 || s.Listed != 5 || s.Enqueued != 0 || strings.Count(out, "availability/2026/11/") != 5 {
		t.Fatalf("exit %d, %+v\n%s", code, s, out)
	}
	q, err := sqlitequeue.Open(context.Background(), filepath.Join(in.dir, "queue.db"), sqlitequeue.Options{})
	if err == nil {
		defer q.Close()
		if visible, inFlight, _ := q.Len(context.Background()); visible+inFlight != 0 {
			t.Fatalf("a dry run enqueued %d messages", visible+inFlight)
		}
	}
}

// TestReplaySQS replays from the S3 test server onto the SQS test server:
// 23 messages (three SendMessageBatch calls), in key order, each naming the
// object's bucket and full key.
func TestReplaySQS(t *testing.T) {
	const n = 23
	client, bucket := awstest.S3(t)
	st := s3store.New(client, bucket, "p")
	if err := snapshottest.Month(context.Background(), st, replayStart, n, replayInterval, 4); err != nil {
		t.Fatal(err)
	}
	q := awstest.NewQueue(t, awstest.QueueOptions{NoDeadLetter: true})
	awstest.Setenv(t)
	in := &install{env: map[string]string{"PARKING_STORE": "s3://" + bucket + "/p", "PARKING_QUEUE": q.URL}}
	s, _, code := in.replay(t, append(span(n), "-dataset", "availability")...)
	if code != 0 || s.Enqueued != n {
		t.Fatalf("exit %d, %+v", code, s)
	}
	sq, err := openTestSQS(context.Background(), q.URL)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for len(keys) < n {
		ds, err := sq.Receive(context.Background(), 10, time.Second, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 0 {
			t.Fatalf("queue empty after %d messages", len(keys))
		}
		for _, d := range ds {
			m, err := queue.DecodeMessage(d.Body)
			if err != nil {
				t.Fatal(err)
			}
			if m.Bucket != bucket || !strings.HasPrefix(m.Key, "p/availability/") {
				t.Fatalf("message %+v", m)
			}
			keys = append(keys, m.Key)
		}
	}
	if len(keys) != n {
		t.Fatalf("%d messages, want %d", len(keys), n)
	}
}

// openTestSQS opens the queue as the loader would (the environment points the SDK at the test server).
func openTestSQS(ctx context.Context, url string) (queue.Queue, error) {
	return sqsqueue.Open(ctx, url, sqsqueue.Options{})
}
