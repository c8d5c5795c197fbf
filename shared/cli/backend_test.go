package cli_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/internal/awstest"
	"github.com/parking-newtaipei/parking-newtaipei/shared/cli"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue/sqlitequeue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue/sqsqueue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store/filestore"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store/s3store"
)

// roundTrip puts one object in s and reads it back.
func roundTrip(t *testing.T, s store.Store) {
	t.Helper()
	ctx := context.Background()
	body := []byte("snapshot bytes")
	sum := sha256.Sum256(body)
	at := time.Date(2025, 3, 14, 1, 2, 3, 0, time.UTC)
	key := snapshot.Key(feed.Lots, at, hex.EncodeToString(sum[:]))
	loc, err := s.Put(ctx, key, body, store.Meta{Dataset: "lots", FetchedAt: at, SHA256: hex.EncodeToString(sum[:]), FormatVersion: 1})
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := s.Get(ctx, loc, 1<<20)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("Get = %q, %v", got, err)
	}
}

// sendReceive sends one message through q and receives it.
func sendReceive(t *testing.T, q queue.Queue) {
	t.Helper()
	ctx := context.Background()
	if err := q.Send(ctx, []byte(`{"hello":1}`)); err != nil {
		t.Fatal(err)
	}
	ds, err := q.Receive(ctx, 10, 5*time.Second, time.Minute)
	if err != nil || len(ds) != 1 || string(ds[0].Body) != `{"hello":1}` {
		t.Fatalf("Receive = %+v, %v", ds, err)
	}
	if err := q.Delete(ctx, ds...); err != nil {
		t.Fatal(err)
	}
}

func TestOpenStoreFile(t *testing.T) {
	dir := t.TempDir()
	s, err := cli.OpenStore(context.Background(), "file://"+dir, cli.BackendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*filestore.Store); !ok {
		t.Fatalf("file:// opened a %T", s)
	}
	roundTrip(t, s)
}

func TestOpenStoreRelativeFile(t *testing.T) {
	t.Chdir(t.TempDir())
	s, err := cli.OpenStore(context.Background(), "file://./data/snapshots", cli.BackendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, s)
	if m, _ := filepath.Glob("data/snapshots/lots/2025/03/14/*.json.gz"); len(m) != 1 {
		t.Fatalf("file://./data/snapshots wrote %v, want one snapshot under ./data/snapshots", m)
	}
}

func TestOpenQueueSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	q, err := cli.OpenQueue(context.Background(), "sqlite://"+path, cli.BackendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if _, ok := q.(*sqlitequeue.Queue); !ok {
		t.Fatalf("sqlite:// opened a %T", q)
	}
	sendReceive(t, q)
}

func TestOpenStoreS3(t *testing.T) {
	_, bucket := awstest.S3(t)
	awstest.Setenv(t)
	s, err := cli.OpenStore(context.Background(), "s3://"+bucket+"/snapshots", cli.BackendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*s3store.Store); !ok {
		t.Fatalf("s3:// opened a %T", s)
	}
	roundTrip(t, s)
}

func TestOpenQueueSQS(t *testing.T) {
	tq := awstest.NewQueue(t, awstest.QueueOptions{})
	awstest.Setenv(t)
	q, err := cli.OpenQueue(context.Background(), tq.URL, cli.BackendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if _, ok := q.(*sqsqueue.Queue); !ok {
		t.Fatalf("%s opened a %T", tq.URL, q)
	}
	sendReceive(t, q)
}

func TestUnknownURLs(t *testing.T) {
	ctx := context.Background()
	for _, u := range []string{"ftp://x/y", "./data/snapshots", "sqlite://./q.db", "https://sqs.us-east-1.amazonaws.com/1/q", "file://"} {
		if _, err := cli.OpenStore(ctx, u, cli.BackendOptions{}); err == nil || !strings.Contains(err.Error(), u) {
			t.Errorf("OpenStore(%q): %v, want an error naming the URL", u, err)
		}
	}
	for _, u := range []string{"ftp://x/y", "data/queue.db", "file://./data", "s3://b/p", "https://sqs.us-east-1.amazonaws.com", "sqlite://"} {
		if _, err := cli.OpenQueue(ctx, u, cli.BackendOptions{}); err == nil || !strings.Contains(err.Error(), u) {
			t.Errorf("OpenQueue(%q): %v, want an error naming the URL", u, err)
		}
	}
}
