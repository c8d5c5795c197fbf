// Package storetest is the conformance suite of the store contract: the
// tests every store.Store backend must pass, run by each backend's own tests
// (filestore on a directory, s3store against the S3 test server), as
// litestream runs one suite over every replica client. A backend's own test
// file keeps only what is specific to it (S3 signatures and checksums,
// symbolic links in a directory, stray objects written by other tools).
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
)

// Open returns a new, empty store for one test; it is called once per
// subtest. A backend that lists in pages should list in small ones here, so
// the suite's listings cross page boundaries.
type Open func(t *testing.T) store.Store

// Run runs the whole suite, each test on a store of its own.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"PutGet", testPutGet},
		{"PutSameContentTwice", testPutSameContentTwice},
		{"PutConflict", testPutConflict},
		{"PutRefusesBadInput", testPutRefusesBadInput},
		{"PutConcurrentWriters", testPutConcurrentWriters},
		{"GetNotFound", testGetNotFound},
		{"GetSizeCap", testGetSizeCap},
		{"LocateResolve", testLocateResolve},
		{"ForgedLocations", testForgedLocations},
		{"CanceledContext", testCanceledContext},
		{"WriteTime", testWriteTime},
		{"ListOrderPrefixStartAfter", testListOrderPrefixStartAfter},
		{"ListSizesAndStop", testListSizesAndStop},
		{"ListEmpty", testListEmpty},
		{"State", testState},
		{"StateNames", testStateNames},
		{"StateSizeCap", testStateSizeCap},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t))
		})
	}
}

// t0 is a fetch time well before any test runs, so a write time that merely
// echoes Meta.FetchedAt cannot pass for the store's own.
var t0 = time.Date(2025, 3, 14, 1, 2, 3, 0, time.UTC)

// object is a body and its snapshot key, fetched minute minutes after t0,
// with the meta an extractor would send.
func object(d feed.Dataset, minute int, body string) ([]byte, string, store.Meta) {
	b := []byte(body)
	at := t0.Add(time.Duration(minute) * time.Minute)
	sum := sha(b)
	return b, snapshot.Key(d, at, sum), store.Meta{Dataset: string(d), FetchedAt: at, SHA256: sum, FormatVersion: snapshot.Version}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func put(t *testing.T, s store.Store, key string, body []byte, meta store.Meta) store.Location {
	t.Helper()
	loc, err := s.Put(context.Background(), key, body, meta)
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return loc
}

func get(t *testing.T, s store.Store, loc store.Location) ([]byte, time.Time) {
	t.Helper()
	data, written, err := s.Get(context.Background(), loc, 1<<20)
	if err != nil {
		t.Fatalf("get %s: %v", loc, err)
	}
	return data, written
}

func list(t *testing.T, s store.Store, prefix, startAfter string) []string {
	t.Helper()
	var keys []string
	err := s.List(context.Background(), prefix, startAfter, func(o store.Object) error {
		keys = append(keys, o.Key)
		return nil
	})
	if err != nil {
		t.Fatalf("list %q after %q: %v", prefix, startAfter, err)
	}
	return keys
}

func testPutGet(t *testing.T, s store.Store) {
	body, key, meta := object(feed.Lots, 0, "lots snapshot bytes")
	loc := put(t, s, key, body, meta)
	if loc != s.Locate(key) {
		t.Fatalf("Put returned %+v, Locate says %+v", loc, s.Locate(key))
	}
	got, _ := get(t, s, loc)
	if !bytes.Equal(got, body) {
		t.Fatalf("Get = %q, want %q", got, body)
	}
	if s.String() == "" {
		t.Error("String() is empty; logs need the store's URL")
	}
}

// A retried or replayed Put of the same bytes is success, and does not
// rewrite the object: its write time stays that of the first Put.
func testPutSameContentTwice(t *testing.T, s store.Store) {
	body, key, meta := object(feed.Availability, 0, "availability")
	loc := put(t, s, key, body, meta)
	_, first := get(t, s, loc)
	for i := range 2 {
		if again := put(t, s, key, body, meta); again != loc {
			t.Fatalf("put %d returned %+v, want %+v", i+2, again, loc)
		}
	}
	// Without meta (a caller that does not know the checksum) too.
	put(t, s, key, body, store.Meta{})
	got, written := get(t, s, loc)
	if !bytes.Equal(got, body) || !written.Equal(first) {
		t.Fatalf("after putting the same bytes again: %q written %v; want %q written %v", got, written, body, first)
	}
}

func testPutConflict(t *testing.T, s store.Store) {
	ctx := context.Background()
	body, key, meta := object(feed.Lots, 0, "first")
	loc := put(t, s, key, body, meta)
	other := []byte("second, different")
	_, err := s.Put(ctx, key, other, store.Meta{Dataset: "lots", FetchedAt: meta.FetchedAt, SHA256: sha(other), FormatVersion: 1})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("put of other bytes at a stored key: %v, want ErrConflict", err)
	}
	if _, err := s.Put(ctx, key, append(body, '!'), store.Meta{}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("put of longer bytes at a stored key: %v, want ErrConflict", err)
	}
	if got, _ := get(t, s, loc); !bytes.Equal(got, body) {
		t.Fatalf("after the conflicts the object is %q, want the first body", got)
	}
}

// Only snapshot keys can be written, and a body must match the checksum its
// meta announces; a refused Put stores nothing.
func testPutRefusesBadInput(t *testing.T, s store.Store) {
	ctx := context.Background()
	body, key, _ := object(feed.Lots, 0, "x")
	for _, k := range []string{"", "../x", "/etc/passwd", "_state/cursor", "lots/x.json.gz",
		"lots/2025/03/14/.tmp-0011", "../" + key, key + "/..", "/" + key, strings.ToUpper(key)} {
		if _, err := s.Put(ctx, k, body, store.Meta{}); !errors.Is(err, store.ErrOutside) {
			t.Errorf("put %q: %v, want ErrOutside", k, err)
		}
	}
	if _, err := s.Put(ctx, key, body, store.Meta{SHA256: sha([]byte("y"))}); !errors.Is(err, store.ErrChecksum) {
		t.Errorf("put with the wrong meta SHA256: %v, want ErrChecksum", err)
	}
	if got := list(t, s, "", ""); len(got) != 0 {
		t.Fatalf("refused puts stored %q", got)
	}
	if _, _, err := s.Get(ctx, s.Locate(key), 1<<20); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get after a refused put: %v, want ErrNotFound", err)
	}
}

// Concurrent writers of one key: of the same bytes all succeed; of
// different bytes exactly one wins and the others get ErrConflict.
func testPutConcurrentWriters(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, key, _ := object(feed.Lots, 0, "k")
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.Put(ctx, key, fmt.Appendf(nil, "body %d", i%2), store.Meta{})
		})
	}
	wg.Wait()
	got, _ := get(t, s, s.Locate(key))
	for i, err := range errs {
		mine := fmt.Sprintf("body %d", i%2)
		switch {
		case mine == string(got) && err != nil:
			t.Errorf("writer %d wrote the stored bytes but got %v", i, err)
		case mine != string(got) && !errors.Is(err, store.ErrConflict):
			t.Errorf("writer %d lost with other bytes but got %v, want ErrConflict", i, err)
		}
	}
	if keys := list(t, s, "", ""); !slices.Equal(keys, []string{key}) {
		t.Fatalf("after concurrent puts the store lists %q", keys)
	}
}

func testGetNotFound(t *testing.T, s store.Store) {
	_, key, _ := object(feed.Lots, 0, "never stored")
	if _, _, err := s.Get(context.Background(), s.Locate(key), 1<<20); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get of a missing key: %v, want ErrNotFound", err)
	}
}

func testGetSizeCap(t *testing.T, s store.Store) {
	ctx := context.Background()
	body, key, meta := object(feed.Lots, 0, strings.Repeat("x", 1000))
	loc := put(t, s, key, body, meta)
	if _, _, err := s.Get(ctx, loc, 999); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("get with a cap of 999 of 1000 bytes: %v, want ErrTooLarge", err)
	}
	if got, _, err := s.Get(ctx, loc, 1000); err != nil || len(got) != 1000 {
		t.Fatalf("get with a cap of exactly 1000: %d bytes, %v", len(got), err)
	}
}

// Resolve is Locate's inverse for every snapshot key.
func testLocateResolve(t *testing.T, s store.Store) {
	for i, d := range []feed.Dataset{feed.Lots, feed.Availability, feed.Lots} {
		_, key, _ := object(d, i*1500, fmt.Sprint(i))
		got, err := s.Resolve(s.Locate(key))
		if err != nil || got != key {
			t.Errorf("Resolve(Locate(%q)) = %q, %v", key, got, err)
		}
	}
}

// forged returns locations a message could name that are not snapshots of
// s: another bucket, outside the prefix, path tricks, state documents,
// writes in progress and other non-snapshot names.
func forged(s store.Store, key string) []store.Location {
	loc := s.Locate(key)
	root := strings.TrimSuffix(loc.Key, key) // the store's prefix, "" or "p/"
	dir := path.Dir(key)
	out := []store.Location{
		{Bucket: loc.Bucket + "-other", Key: loc.Key},
		{Bucket: "other-bucket", Key: loc.Key},
		{Bucket: loc.Bucket, Key: "../" + loc.Key},
		{Bucket: loc.Bucket, Key: root + "../" + key},
		{Bucket: loc.Bucket, Key: loc.Key + "/.."},
		{Bucket: loc.Bucket, Key: "/" + loc.Key},
		{Bucket: loc.Bucket, Key: "other/" + loc.Key},
		{Bucket: loc.Bucket, Key: root + dir + "/../../" + path.Base(key)},
		{Bucket: loc.Bucket, Key: strings.ToUpper(loc.Key)},
		{Bucket: loc.Bucket, Key: ""},
		{Bucket: loc.Bucket, Key: root},
		s.Locate("_state/cursor"),
		s.Locate(dir + "/.tmp-0011"),
		s.Locate(dir + "/notes.txt"),
		s.Locate(dir),
	}
	if loc.Bucket != "" {
		out = append(out, store.Location{Key: loc.Key})
	}
	if root != "" {
		out = append(out, store.Location{Bucket: loc.Bucket, Key: key})
	}
	return out
}

// A location that is not a snapshot of this store is refused with
// ErrOutside, by Resolve and by Get, even when a snapshot is stored at the
// key it imitates.
func testForgedLocations(t *testing.T, s store.Store) {
	ctx := context.Background()
	body, key, meta := object(feed.Availability, 0, "stored")
	put(t, s, key, body, meta)
	if err := s.WriteState(ctx, "cursor", []byte("state")); err != nil {
		t.Fatal(err)
	}
	for _, loc := range forged(s, key) {
		if k, err := s.Resolve(loc); !errors.Is(err, store.ErrOutside) {
			t.Errorf("Resolve(%+v) = %q, %v; want ErrOutside", loc, k, err)
		}
		if data, _, err := s.Get(ctx, loc, 1<<20); !errors.Is(err, store.ErrOutside) {
			t.Errorf("Get(%+v) = %d bytes, %v; want ErrOutside", loc, len(data), err)
		}
	}
}

// A canceled context fails every call and stores nothing.
func testCanceledContext(t *testing.T, s store.Store) {
	body, key, meta := object(feed.Lots, 0, "stored")
	put(t, s, key, body, meta)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	other, otherKey, otherMeta := object(feed.Lots, 1, "not stored")
	if _, err := s.Put(ctx, otherKey, other, otherMeta); !errors.Is(err, context.Canceled) {
		t.Errorf("Put: %v, want context.Canceled", err)
	}
	if _, _, err := s.Get(ctx, s.Locate(key), 1<<20); !errors.Is(err, context.Canceled) {
		t.Errorf("Get: %v, want context.Canceled", err)
	}
	if err := s.List(ctx, "", "", func(store.Object) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("List: %v, want context.Canceled", err)
	}
	if err := s.WriteState(ctx, "cursor", []byte("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("WriteState: %v, want context.Canceled", err)
	}
	if _, err := s.ReadState(ctx, "cursor"); !errors.Is(err, context.Canceled) {
		t.Errorf("ReadState: %v, want context.Canceled", err)
	}
	if keys := list(t, s, "", ""); !slices.Equal(keys, []string{key}) {
		t.Fatalf("after canceled calls the store lists %q, want only %s", keys, key)
	}
}

// Get's write time is the store's own record of when it wrote the object:
// within the Put call (allowing for whole-second stores and coarse file
// system clocks), in UTC, the same on every read, and never the fetch time
// the caller announced.
func testWriteTime(t *testing.T, s store.Store) {
	const slack = 2 * time.Second
	body, key, meta := object(feed.Availability, 0, "when was I written?")
	before := time.Now()
	loc := put(t, s, key, body, meta)
	after := time.Now()
	_, written := get(t, s, loc)
	if written.Before(before.Add(-slack)) || written.After(after.Add(slack)) {
		t.Fatalf("write time %v, want within %v of the Put (%v to %v); the announced fetch time was %v",
			written, slack, before.UTC(), after.UTC(), meta.FetchedAt)
	}
	if written.Location() != time.UTC {
		t.Errorf("write time %v is not in UTC", written)
	}
	_, again := get(t, s, loc)
	if !again.Equal(written) {
		t.Errorf("a second Get says written at %v, the first %v", again, written)
	}
}

func testListOrderPrefixStartAfter(t *testing.T, s store.Store) {
	ctx := context.Background()
	// Out of order, across days, months, years and both datasets, two with
	// the same second.
	minutes := []int{60*24*300 + 59, 0, 60 * 24 * 17, -60 * 24 * 80, 60*24*301 + 1, 0, 60 * 24 * 45}
	var keys []string
	for i, m := range minutes {
		for _, d := range []feed.Dataset{feed.Availability, feed.Lots} {
			body, key, meta := object(d, m, fmt.Sprintf("%s %d", d, i))
			put(t, s, key, body, meta)
			keys = append(keys, key)
		}
	}
	slices.Sort(keys)
	// State documents are never listed.
	if err := s.WriteState(ctx, "cursor", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteState(ctx, "lots-content.json", []byte("y")); err != nil {
		t.Fatal(err)
	}
	if got := list(t, s, "", ""); !slices.Equal(got, keys) {
		t.Fatalf("list all:\n got %q\nwant %q", got, keys)
	}
	filter := func(prefix, after string) []string {
		var out []string
		for _, k := range keys {
			if strings.HasPrefix(k, prefix) && k > after {
				out = append(out, k)
			}
		}
		return out
	}
	first := keys[0]
	prefixes := []string{"", "availability", "availability/", "availability/2025", "availability/2025/03",
		"availability/2025/0", "lots/", path.Dir(first) + "/", path.Dir(first) + "/2025", "lots/2024",
		"lots/2027", "nothing/2025", "../", "availability/../lots", "_state/", "a"}
	afters := []string{"", "a", "lots", "zzz"}
	for _, k := range keys {
		afters = append(afters, k, k[:len(k)-3], k[:len(k)/2])
	}
	for _, prefix := range prefixes {
		for _, after := range afters {
			if got, want := list(t, s, prefix, after), filter(prefix, after); !slices.Equal(got, want) {
				t.Fatalf("list %q after %q:\n got %q\nwant %q", prefix, after, got, want)
			}
		}
	}
}

func testListSizesAndStop(t *testing.T, s store.Store) {
	for i := range 5 {
		body, key, meta := object(feed.Availability, i, strings.Repeat("x", i+1))
		put(t, s, key, body, meta)
	}
	stop := errors.New("stop")
	var sizes []int64
	err := s.List(context.Background(), "availability/", "", func(o store.Object) error {
		sizes = append(sizes, o.Size)
		if len(sizes) == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("List returned %v, want fn's error", err)
	}
	if !slices.Equal(sizes, []int64{1, 2, 3}) {
		t.Fatalf("sizes %v, want [1 2 3] and then a stop", sizes)
	}
}

func testListEmpty(t *testing.T, s store.Store) {
	for _, prefix := range []string{"", "lots/", "lots/2025/03", "availability/2025/03/14/"} {
		if got := list(t, s, prefix, ""); len(got) != 0 {
			t.Fatalf("an empty store lists %q under %q", got, prefix)
		}
	}
}

func testState(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.ReadState(ctx, "cursor"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("read of a missing state document: %v, want ErrNotFound", err)
	}
	for _, body := range [][]byte{[]byte(`{"v":1}`), []byte(`{"v":2, "longer": true}`), []byte(`{}`), {}} {
		if err := s.WriteState(ctx, "cursor.json", body); err != nil {
			t.Fatal(err)
		}
		if got, err := s.ReadState(ctx, "cursor.json"); err != nil || !bytes.Equal(got, body) {
			t.Fatalf("read state: %q, %v; want %q", got, err, body)
		}
	}
	if err := s.WriteState(ctx, "lots-content", []byte("abc")); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ReadState(ctx, "lots-content"); err != nil || string(got) != "abc" {
		t.Fatalf("second document: %q, %v", got, err)
	}
	if got, err := s.ReadState(ctx, "cursor.json"); err != nil || len(got) != 0 {
		t.Fatalf("first document after writing the second: %q, %v", got, err)
	}
	if got := list(t, s, "", ""); len(got) != 0 {
		t.Fatalf("List reports state documents: %q", got)
	}
}

// A state name is one plain element: it can reach neither another document
// nor a snapshot nor anything outside the store.
func testStateNames(t *testing.T, s store.Store) {
	ctx := context.Background()
	body, key, meta := object(feed.Lots, 0, "a snapshot")
	put(t, s, key, body, meta)
	for _, bad := range []string{"", ".", "..", "../x", "a/b", "/abs", ".hidden", "a..b", "x/../../y", `a\b`,
		"_state/cursor", key, "../" + key, "a.b.c.d", strings.Repeat("n", 101)} {
		if err := s.WriteState(ctx, bad, []byte("x")); !errors.Is(err, store.ErrOutside) {
			t.Errorf("WriteState(%q) = %v, want ErrOutside", bad, err)
		}
		if _, err := s.ReadState(ctx, bad); !errors.Is(err, store.ErrOutside) {
			t.Errorf("ReadState(%q) = %v, want ErrOutside", bad, err)
		}
	}
	if got, _ := get(t, s, s.Locate(key)); !bytes.Equal(got, body) {
		t.Fatalf("the snapshot changed to %q", got)
	}
	for _, good := range []string{"a", "lots-content", "cursor.json", "backfill_cursor.v1.json", strings.Repeat("n", 100)} {
		if err := store.CheckStateName(good); err != nil {
			t.Errorf("CheckStateName(%q) = %v", good, err)
		}
	}
}

func testStateSizeCap(t *testing.T, s store.Store) {
	ctx := context.Background()
	big := bytes.Repeat([]byte("s"), store.MaxStateBytes)
	if err := s.WriteState(ctx, "big", big); err != nil {
		t.Fatalf("write a state document of exactly MaxStateBytes: %v", err)
	}
	if got, err := s.ReadState(ctx, "big"); err != nil || len(got) != store.MaxStateBytes {
		t.Fatalf("read it back: %d bytes, %v", len(got), err)
	}
	if err := s.WriteState(ctx, "big", append(big, 's')); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("write of MaxStateBytes+1: %v, want ErrTooLarge", err)
	}
	if got, err := s.ReadState(ctx, "big"); err != nil || len(got) != store.MaxStateBytes {
		t.Fatalf("after the refused write: %d bytes, %v; want the old document", len(got), err)
	}
}
