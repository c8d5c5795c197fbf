// Package store holds the snapshot store's contract. Backends (a local
// directory, S3) live in their own packages; package storetest is the suite
// every backend must pass, and package cli opens one from its URL.
package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"
)

var (
	// ErrNotFound: no object at that key (or no state under that name).
	ErrNotFound = errors.New("not found")
	// ErrConflict: an object already exists at the key with different content.
	ErrConflict = errors.New("a different object already exists at this key")
	// ErrOutside: a location outside this store (another bucket, a key outside
	// the prefix, or not a snapshot key), or a state name that is not a plain
	// name. Permanent: reading again never helps.
	ErrOutside = errors.New("location outside the configured store")
	// ErrTooLarge: the object is larger than the caller allows. Permanent.
	ErrTooLarge = errors.New("object too large")
	// ErrChecksum: the object's bytes do not have the expected size or SHA-256. Permanent.
	ErrChecksum = errors.New("checksum mismatch")
)

// Location is where an object is, as a queue message names it.
type Location struct {
	// Bucket is empty for stores that have none (a local directory).
	Bucket string
	// Key is the full object key, including any prefix of the store.
	Key string
}

func (l Location) String() string {
	if l.Bucket == "" {
		return l.Key
	}
	return "s3://" + l.Bucket + "/" + l.Key
}

// Meta travels with a stored snapshot (as S3 object metadata, for example).
type Meta struct {
	Dataset       string
	FetchedAt     time.Time
	SHA256        string // hex SHA-256 of the stored bytes
	FormatVersion int
}

// Object is one listed snapshot.
type Object struct {
	// Key is relative to the store's root: the snapshot key (see snapshot.Key).
	Key  string
	Size int64
}

// MaxStateBytes caps a state document: they are small (a cursor, a content
// hash), and reading one must not load an arbitrary object into memory.
const MaxStateBytes = 1 << 20

// stateName is the shape of a state document's name: one path element that
// is the same file name on every backend (no leading dot, no "..").
var stateName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,99}(\.[A-Za-z0-9_-]{1,20}){0,2}$`)

// CheckStateName refuses, with ErrOutside, a state name that is not letters,
// digits, '_' and '-' with at most two '.'-extensions: a name must never
// reach another document, a snapshot or outside the store.
func CheckStateName(name string) error {
	if !stateName.MatchString(name) {
		return fmt.Errorf("state name %q: %w: want letters, digits, '_' or '-', with at most two '.'-extensions", name, ErrOutside)
	}
	return nil
}

// Store keeps snapshots (write once) and a few small named state documents
// (overwritable). Package storetest holds the tests every Store must pass.
type Store interface {
	// Put stores body under key (relative to the store's root) unless an
	// object is already there: one with the same SHA-256 counts as stored,
	// one with a different SHA-256 is ErrConflict. A stored snapshot is never
	// overwritten, so its write time (see Get) is that of the first Put. A
	// key that is not a snapshot key is ErrOutside; a meta.SHA256 that is not
	// the body's is ErrChecksum.
	Put(ctx context.Context, key string, body []byte, meta Meta) (Location, error)
	// Get returns the object's bytes and its write time: when the store
	// itself wrote the object (S3's LastModified, in whole seconds; a file's
	// modification time), in UTC. Unlike anything in a message or in the
	// object, the write time cannot be forged by whoever sends messages.
	// Get refuses with ErrOutside a location this store does not own, with
	// ErrTooLarge an object over maxBytes (without reading it all), and
	// answers ErrNotFound when nothing is there.
	Get(ctx context.Context, loc Location, maxBytes int64) (data []byte, written time.Time, err error)
	// Locate is the location of a key relative to the store's root.
	Locate(key string) Location
	// Resolve is Locate's inverse: the snapshot key of loc, or ErrOutside
	// when loc is not a snapshot of this store. It makes no request, so a
	// forged location is refused before anything is read or acknowledged.
	Resolve(loc Location) (string, error)
	// List calls fn for each snapshot whose key starts with prefix and sorts
	// after startAfter, in key order (which is fetch-time order). Only
	// snapshot keys are listed: never state documents, writes in progress or
	// strays. An error from fn stops the listing and is returned (wrapped or not).
	List(ctx context.Context, prefix, startAfter string, fn func(Object) error) error
	// ReadState returns the named state document, or ErrNotFound. State
	// documents are never listed and never readable through Get.
	ReadState(ctx context.Context, name string) ([]byte, error)
	// WriteState replaces the named state document atomically: a reader sees
	// the old document or the new one. A name CheckStateName refuses is
	// ErrOutside; a body over MaxStateBytes is ErrTooLarge.
	WriteState(ctx context.Context, name string, body []byte) error
	// String is the store's URL, for logs.
	String() string
}
