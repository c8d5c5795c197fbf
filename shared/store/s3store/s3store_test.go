package s3store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/parking-newtaipei/parking-newtaipei/internal/awstest"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store/s3store"
)

var t0 = time.Date(2025, 3, 14, 1, 2, 3, 0, time.UTC)

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// object returns a body and its snapshot key, fetched i minutes after t0.
func object(d feed.Dataset, i int, body string) ([]byte, string, store.Meta) {
	b := []byte(body)
	at := t0.Add(time.Duration(i) * time.Minute)
	return b, snapshot.Key(d, at, sha(b)), store.Meta{Dataset: string(d), FetchedAt: at, SHA256: sha(b), FormatVersion: snapshot.Version}
}

func newStore(t *testing.T) (*s3store.Store, *s3.Client, string) {
	client, bucket := awstest.S3(t)
	return s3store.New(client, bucket, "/snapshots/"), client, bucket
}

func TestPutGet(t *testing.T) {
	ctx := context.Background()
	s, client, bucket := newStore(t)
	body, key, meta := object(feed.Lots, 0, "lots snapshot bytes")

	loc, err := s.Put(ctx, key, body, meta)
	if err != nil {
		t.Fatal(err)
	}
	if want := (store.Location{Bucket: bucket, Key: "snapshots/" + key}); loc != want || s.Locate(key) != want {
		t.Fatalf("Put returned %v, Locate %v; want %v", loc, s.Locate(key), want)
	}
	got, err := s.Get(ctx, loc, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, body) {
		t.Fatalf("Get = %q, want %q", got, body)
	}
	if _, err := store.Fetch(ctx, s, loc, int64(len(body)), sha(body), 1<<20); err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if _, err := store.Fetch(ctx, s, loc, int64(len(body)), sha([]byte("other")), 1<<20); !errors.Is(err, store.ErrChecksum) {
		t.Fatalf("Fetch with the wrong sha256: %v, want ErrChecksum", err)
	}

	head, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(loc.Key), ChecksumMode: "ENABLED"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		s3store.MetaDataset:       "lots",
		s3store.MetaFetchedAt:     "2025-03-14T01:02:03Z",
		s3store.MetaContentSHA256: sha(body),
		s3store.MetaFormatVersion: "1",
	}
	for k, v := range want {
		if head.Metadata[k] != v {
			t.Errorf("metadata %s = %q, want %q (all: %v)", k, head.Metadata[k], v, head.Metadata)
		}
	}
	sum := sha256.Sum256(body)
	if c := aws.ToString(head.ChecksumSHA256); c != base64.StdEncoding.EncodeToString(sum[:]) {
		t.Errorf("stored ChecksumSHA256 = %q, want the body's", c)
	}
}

func TestPutRetryWithSameContentSucceeds(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newStore(t)
	body, key, meta := object(feed.Availability, 0, "availability")
	for i := 0; i < 3; i++ {
		if _, err := s.Put(ctx, key, body, meta); err != nil {
			t.Fatalf("put %d: %v", i+1, err)
		}
	}
}

func TestPutDifferentContentConflicts(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newStore(t)
	body, key, meta := object(feed.Lots, 0, "first")
	loc, err := s.Put(ctx, key, body, meta)
	if err != nil {
		t.Fatal(err)
	}
	other := []byte("second, different")
	_, err = s.Put(ctx, key, other, store.Meta{Dataset: "lots", FetchedAt: t0, SHA256: sha(other), FormatVersion: 1})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second put: %v, want ErrConflict", err)
	}
	got, err := s.Get(ctx, loc, 1<<20)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("after the conflict the object is %q (%v), want the first body", got, err)
	}
}

// An object written by something else (no metadata) is compared by its
// checksum or, failing that, its bytes.
func TestPutOverObjectWithoutMetadata(t *testing.T) {
	ctx := context.Background()
	s, client, bucket := newStore(t)
	body, key, meta := object(feed.Lots, 0, "written by another tool")
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String("snapshots/" + key), Body: bytes.NewReader(body),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, key, body, meta); err != nil {
		t.Fatalf("put of the same bytes: %v", err)
	}
	if _, err := s.Put(ctx, key, append(body, '!'), store.Meta{}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("put of other bytes: %v, want ErrConflict", err)
	}
}

// The server, not only the SDK, checks ChecksumSHA256: bytes that do not
// match it (damaged on the way) are refused with BadDigest and not stored.
func TestServerRejectsCorruptedUpload(t *testing.T) {
	ctx := context.Background()
	client, bucket := awstest.S3(t)
	sent := []byte("the bytes that were meant")
	damaged := []byte("the bytes that arrived!!")
	sum := sha256.Sum256(sent)
	_, err := client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:         aws.String(bucket),
		Key:            aws.String("corrupt"),
		Body:           bytes.NewReader(damaged),
		ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(sum[:])),
	})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "BadDigest" {
		t.Fatalf("put with a wrong checksum: %v, want BadDigest", err)
	}
	if _, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("corrupt")}); err == nil {
		t.Fatal("the corrupted upload was stored")
	}
}

// noRequests is an S3 client that fails the test on any request.
func noRequests(t *testing.T) *s3.Client {
	return s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String("http://127.0.0.1:1"),
		UsePathStyle: true,
		Credentials:  aws.AnonymousCredentials{},
		HTTPClient: smithyhttp.ClientDoFunc(func(r *http.Request) (*http.Response, error) {
			t.Errorf("unexpected request %s %s", r.Method, r.URL)
			return nil, errors.New("no requests allowed")
		}),
	})
}

func TestGetOutsideMakesNoRequest(t *testing.T) {
	ctx := context.Background()
	s := s3store.New(noRequests(t), "parking", "snapshots")
	_, key, _ := object(feed.Lots, 0, "x")
	for _, loc := range []store.Location{
		{Bucket: "other", Key: "snapshots/" + key},
		{Bucket: "", Key: "snapshots/" + key},
		{Bucket: "parking", Key: key},
		{Bucket: "parking", Key: "snapshotsX/" + key},
		{Bucket: "parking", Key: "other/" + key},
		{Bucket: "parking", Key: "snapshots/../" + key},
		{Bucket: "parking", Key: "snapshots/_state/cursor"},
		{Bucket: "parking", Key: "snapshots/lots/2025/03/14/x.json.gz"},
		{Bucket: "parking", Key: "snapshots/" + key + "/.."},
	} {
		if _, err := s.Get(ctx, loc, 1<<20); !errors.Is(err, store.ErrOutside) {
			t.Errorf("Get(%v): %v, want ErrOutside", loc, err)
		}
	}
	if _, err := s.Put(ctx, "../x", []byte("x"), store.Meta{}); !errors.Is(err, store.ErrOutside) {
		t.Errorf("Put of a non-snapshot key: %v, want ErrOutside", err)
	}
	if _, err := s.Put(ctx, key, []byte("x"), store.Meta{SHA256: sha([]byte("y"))}); !errors.Is(err, store.ErrChecksum) {
		t.Errorf("Put with a wrong meta SHA256: %v, want ErrChecksum", err)
	}
	if _, err := s.ReadState(ctx, "../x"); !errors.Is(err, store.ErrOutside) {
		t.Errorf("ReadState(../x): %v, want ErrOutside", err)
	}
}

func TestGetSizeCap(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newStore(t)
	body, key, meta := object(feed.Lots, 0, strings.Repeat("x", 1000))
	loc, err := s.Put(ctx, key, body, meta)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, loc, 999); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("Get with cap 999 of 1000 bytes: %v, want ErrTooLarge", err)
	}
	if got, err := s.Get(ctx, loc, 1000); err != nil || len(got) != 1000 {
		t.Fatalf("Get with cap 1000: %d bytes, %v", len(got), err)
	}
}

func TestGetNotFound(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newStore(t)
	_, key, _ := object(feed.Lots, 0, "never stored")
	if _, err := s.Get(ctx, s.Locate(key), 1<<20); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get of a missing key: %v, want ErrNotFound", err)
	}
}

func TestListPaginatesInKeyOrder(t *testing.T) {
	ctx := context.Background()
	s, client, bucket := newStore(t)
	s = s.WithPageSize(2)
	var lots []string
	for i := 0; i < 7; i++ {
		// Fetch times across two days, stored out of order.
		j := (i * 5) % 7
		body, key, meta := object(feed.Lots, j*300, fmt.Sprintf("lots %d", j))
		if _, err := s.Put(ctx, key, body, meta); err != nil {
			t.Fatal(err)
		}
		lots = append(lots, key)
	}
	body, avKey, meta := object(feed.Availability, 1, "availability")
	if _, err := s.Put(ctx, avKey, body, meta); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteState(ctx, "cursor", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	// Objects outside the prefix or not snapshots are never listed.
	for _, k := range []string{"elsewhere/" + lots[0], "snapshots/lots/stray.txt"} {
		if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k), Body: strings.NewReader("x")}); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(lots)

	list := func(prefix, after string) []string {
		t.Helper()
		var keys []string
		err := s.List(ctx, prefix, after, func(o store.Object) error {
			if o.Size <= 0 {
				t.Errorf("%s: size %d", o.Key, o.Size)
			}
			keys = append(keys, o.Key)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return keys
	}
	if got := list("lots/", ""); !slices.Equal(got, lots) {
		t.Errorf("List(lots/) =\n%v\nwant\n%v", got, lots)
	}
	if got := list("lots/", lots[2]); !slices.Equal(got, lots[3:]) {
		t.Errorf("List(lots/, after %s) =\n%v\nwant\n%v", lots[2], got, lots[3:])
	}
	if got, want := list("", ""), append(append([]string{}, avKey), lots...); !slices.Equal(got, want) {
		t.Errorf("List(\"\") =\n%v\nwant\n%v", got, want)
	}
	day := snapshot.DayPrefix(feed.Lots, t0)
	var wantDay []string
	for _, k := range lots {
		if strings.HasPrefix(k, day) {
			wantDay = append(wantDay, k)
		}
	}
	if got := list(day, ""); len(wantDay) == len(lots) || !slices.Equal(got, wantDay) {
		t.Errorf("List(%s) = %v, want %v (of %d)", day, got, wantDay, len(lots))
	}

	stop := errors.New("stop")
	n := 0
	err := s.List(ctx, "", "", func(store.Object) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("List stops at fn's first error: %v after %d calls", err, n)
	}
}

func TestState(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newStore(t)
	if _, err := s.ReadState(ctx, "cursor"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ReadState before any write: %v, want ErrNotFound", err)
	}
	for _, v := range []string{`{"n":1}`, `{"n":2}`} {
		if err := s.WriteState(ctx, "cursor", []byte(v)); err != nil {
			t.Fatal(err)
		}
		got, err := s.ReadState(ctx, "cursor")
		if err != nil || string(got) != v {
			t.Fatalf("ReadState = %q, %v; want %q", got, err, v)
		}
	}
}

// Open builds its client from the standard AWS environment: the SDK's own
// AWS_ENDPOINT_URL_S3 and PARKING_S3_PATH_STYLE point it at the test server.
func TestOpenFromEnvironment(t *testing.T) {
	ctx := context.Background()
	_, bucket := awstest.S3(t)
	awstest.Setenv(t)
	s, err := s3store.Open(ctx, "s3://"+bucket+"/env/prefix/", s3store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.String(), "s3://"+bucket+"/env/prefix"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	body, key, meta := object(feed.Lots, 0, "via the environment")
	loc, err := s.Put(ctx, key, body, meta)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, loc, 1<<20); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("Get = %q, %v", got, err)
	}
}

func TestParseURL(t *testing.T) {
	for _, c := range []struct{ url, bucket, prefix string }{
		{"s3://b/p", "b", "p"},
		{"s3://b/p/q/", "b", "p/q"},
		{"s3://b", "b", ""},
	} {
		b, p, err := s3store.ParseURL(c.url)
		if err != nil || b != c.bucket || p != c.prefix {
			t.Errorf("ParseURL(%q) = %q, %q, %v", c.url, b, p, err)
		}
	}
	for _, bad := range []string{"s3:///p", "file:///x", "s3://b/p?x=1", "b/p"} {
		if _, _, err := s3store.ParseURL(bad); err == nil {
			t.Errorf("ParseURL(%q) accepted", bad)
		}
	}
	t.Setenv(s3store.EnvPathStyle, "maybe")
	if _, err := s3store.Open(context.Background(), "s3://b/p", s3store.Options{}); err == nil || !strings.Contains(err.Error(), s3store.EnvPathStyle) {
		t.Errorf("Open with %s=maybe: %v", s3store.EnvPathStyle, err)
	}
}
