package snapshot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
)

// This file is the one way from a stored snapshot to an apply's Input: the
// consume loop (from a queue message), backfill and reconcile (from a
// listing) and the extractor's replay all read through Read, so a snapshot is
// verified the same way whoever reads it.

// ErrInvalid wraps every error that says a stored snapshot is not what its
// key or its message says it is, or holds rows that cannot be parsed.
// Reading it again never helps.
var ErrInvalid = errors.New("invalid snapshot")

// invalidError keeps its message as written and matches ErrInvalid.
type invalidError struct{ err error }

func (e invalidError) Error() string        { return e.err.Error() }
func (e invalidError) Unwrap() error        { return e.err }
func (e invalidError) Is(target error) bool { return target == ErrInvalid }

func invalid(format string, a ...any) error { return invalidError{fmt.Errorf(format, a...)} }

// ErrUnappliable wraps every error that says the database can never take a
// snapshot's rows, whatever its state: the rows themselves break a rule of
// the schema (a value too large for it, a constraint). Applying it again
// never helps; a failing database (full, busy, an I/O error) is not this.
var ErrUnappliable = errors.New("snapshot can never be applied")

// IsPermanent reports whether err says that reading or applying the snapshot
// can never succeed, however often it is tried: the location is outside the
// store, the object is too large, its bytes are not the announced ones, it
// cannot be decoded, it is not what its key or message says, or its rows
// cannot be stored (ErrUnappliable). Anything else (the store unreachable, a
// missing object that a restore may bring back, the database failing) may
// pass on a later try.
func IsPermanent(err error) bool {
	return errors.Is(err, ErrInvalid) || errors.Is(err, ErrCorrupt) || errors.Is(err, ErrUnappliable) ||
		errors.Is(err, store.ErrOutside) || errors.Is(err, store.ErrChecksum) || errors.Is(err, store.ErrTooLarge)
}

// Ref is what a reader knows of a stored snapshot before reading it. A
// listing knows the key and size; a queue message also says where the object
// is, its dataset, its full SHA-256 and its exact fetch time, and each of
// those it says must hold.
type Ref struct {
	// Key is the snapshot key, relative to the store's root. Empty: the key
	// Location resolves to.
	Key string
	// Location is where the object is, as a message names it. Zero: the
	// store's location of Key.
	Location store.Location
	// Dataset is the dataset a message announces. Empty: the key's.
	Dataset feed.Dataset
	// Size is the object's size in bytes. 0: unknown.
	Size int64
	// SHA256 is the object's full hex SHA-256, as a message gives it. Empty:
	// the object is checked against the 16-hex prefix its key carries.
	SHA256 string
	// FetchedAt is the exact fetch time a message gives. Zero: the object is
	// checked against its key's time, to the second.
	FetchedAt time.Time
}

// ReadOptions carry the reader's settings into the read and the Input.
type ReadOptions struct {
	// MaxObjectBytes caps the object read. 0: MaxObjectBytes.
	MaxObjectBytes int64
	// AllowMassDelete is copied into the Input (see Input.AllowMassDelete).
	AllowMassDelete bool
	// Fetched, when set, is told how many bytes the store returned and how
	// long getting and checking them took, before they are decoded (for the
	// store-read metric and a backfill's byte count). err is the store's
	// error or the size or checksum mismatch.
	Fetched func(bytes int, took time.Duration, err error)
}

// Check verifies what can be verified of ref without reading the object: the
// location belongs to st, the key has a snapshot key's shape, and the
// dataset, checksum and fetch time a message gives agree with the key. It
// returns ref with Key and Location filled in. A consumer checks a message
// before asking the ledger about its key, so that a forged one is refused
// rather than acknowledged.
func (r Ref) Check(st store.Store) (Ref, KeyInfo, error) {
	if r.Location == (store.Location{}) {
		if r.Key == "" {
			return r, KeyInfo{}, invalid("snapshot reference without a key or location")
		}
		r.Location = st.Locate(r.Key)
	}
	key, err := st.Resolve(r.Location)
	if err != nil {
		return r, KeyInfo{}, err
	}
	if r.Key != "" && r.Key != key {
		return r, KeyInfo{}, fmt.Errorf("%w: %s is key %s in %s, not %s", store.ErrOutside, r.Location, key, st, r.Key)
	}
	r.Key = key
	info, err := ParseKey(key)
	if err != nil {
		return r, info, invalidError{err}
	}
	if r.Dataset != "" && r.Dataset != info.Dataset {
		return r, info, invalid("message says dataset %s but key %s holds %s", r.Dataset, key, info.Dataset)
	}
	if r.SHA256 != "" && (len(r.SHA256) < len(info.SHAPrefix) || r.SHA256[:len(info.SHAPrefix)] != info.SHAPrefix) {
		return r, info, fmt.Errorf("%w: message says sha256 %s but key %s carries %s", store.ErrChecksum, r.SHA256, key, info.SHAPrefix)
	}
	if !r.FetchedAt.IsZero() && !r.FetchedAt.Truncate(time.Second).Equal(info.FetchedAt) {
		return r, info, invalid("key %s says fetched at %s, message says %s", key,
			info.FetchedAt.Format(time.RFC3339), r.FetchedAt.UTC().Format(time.RFC3339Nano))
	}
	return r, info, nil
}

// Read reads the snapshot ref names from st and returns it as an apply's
// Input, after verifying everything once: the reference (Check), the size,
// the checksum (the full SHA-256 when ref gives it, else the key's prefix),
// the gzip and JSON (Decode), that the snapshot's own dataset and fetch
// second are the key's and its fetch time the message's, and that every
// response parses as rows. IsPermanent tells a failure no retry can fix.
func Read(ctx context.Context, st store.Store, ref Ref, opts ReadOptions) (*Input, error) {
	ref, info, err := ref.Check(st)
	if err != nil {
		return nil, err
	}
	maxBytes := opts.MaxObjectBytes
	if maxBytes <= 0 {
		maxBytes = MaxObjectBytes
	}
	start := time.Now()
	data, sum, written, err := fetch(ctx, st, ref, info, maxBytes)
	if opts.Fetched != nil {
		opts.Fetched(len(data), time.Since(start), err)
	}
	if err != nil {
		return nil, err
	}
	snap, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", ref.Key, err)
	}
	if snap.Dataset != info.Dataset {
		return nil, invalid("snapshot %s holds %s, the key says %s", ref.Key, snap.Dataset, info.Dataset)
	}
	if !snap.FetchedAt.Truncate(time.Second).Equal(info.FetchedAt) {
		return nil, invalid("snapshot %s was fetched at %s, the key says %s", ref.Key,
			snap.FetchedAt.Format(time.RFC3339Nano), info.FetchedAt.Format(time.RFC3339))
	}
	if !ref.FetchedAt.IsZero() && !snap.FetchedAt.Equal(ref.FetchedAt) {
		return nil, invalid("snapshot %s was fetched at %s, message says %s", ref.Key,
			snap.FetchedAt.Format(time.RFC3339Nano), ref.FetchedAt.UTC().Format(time.RFC3339Nano))
	}
	in := &Input{
		Key: ref.Key, SHA256: sum, Size: int64(len(data)), StoredAt: written, Dataset: snap.Dataset, FetchedAt: snap.FetchedAt,
		AllowMassDelete: opts.AllowMassDelete,
	}
	if in.Lots, in.Availability, err = snap.Rows(); err != nil {
		return nil, invalid("snapshot %s: unparseable: %w", ref.Key, err)
	}
	return in, nil
}

// fetch gets the object's bytes and checks their size and checksum, so that
// nothing unverified is ever decoded. It returns the hex SHA-256.
func fetch(ctx context.Context, st store.Store, ref Ref, info KeyInfo, maxBytes int64) ([]byte, string, time.Time, error) {
	if ref.Size > maxBytes {
		return nil, "", time.Time{}, fmt.Errorf("get %s: %w: %d bytes, at most %d allowed", ref.Location, store.ErrTooLarge, ref.Size, maxBytes)
	}
	data, written, err := st.Get(ctx, ref.Location, maxBytes)
	if err != nil {
		return data, "", written, fmt.Errorf("get %s: %w", ref.Location, err)
	}
	if ref.Size > 0 && int64(len(data)) != ref.Size {
		return data, "", written, fmt.Errorf("get %s: %w: %d bytes, expected %d", ref.Location, store.ErrChecksum, len(data), ref.Size)
	}
	h := sha256.Sum256(data)
	sum := hex.EncodeToString(h[:])
	switch {
	case ref.SHA256 != "" && sum != ref.SHA256:
		return data, "", written, fmt.Errorf("get %s: %w: sha256 %s, message says %s", ref.Location, store.ErrChecksum, sum, ref.SHA256)
	case sum[:len(info.SHAPrefix)] != info.SHAPrefix:
		return data, "", written, fmt.Errorf("get %s: %w: sha256 %s does not match the key", ref.Location, store.ErrChecksum, sum)
	}
	return data, sum, written, nil
}
