package s3store

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/parking-newtaipei/parking-newtaipei/internal/awstest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/desttest"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
)

// readObject reads a published object back with its headers, as a browser
// or CloudFront would get them.
func readObject(client *s3.Client, bucket, prefix string) desttest.Read {
	return func(t *testing.T, key string) (desttest.Object, error) {
		out, err := client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(prefix + key)})
		if err != nil {
			return desttest.Object{}, classify(err)
		}
		defer out.Body.Close()
		b, err := io.ReadAll(out.Body)
		return desttest.Object{Body: b, ContentType: aws.ToString(out.ContentType), CacheControl: aws.ToString(out.CacheControl), HasHeaders: true}, err
	}
}

func TestDestination(t *testing.T) {
	client, bucket := awstest.S3(t)
	desttest.Run(t, New(client, bucket, "/public/"), readObject(client, bucket, "public/"))
}

// A body over the multipart threshold goes up in parts, each with its
// SHA-256, and arrives whole with its headers; IfAbsent holds for it too.
func TestDestinationMultipart(t *testing.T) {
	ctx := context.Background()
	client, bucket := awstest.S3(t)
	dest := New(client, bucket, "public")
	read := readObject(client, bucket, "public/")
	const part = 5 << 20 // S3's smallest part
	body := make([]byte, 2*part+12345)
	rand.Read(body)
	opts := store.ObjectOptions{ContentType: "application/vnd.sqlite3", CacheControl: "public, max-age=300"}
	if err := dest.putObject(ctx, "parking.db", bytes.NewReader(body), opts, part, part); err != nil {
		t.Fatal(err)
	}
	got, err := read(t, "parking.db")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Body, body) || got.ContentType != opts.ContentType || got.CacheControl != opts.CacheControl {
		t.Fatalf("multipart object: %d bytes (want %d), equal %v, Content-Type %q, Cache-Control %q",
			len(got.Body), len(body), bytes.Equal(got.Body, body), got.ContentType, got.CacheControl)
	}
	head, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("public/parking.db"), PartNumber: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	if n := aws.ToInt32(head.PartsCount); n != 3 {
		t.Errorf("the object has %d parts, want 3", n)
	}

	daily := opts
	daily.IfAbsent = true
	if err := dest.putObject(ctx, "db/parking-2026-11-26.db", bytes.NewReader(body), daily, part, part); err != nil {
		t.Fatal(err)
	}
	other := bytes.Repeat([]byte{1}, len(body))
	if err := dest.putObject(ctx, "db/parking-2026-11-26.db", bytes.NewReader(other), daily, part, part); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second IfAbsent multipart put: %v, want ErrExists", err)
	}
	if got, err := read(t, "db/parking-2026-11-26.db"); err != nil || !bytes.Equal(got.Body, body) {
		t.Fatalf("after the refused put the daily copy changed (err %v)", err)
	}
	// Nothing of the refused upload is left pending (it was aborted).
	ups, err := client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if len(ups.Uploads) != 0 {
		t.Errorf("%d multipart uploads left pending", len(ups.Uploads))
	}
}
