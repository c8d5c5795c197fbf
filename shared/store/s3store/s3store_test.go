package s3store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
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
	"github.com/parking-newtaipei/parking-newtaipei/shared/store/storetest"
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

// TestConformance runs the store contract's suite against the S3 test
// server, with a prefix and two keys a page so that listings cross pages;
// the tests below are only what is particular to S3.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, _, _ := newStore(t)
		return s.WithPageSize(2)
	})
}

// Put writes the snapshot's metadata and its SHA-256 as S3's own checksum;
// Get's write time is the object's LastModified.
func TestPutMetadataAndWriteTime(t *testing.T) {
	ctx := context.Background()
	s, client, bucket := newStore(t)
	body, key, meta := object(feed.Lots, 0, "lots snapshot bytes")

	loc, err := s.Put(ctx, key, body, meta)
	if err != nil {
		t.Fatal(err)
	}
	if want := (store.Location{Bucket: bucket, Key: "snapshots/" + key}); loc != want {
		t.Fatalf("Put returned %v, want %v", loc, want)
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
	_, written, err := s.Get(ctx, loc, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if head.LastModified == nil || !written.Equal(*head.LastModified) {
		t.Errorf("Get says written at %v, the object's LastModified is %v", written, head.LastModified)
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

// A location outside the store, a bad key or checksum, and a bad state name
// are refused before any request is made.
func TestRefusedWithoutARequest(t *testing.T) {
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
		if _, _, err := s.Get(ctx, loc, 1<<20); !errors.Is(err, store.ErrOutside) {
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
	if err := s.WriteState(ctx, "cursor", make([]byte, store.MaxStateBytes+1)); !errors.Is(err, store.ErrTooLarge) {
		t.Errorf("WriteState over MaxStateBytes: %v, want ErrTooLarge", err)
	}
}

// Objects outside the prefix, and objects under it that are not snapshots
// (written by other tools), are never listed.
func TestListSkipsStrays(t *testing.T) {
	ctx := context.Background()
	s, client, bucket := newStore(t)
	body, key, meta := object(feed.Lots, 0, "lots")
	if _, err := s.Put(ctx, key, body, meta); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"elsewhere/" + key, key, "snapshots/lots/stray.txt", "snapshots/" + key + ".bak", "snapshotsX/" + key} {
		if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k), Body: strings.NewReader("x")}); err != nil {
			t.Fatal(err)
		}
	}
	var keys []string
	if err := s.List(ctx, "", "", func(o store.Object) error {
		keys = append(keys, o.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys, []string{key}) {
		t.Fatalf("List = %q, want only %s", keys, key)
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
	if got, _, err := s.Get(ctx, loc, 1<<20); err != nil || !bytes.Equal(got, body) {
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
