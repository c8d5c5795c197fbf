package filestore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
)

func openStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// keyFor makes the key a real extractor would use for body.
func keyFor(d feed.Dataset, at time.Time, body []byte) string {
	sum := sha256.Sum256(body)
	return snapshot.Key(d, at, hex.EncodeToString(sum[:]))
}

func put(t *testing.T, s *Store, key string, body []byte) {
	t.Helper()
	loc, err := s.Put(context.Background(), key, body, store.Meta{})
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	if loc != (store.Location{Key: key}) {
		t.Fatalf("put %s: location %+v", key, loc)
	}
}

func listAll(t *testing.T, s *Store, prefix, startAfter string) []string {
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

func TestPutGetRoundTrip(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	body := []byte("snapshot bytes")
	key := keyFor(feed.Availability, time.Date(2026, 11, 3, 4, 5, 0, 0, time.UTC), body)
	sum := sha256.Sum256(body)
	if _, err := s.Put(ctx, key, body, store.Meta{Dataset: "availability", SHA256: hex.EncodeToString(sum[:])}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, s.Locate(key), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, body) {
		t.Fatalf("got %q, want %q", got, body)
	}
	if _, err := store.Fetch(ctx, s, s.Locate(key), int64(len(body)), hex.EncodeToString(sum[:]), 1<<20); err != nil {
		t.Fatalf("store.Fetch: %v", err)
	}
	if want := "file://" + filepath.Dir(s.Dir()) + "/snapshots"; s.String() != want {
		t.Fatalf("String() = %q, want %q", s.String(), want)
	}
}

func TestPutSameContentIsSuccessDifferentIsConflict(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	body := []byte("first")
	key := keyFor(feed.Lots, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), body)
	put(t, s, key, body)
	put(t, s, key, body) // a retried Put is not an error
	_, err := s.Put(ctx, key, []byte("second"), store.Meta{})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("put different content: %v, want ErrConflict", err)
	}
	got, err := s.Get(ctx, s.Locate(key), 1<<20)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("after conflict: %q, %v; the first object must be kept", got, err)
	}
	// No temp file may be left by either attempt.
	assertNoTemp(t, s)
}

func TestPutRefusesMetaChecksumMismatchAndNonKeys(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	body := []byte("x")
	key := keyFor(feed.Lots, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), body)
	if _, err := s.Put(ctx, key, body, store.Meta{SHA256: "00"}); !errors.Is(err, store.ErrChecksum) {
		t.Fatalf("meta checksum mismatch: %v, want ErrChecksum", err)
	}
	for _, k := range []string{"../x", "/etc/passwd", "_state/cursor", "lots/x.json.gz", ""} {
		if _, err := s.Put(ctx, k, body, store.Meta{}); !errors.Is(err, store.ErrOutside) {
			t.Errorf("put %q: %v, want ErrOutside", k, err)
		}
	}
}

// Concurrent writers of the same key: the same bytes all succeed; of
// different bytes exactly one wins and the others get ErrConflict.
func TestPutConcurrentWriters(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	key := keyFor(feed.Lots, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), []byte("k"))
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.Put(ctx, key, []byte(fmt.Sprintf("body %d", i%2)), store.Meta{})
		})
	}
	wg.Wait()
	got, err := s.Get(ctx, s.Locate(key), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		mine := fmt.Sprintf("body %d", i%2)
		switch {
		case mine == string(got) && err != nil:
			t.Errorf("writer %d wrote the stored bytes but got %v", i, err)
		case mine != string(got) && !errors.Is(err, store.ErrConflict):
			t.Errorf("writer %d lost with different bytes but got %v", i, err)
		}
	}
	assertNoTemp(t, s)
}

func assertNoTemp(t *testing.T, s *Store) {
	t.Helper()
	filepath.WalkDir(s.Dir(), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Base(p)[0] == '.' {
			t.Errorf("temp file left behind: %s", p)
		}
		return nil
	})
}

func TestGetErrors(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	body := bytes.Repeat([]byte("a"), 1000)
	key := keyFor(feed.Availability, time.Date(2026, 11, 3, 4, 5, 0, 0, time.UTC), body)
	put(t, s, key, body)

	outside := []store.Location{
		{Key: "../x"},
		{Key: "availability/../../etc/passwd"},
		{Key: "/etc/passwd"},
		{Key: filepath.Join(s.Dir(), key)}, // absolute, even pointing inside
		{Key: "_state/cursor"},
		{Key: "availability/2026/11/03/notes.txt"},
		{Key: "availability/2026/11/03/.tmp-0011"},
		{Key: ""},
		{Bucket: "other", Key: key}, // wrong bucket, right key
	}
	for _, loc := range outside {
		if _, err := s.Get(ctx, loc, 1<<20); !errors.Is(err, store.ErrOutside) {
			t.Errorf("get %+v: %v, want ErrOutside", loc, err)
		}
	}
	missing := keyFor(feed.Availability, time.Date(2026, 11, 3, 4, 6, 0, 0, time.UTC), []byte("nope"))
	if _, err := s.Get(ctx, s.Locate(missing), 1<<20); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("get missing: %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, s.Locate(key), 999); !errors.Is(err, store.ErrTooLarge) {
		t.Errorf("get with maxBytes 999: %v, want ErrTooLarge", err)
	}
	if got, err := s.Get(ctx, s.Locate(key), 1000); err != nil || len(got) != 1000 {
		t.Errorf("get with maxBytes = size: %d bytes, %v", len(got), err)
	}
}

// A symbolic link inside the store that points outside it is refused, and
// so is a directory link on the way to a key.
func TestGetSymlinkEscape(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	outsideDir := t.TempDir()
	secret := filepath.Join(outsideDir, "secret")
	if err := os.WriteFile(secret, []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 3, 4, 5, 0, 0, time.UTC)
	fileKey := keyFor(feed.Availability, at, []byte("a"))
	if err := os.MkdirAll(filepath.Join(s.Dir(), filepath.Dir(fileKey)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(s.Dir(), fileKey)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, s.Locate(fileKey), 1<<20); !errors.Is(err, store.ErrOutside) {
		t.Errorf("get through a file link out of the store: %v, want ErrOutside", err)
	}

	// lots/2026 -> a directory outside holding 01/02/<file>.
	dirKey := keyFor(feed.Lots, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), []byte("b"))
	if err := os.MkdirAll(filepath.Join(outsideDir, "01", "02"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outsideDir, "01", "02", filepath.Base(dirKey)), []byte("b"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(s.Dir(), "lots"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outsideDir, filepath.Join(s.Dir(), "lots", "2026")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, s.Locate(dirKey), 1<<20); !errors.Is(err, store.ErrOutside) {
		t.Errorf("get through a directory link out of the store: %v, want ErrOutside", err)
	}
	// Nor may Put write through it.
	if _, err := s.Put(ctx, dirKey, []byte("c"), store.Meta{}); !errors.Is(err, store.ErrOutside) {
		t.Errorf("put through a directory link out of the store: %v, want ErrOutside", err)
	}
	if got, _ := os.ReadFile(filepath.Join(outsideDir, "01", "02", filepath.Base(dirKey))); string(got) != "b" {
		t.Errorf("file outside the store changed to %q", got)
	}
}

func TestListOrderPrefixStartAfter(t *testing.T) {
	s := openStore(t)
	var keys []string
	// Out of order, across days, months, years and both datasets.
	times := []time.Time{
		time.Date(2026, 11, 3, 23, 59, 59, 0, time.UTC),
		time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 10, 31, 12, 0, 0, 0, time.UTC),
		time.Date(2025, 12, 31, 23, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 4, 0, 0, 1, 0, time.UTC),
		time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC), // same second, other content
	}
	for i, at := range times {
		for _, d := range []feed.Dataset{feed.Availability, feed.Lots} {
			body := []byte(fmt.Sprintf("%s %d", d, i))
			k := keyFor(d, at, body)
			put(t, s, k, body)
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)

	// Litter that List must never report.
	day := filepath.Join(s.Dir(), "availability", "2026", "11", "03")
	for _, name := range []string{".tmp-deadbeef", "notes.txt", "20261103T000000Z-zz.json.gz"} {
		if err := os.WriteFile(filepath.Join(day, name), []byte("junk"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.WriteState(context.Background(), "cursor", []byte("x")); err != nil {
		t.Fatal(err)
	}

	if got := listAll(t, s, "", ""); !slices.Equal(got, keys) {
		t.Fatalf("list all:\n got %q\nwant %q", got, keys)
	}
	filter := func(prefix, after string) []string {
		var out []string
		for _, k := range keys {
			if len(k) >= len(prefix) && k[:len(prefix)] == prefix && k > after {
				out = append(out, k)
			}
		}
		return out
	}
	prefixes := []string{"", "availability", "availability/", "availability/2026", "availability/2026/11",
		"availability/2026/11/", "availability/2026/1", "availability/2026/11/03", "availability/2026/11/03/20261103T00",
		"lots/2025", "lots/2027", "nothing/2026", "../", "availability/../lots", "_state/", "a"}
	for _, prefix := range prefixes {
		afters := []string{""}
		for _, k := range keys {
			afters = append(afters, k, k[:len(k)-3], k[:len(k)/2])
		}
		for _, after := range afters {
			got := listAll(t, s, prefix, after)
			if want := filter(prefix, after); !slices.Equal(got, want) {
				t.Fatalf("list %q after %q:\n got %q\nwant %q", prefix, after, got, want)
			}
		}
	}
}

func TestListSizesAndStop(t *testing.T) {
	s := openStore(t)
	at := time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		body := bytes.Repeat([]byte("x"), i+1)
		put(t, s, keyFor(feed.Availability, at.Add(time.Duration(i)*time.Minute), body), body)
	}
	stop := errors.New("stop")
	var seen []int64
	err := s.List(context.Background(), "availability/", "", func(o store.Object) error {
		seen = append(seen, o.Size)
		if len(seen) == 3 {
			return stop
		}
		return nil
	})
	if err != stop {
		t.Fatalf("List returned %v, want fn's error itself", err)
	}
	if !slices.Equal(seen, []int64{1, 2, 3}) {
		t.Fatalf("sizes %v", seen)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.List(ctx, "", "", func(store.Object) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("List with a canceled context: %v", err)
	}
}

func TestListEmptyStore(t *testing.T) {
	s := openStore(t)
	if got := listAll(t, s, "lots/2026/01", ""); len(got) != 0 {
		t.Fatalf("empty store listed %q", got)
	}
}

func TestState(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	if _, err := s.ReadState(ctx, "cursor"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("read missing state: %v, want ErrNotFound", err)
	}
	for _, body := range [][]byte{[]byte(`{"v":1}`), []byte(`{"v":2, "longer": true}`), {}} {
		if err := s.WriteState(ctx, "cursor.json", body); err != nil {
			t.Fatal(err)
		}
		got, err := s.ReadState(ctx, "cursor.json")
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("read state: %q, %v; want %q", got, err, body)
		}
	}
	if err := s.WriteState(ctx, "lots-hash", []byte("abc")); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ReadState(ctx, "lots-hash"); err != nil || string(got) != "abc" {
		t.Fatalf("second document: %q, %v", got, err)
	}
	entries, err := os.ReadDir(filepath.Join(s.Dir(), stateDir))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("state directory holds %d entries, want 2 (no temp files left)", len(entries))
	}
	for _, bad := range []string{"", ".", "..", "../x", "a/b", "/abs", ".hidden", "a..b", "x/../../y", `a\b`} {
		if err := s.WriteState(ctx, bad, []byte("x")); err == nil {
			t.Errorf("WriteState(%q) succeeded", bad)
		}
		if _, err := s.ReadState(ctx, bad); err == nil || errors.Is(err, store.ErrNotFound) {
			t.Errorf("ReadState(%q) = %v, want a validation error", bad, err)
		}
	}
	if got := listAll(t, s, "", ""); len(got) != 0 {
		t.Fatalf("List reports state documents: %q", got)
	}
}

func TestOpenCreatesDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("directory not created: %v", err)
	}
	if s.String() != "file://"+dir {
		t.Fatalf("String() = %q", s.String())
	}
	if _, err := Open(""); err == nil {
		t.Fatal("Open(\"\") succeeded")
	}
}
