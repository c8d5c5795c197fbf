package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// This file holds the publication side of a store's backends: where the
// loader publishes what readers download (exports, database copies, Parquet).
// It is a contract apart from Store, because published objects are the
// opposite of snapshots: overwritten in place, typed for browsers and caches,
// and read by the public rather than by the loader.

// ErrExists: an object is already at the key of a write that asked for
// ObjectOptions.IfAbsent. The existing object is left as it is.
var ErrExists = errors.New("an object already exists at this key")

// ObjectOptions describe one published object.
type ObjectOptions struct {
	// ContentType and CacheControl are sent with the object (S3 serves them
	// back, and CloudFront honours them). A directory has no place for them.
	ContentType  string
	CacheControl string
	// IfAbsent writes the object only if nothing is at the key yet (ErrExists
	// otherwise): for objects promised never to change, such as the daily
	// database copies served as immutable.
	IfAbsent bool
}

// Destination receives published objects. A reader of the destination sees
// either the previous object or the whole new one, never part of one: S3's
// PutObject is atomic, and a directory gets a temp file renamed into place.
type Destination interface {
	// PutObject replaces the object at key (relative to the destination's
	// root) with body, read from its start to its end.
	PutObject(ctx context.Context, key string, body io.ReadSeeker, opts ObjectOptions) error
	// String is the destination's URL, for logs.
	String() string
}

// maxObjectKey bounds a published key well under S3's 1,024 bytes, so that
// a prefix always fits in front of it.
const maxObjectKey = 512

// CheckObjectKey refuses a key that is not a clean relative path of plain
// segments (letters, digits, '.', '_', '-', '='), one that starts a segment
// with a dot, and one that names a snapshot or a state document: publishing
// into the snapshot store by mistake must never replace what it holds.
func CheckObjectKey(key string) error {
	if key == "" || len(key) > maxObjectKey {
		return fmt.Errorf("object key %q: %w: want 1 to %d bytes", key, ErrOutside, maxObjectKey)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg[0] == '.' {
			return fmt.Errorf("object key %q: %w: empty segment or one starting with a dot", key, ErrOutside)
		}
		for _, r := range seg {
			ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-=", r)
			if !ok {
				return fmt.Errorf("object key %q: %w: %q is not allowed in a published key", key, ErrOutside, r)
			}
		}
	}
	if strings.HasPrefix(key, "_state/") {
		return fmt.Errorf("object key %q: %w: the store's state documents are not published objects", key, ErrOutside)
	}
	return nil
}

// CheckObjectOptions refuses an object without a Content-Type: a browser or
// a query engine given application/octet-stream does the wrong thing.
func CheckObjectOptions(key string, opts ObjectOptions) error {
	if opts.ContentType == "" {
		return fmt.Errorf("object %s: no Content-Type", key)
	}
	return nil
}
