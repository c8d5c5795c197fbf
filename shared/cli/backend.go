package cli

// This file opens a store or a queue from its URL, so the binaries'
// -store and -queue flags choose between the embedded backends (a directory,
// a SQLite file) and the AWS ones (S3, SQS) without knowing any of them.
//
//	file://DIR              store: filestore (file://./data/snapshots, file:///srv/snapshots)
//	s3://BUCKET/PREFIX      store: s3store
//	sqlite://PATH           queue: sqlitequeue (sqlite://./data/queue.db)
//	https://sqs.../ACCT/Q   queue: sqsqueue (any http(s) URL with a queue path)

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/parking-newtaipei/parking-newtaipei/shared/queue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue/sqlitequeue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue/sqsqueue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store/filestore"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store/s3store"
)

// BackendOptions apply to whichever backend the URL names; each uses what concerns it.
type BackendOptions struct {
	// Logger is passed to backends that log (SQS). Nil discards.
	Logger *slog.Logger
	// AWS adds options to the default AWS configuration (S3 and SQS).
	AWS []func(*config.LoadOptions) error
	// S3PathStyle selects path-style S3 addressing (as PARKING_S3_PATH_STYLE=true does).
	S3PathStyle bool
	// DeadLetterURL overrides the SQS dead-letter queue found in the RedrivePolicy.
	DeadLetterURL string
}

// scheme returns the URL's scheme and what follows "scheme://". Paths are
// taken verbatim, not parsed as URL paths, so that file://./data (a
// relative directory) means what it says.
func scheme(raw string) (string, string, bool) {
	s, rest, ok := strings.Cut(raw, "://")
	if !ok || s == "" {
		return "", "", false
	}
	return strings.ToLower(s), rest, true
}

// OpenStore opens the snapshot store at rawURL (file:// or s3://).
func OpenStore(ctx context.Context, rawURL string, opts BackendOptions) (store.Store, error) {
	s, rest, ok := scheme(rawURL)
	switch {
	case !ok:
		return nil, fmt.Errorf("store URL %q: no scheme; want file://DIR or s3://BUCKET/PREFIX", rawURL)
	case s == "file":
		if rest == "" {
			return nil, fmt.Errorf("store URL %q: no directory; want file://DIR", rawURL)
		}
		fs, err := filestore.Open(rest)
		if err != nil {
			return nil, fmt.Errorf("open store %s: %w", rawURL, err)
		}
		return fs, nil
	case s == "s3":
		return s3store.Open(ctx, rawURL, s3store.Options{PathStyle: opts.S3PathStyle, Config: opts.AWS})
	case s == "sqlite" || s == "http" || s == "https":
		return nil, fmt.Errorf("store URL %q is a queue URL; a store is file://DIR or s3://BUCKET/PREFIX", rawURL)
	default:
		return nil, fmt.Errorf("store URL %q: unknown scheme %q; want file://DIR or s3://BUCKET/PREFIX", rawURL, s)
	}
}

// OpenQueue opens the queue at rawURL (sqlite:// or an SQS queue URL).
func OpenQueue(ctx context.Context, rawURL string, opts BackendOptions) (queue.Queue, error) {
	s, rest, ok := scheme(rawURL)
	switch {
	case !ok:
		return nil, fmt.Errorf("queue URL %q: no scheme; want sqlite://PATH or an SQS queue URL", rawURL)
	case s == "sqlite":
		if rest == "" {
			return nil, fmt.Errorf("queue URL %q: no file; want sqlite://PATH", rawURL)
		}
		q, err := sqlitequeue.Open(ctx, rest, sqlitequeue.Options{})
		if err != nil {
			return nil, fmt.Errorf("open queue %s: %w", rawURL, err)
		}
		return q, nil
	case s == "http" || s == "https":
		u, err := url.Parse(rawURL)
		if err != nil || strings.Trim(u.Path, "/") == "" {
			return nil, fmt.Errorf("queue URL %q: want an SQS queue URL, https://sqs.REGION.amazonaws.com/ACCOUNT/NAME", rawURL)
		}
		return sqsqueue.Open(ctx, rawURL, sqsqueue.Options{Logger: opts.Logger, DeadLetterURL: opts.DeadLetterURL, Config: opts.AWS})
	case s == "file" || s == "s3":
		return nil, fmt.Errorf("queue URL %q is a store URL; a queue is sqlite://PATH or an SQS queue URL", rawURL)
	default:
		return nil, fmt.Errorf("queue URL %q: unknown scheme %q; want sqlite://PATH or an SQS queue URL", rawURL, s)
	}
}
