// Package s3store keeps snapshots in S3 (s3://bucket/prefix), implementing
// store.Store.
//
// Snapshots are write-once: Put sends If-None-Match: * so a retried or
// replayed put can never replace a stored snapshot, and ChecksumSHA256 so S3
// itself refuses bytes damaged on the way. Get refuses any location outside
// the store's bucket and prefix before making a request, because the location
// comes from a queue message, which is input, not configuration.
package s3store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
)

// EnvPathStyle selects path-style addressing (http://host/bucket/key), which
// S3-compatible servers without bucket subdomains need.
const EnvPathStyle = "PARKING_S3_PATH_STYLE"

// The object metadata Put writes (S3 sends it as x-amz-meta-<name>).
const (
	MetaDataset       = "dataset"
	MetaFetchedAt     = "fetched-at"
	MetaContentSHA256 = "content-sha256"
	MetaFormatVersion = "format-version"
)

// stateDir holds the state documents under the prefix; no snapshot key can
// start with it, since snapshot keys start with a dataset name.
const stateDir = "_state/"

// Store is a snapshot store in one S3 bucket under one key prefix.
type Store struct {
	client   *s3.Client
	bucket   string
	prefix   string // without slashes at either end; "" is the bucket's root
	pageSize int32  // ListObjectsV2 MaxKeys; 0 lets S3 choose (1000)
}

var _ store.Store = (*Store)(nil)

// New returns the store for bucket and prefix (slashes at either end of the
// prefix are ignored) using client.
func New(client *s3.Client, bucket, prefix string) *Store {
	return &Store{client: client, bucket: bucket, prefix: strings.Trim(prefix, "/")}
}

// WithPageSize returns a copy of s that lists n keys per request (tests use a
// small n to exercise pagination).
func (s *Store) WithPageSize(n int32) *Store {
	c := *s
	c.pageSize = n
	return &c
}

// Options configure Open.
type Options struct {
	// PathStyle selects path-style addressing; PARKING_S3_PATH_STYLE=true
	// selects it too.
	PathStyle bool
	// Config adds options to the default AWS configuration (region,
	// credentials, HTTP client); the environment and the shared config
	// files are read as the SDK always does, including AWS_ENDPOINT_URL_S3.
	Config []func(*config.LoadOptions) error
}

// ParseURL splits s3://bucket/prefix.
func ParseURL(rawURL string) (bucket, prefix string, err error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", "", fmt.Errorf("store URL %q: %w", rawURL, err)
	}
	if u.Scheme != "s3" || u.Host == "" {
		return "", "", fmt.Errorf("store URL %q: want s3://bucket/prefix", rawURL)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", "", fmt.Errorf("store URL %q: only s3://bucket/prefix is understood (no query, fragment or user)", rawURL)
	}
	return u.Host, strings.Trim(u.Path, "/"), nil
}

// Open returns the store named by rawURL (s3://bucket/prefix), with a client
// built from the default AWS configuration: credential chain, region, and
// the SDK's own endpoint variables (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL).
func Open(ctx context.Context, rawURL string, opts Options) (*Store, error) {
	bucket, prefix, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	pathStyle := opts.PathStyle
	if v := os.Getenv(EnvPathStyle); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("%s=%q: want true or false", EnvPathStyle, v)
		}
		pathStyle = pathStyle || b
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts.Config...)
	if err != nil {
		return nil, fmt.Errorf("open %s: load AWS configuration: %w", rawURL, err)
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = pathStyle })
	return New(client, bucket, prefix), nil
}

// String is the store's URL.
func (s *Store) String() string {
	if s.prefix == "" {
		return "s3://" + s.bucket
	}
	return "s3://" + s.bucket + "/" + s.prefix
}

// root is what every key of the store starts with.
func (s *Store) root() string {
	if s.prefix == "" {
		return ""
	}
	return s.prefix + "/"
}

// Locate is the location of a snapshot key.
func (s *Store) Locate(key string) store.Location {
	return store.Location{Bucket: s.bucket, Key: s.root() + key}
}

// Put stores body at key unless an object is already there. S3 checks the
// SHA-256 sent with it (a damaged upload fails with BadDigest) and the
// If-None-Match condition (412 when the key exists); an existing object with
// the same SHA-256 counts as stored, so retries are safe.
func (s *Store) Put(ctx context.Context, key string, body []byte, meta store.Meta) (store.Location, error) {
	loc := s.Locate(key)
	if _, err := snapshot.ParseKey(key); err != nil {
		return loc, fmt.Errorf("put %s: %w: %v", loc, store.ErrOutside, err)
	}
	sum := sha256.Sum256(body)
	sumHex := hex.EncodeToString(sum[:])
	if meta.SHA256 != "" && !strings.EqualFold(meta.SHA256, sumHex) {
		return loc, fmt.Errorf("put %s: %w: body has sha256 %s, meta says %s", loc, store.ErrChecksum, sumHex, meta.SHA256)
	}
	md := map[string]string{MetaContentSHA256: sumHex}
	if meta.Dataset != "" {
		md[MetaDataset] = meta.Dataset
	}
	if !meta.FetchedAt.IsZero() {
		md[MetaFetchedAt] = meta.FetchedAt.UTC().Format(time.RFC3339Nano)
	}
	if meta.FormatVersion != 0 {
		md[MetaFormatVersion] = strconv.Itoa(meta.FormatVersion)
	}
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:         aws.String(s.bucket),
		Key:            aws.String(loc.Key),
		Body:           bytes.NewReader(body),
		ContentLength:  aws.Int64(int64(len(body))),
		ContentType:    aws.String("application/gzip"),
		ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(sum[:])),
		IfNoneMatch:    aws.String("*"),
		Metadata:       md,
	})
	if err == nil {
		return loc, nil
	}
	if !isConditionFailed(err) {
		return loc, fmt.Errorf("put %s: %w", loc, err)
	}
	// The key is taken: by this very snapshot (a retry, a replay) or by another.
	existing, err := s.existingSHA256(ctx, loc.Key, int64(len(body)))
	if err != nil {
		return loc, fmt.Errorf("put %s: an object exists; reading its checksum: %w", loc, err)
	}
	if existing != sumHex {
		return loc, fmt.Errorf("put %s: %w: stored sha256 %s, new %s", loc, store.ErrConflict, existing, sumHex)
	}
	return loc, nil
}

// isConditionFailed reports S3's answers to If-None-Match on an existing key:
// 412 PreconditionFailed, or 409 ConditionalRequestConflict while another
// conditional write of the same key is in progress.
func isConditionFailed(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "PreconditionFailed", "ConditionalRequestConflict":
			return true
		}
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		switch re.HTTPStatusCode() {
		case http.StatusPreconditionFailed:
			return true
		}
	}
	return false
}

// existingSHA256 is the hex SHA-256 of the object at key: from its metadata
// when Put wrote it, from its full-object checksum otherwise, and as a last
// resort by reading it (at most limit+1 bytes: a larger object differs anyway).
func (s *Store) existingSHA256(ctx context.Context, key string, limit int64) (string, error) {
	head, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket:       aws.String(s.bucket),
		Key:          aws.String(key),
		ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		return "", classify(err)
	}
	for k, v := range head.Metadata {
		if strings.EqualFold(k, MetaContentSHA256) && len(v) == 64 {
			return strings.ToLower(v), nil
		}
	}
	// A multipart object's checksum is a checksum of checksums ("...-N"),
	// not the object's own.
	if c := aws.ToString(head.ChecksumSHA256); c != "" && !strings.Contains(c, "-") {
		if raw, err := base64.StdEncoding.DecodeString(c); err == nil && len(raw) == sha256.Size {
			return hex.EncodeToString(raw), nil
		}
	}
	data, _, err := s.get(ctx, key, limit+1)
	if errors.Is(err, store.ErrTooLarge) {
		return "larger than the new object", nil
	}
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// Get returns the bytes of the snapshot at loc, which must be in this
// store's bucket under its prefix and have a snapshot key, and its
// LastModified; it reads at most maxBytes and fails with store.ErrTooLarge beyond.
func (s *Store) Get(ctx context.Context, loc store.Location, maxBytes int64) ([]byte, time.Time, error) {
	if _, err := s.Resolve(loc); err != nil {
		return nil, time.Time{}, err
	}
	return s.get(ctx, loc.Key, maxBytes)
}

// Resolve checks loc without any request, so a forged message cannot make
// the loader read another bucket or another prefix, and returns its
// snapshot key relative to the prefix.
func (s *Store) Resolve(loc store.Location) (string, error) {
	if loc.Bucket != s.bucket {
		return "", fmt.Errorf("%s: %w: bucket %q is not the store's bucket %q", loc, store.ErrOutside, loc.Bucket, s.bucket)
	}
	rel, ok := strings.CutPrefix(loc.Key, s.root())
	if !ok {
		return "", fmt.Errorf("%s: %w: key is not under the prefix %q", loc, store.ErrOutside, s.root())
	}
	if _, err := snapshot.ParseKey(rel); err != nil {
		return "", fmt.Errorf("%s: %w: %v", loc, store.ErrOutside, err)
	}
	return rel, nil
}

// get reads the object at key (relative to the bucket) and its LastModified.
func (s *Store) get(ctx context.Context, key string, maxBytes int64) ([]byte, time.Time, error) {
	name := "s3://" + s.bucket + "/" + key
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(key),
		// Have S3 return the stored checksum, which the SDK then verifies
		// as the body is read.
		ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("get %s: %w", name, classify(err))
	}
	defer out.Body.Close()
	if n := aws.ToInt64(out.ContentLength); n > maxBytes {
		return nil, time.Time{}, fmt.Errorf("get %s: %w: %d bytes, at most %d allowed", name, store.ErrTooLarge, n, maxBytes)
	}
	// Without it the write time would be unknown, and the caller could not
	// tell that from "written at the zero time": refuse rather than guess.
	if out.LastModified == nil {
		return nil, time.Time{}, fmt.Errorf("get %s: the answer has no Last-Modified", name)
	}
	data, err := io.ReadAll(io.LimitReader(out.Body, maxBytes+1))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("get %s: read body: %w", name, err)
	}
	if int64(len(data)) > maxBytes {
		return nil, time.Time{}, fmt.Errorf("get %s: %w: more than %d bytes", name, store.ErrTooLarge, maxBytes)
	}
	return data, out.LastModified.UTC(), nil
}

// classify wraps the SDK errors that are permanent for a given key in the
// store's sentinel errors; every other error is left as it is: transient.
func classify(err error) error {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return fmt.Errorf("%w: %v", store.ErrNotFound, err)
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound {
		// A HEAD 404 has no body, so no error code; but a missing bucket is
		// configuration, not a missing object.
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != "NoSuchBucket" {
			return fmt.Errorf("%w: %v", store.ErrNotFound, err)
		}
	}
	return err
}

// List calls fn for each snapshot whose key (relative to the store) starts
// with prefix and sorts after startAfter, in key order: S3 lists keys in
// byte order, which for snapshot keys is fetch-time order. Objects that are
// not snapshots (state documents, strays) are not listed.
func (s *Store) List(ctx context.Context, prefix, startAfter string, fn func(store.Object) error) error {
	in := &s3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket),
		Prefix: aws.String(s.root() + prefix),
	}
	if startAfter != "" {
		in.StartAfter = aws.String(s.root() + startAfter)
	}
	if s.pageSize > 0 {
		in.MaxKeys = aws.Int32(s.pageSize)
	}
	p := s3.NewListObjectsV2Paginator(s.client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list %s/%s: %w", s, prefix, err)
		}
		for _, o := range page.Contents {
			rel, ok := strings.CutPrefix(aws.ToString(o.Key), s.root())
			if !ok {
				continue
			}
			if _, err := snapshot.ParseKey(rel); err != nil {
				continue
			}
			if err := fn(store.Object{Key: rel, Size: aws.ToInt64(o.Size)}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Store) stateKey(name string) (string, error) {
	if err := store.CheckStateName(name); err != nil {
		return "", fmt.Errorf("state in %s: %w", s, err)
	}
	return s.root() + stateDir + name, nil
}

// ReadState returns the named state document, or store.ErrNotFound.
func (s *Store) ReadState(ctx context.Context, name string) ([]byte, error) {
	key, err := s.stateKey(name)
	if err != nil {
		return nil, err
	}
	data, _, err := s.get(ctx, key, store.MaxStateBytes)
	return data, err
}

// WriteState replaces the named state document. Unlike snapshots, state is
// overwritten, so no condition is sent; S3 makes a PUT atomic.
func (s *Store) WriteState(ctx context.Context, name string, body []byte) error {
	key, err := s.stateKey(name)
	if err != nil {
		return err
	}
	if len(body) > store.MaxStateBytes {
		return fmt.Errorf("write state s3://%s/%s: %w: %d bytes, at most %d allowed", s.bucket, key, store.ErrTooLarge, len(body), store.MaxStateBytes)
	}
	sum := sha256.Sum256(body)
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:         aws.String(s.bucket),
		Key:            aws.String(key),
		Body:           bytes.NewReader(body),
		ContentLength:  aws.Int64(int64(len(body))),
		ContentType:    aws.String("application/json"),
		ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(sum[:])),
	})
	if err != nil {
		return fmt.Errorf("write state s3://%s/%s: %w", s.bucket, key, err)
	}
	return nil
}
