package filestore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/internal/tmpfs"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store/storetest"
)

// TestConformance runs the store contract's suite on a directory; the
// tests below are only what is particular to a directory.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := openStore(t)
		t.Cleanup(func() { assertNoTemp(t, s) })
		return s
	})
}

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
	if _, err := s.Put(context.Background(), key, body, store.Meta{}); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func listAll(t *testing.T, s *Store) []string {
	t.Helper()
	var keys []string
	if err := s.List(context.Background(), "", "", func(o store.Object) error {
		keys = append(keys, o.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

// tempFiles lists the writes in progress left in the store.
func tempFiles(t *testing.T, s *Store) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(s.Dir(), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasPrefix(d.Name(), tempPrefix) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// assertNoTemp fails the test for any write in progress left in the store.
func assertNoTemp(t *testing.T, s *Store) {
	t.Helper()
	if left := tempFiles(t, s); len(left) > 0 {
		t.Errorf("temp files left behind: %q", left)
	}
}

// A full disk fails the write of a snapshot part of the way; the half
// written temp file must go with the error, not stay in the store forever,
// and the store must work again once there is space.
func TestPutOnFullDiskLeavesNoTempFile(t *testing.T) {
	const size = 256 << 10
	dir := tmpfs.Mount(t, size)
	s, err := Open(filepath.Join(dir, "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	filler := tmpfs.Fill(t, dir, 32<<10)
	ctx := context.Background()
	// 64 KiB do not fit in the 32 KiB left: the write fails part of the way.
	body := bytes.Repeat([]byte("availability "), 64<<10/13)
	key := keyFor(feed.Availability, time.Date(2026, 11, 3, 4, 5, 0, 0, time.UTC), body)
	_, putErr := s.Put(ctx, key, body, store.Meta{})
	if !errors.Is(putErr, syscall.ENOSPC) || !strings.Contains(putErr.Error(), key) {
		t.Fatalf("put on a full disk: %v; want an error naming %s and wrapping ENOSPC", putErr, key)
	}
	assertNoTemp(t, s)
	if _, _, err := s.Get(ctx, s.Locate(key), 1<<20); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get after the failed put: %v, want ErrNotFound", err)
	}
	// State documents go through the same temp files.
	if err := s.WriteState(ctx, "cursor", body); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write state on a full disk: %v, want ENOSPC", err)
	}
	left := tempFiles(t, s)
	if len(left) > 0 {
		t.Fatalf("temp files left behind: %q", left)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	put(t, s, key, body)
	if got, _, err := s.Get(ctx, s.Locate(key), 1<<20); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("get after space was freed: %d bytes, %v", len(got), err)
	}
	assertNoTemp(t, s)
	if !t.Failed() {
		t.Logf("RESULT full disk: put failed with %q; temp files left: %d; put after freeing space: stored", putErr, len(left))
	}
}

// The write time is the file's modification time, and putting the same
// bytes again does not rewrite the file.
func TestWriteTimeIsTheFilesModificationTime(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	body := []byte("snapshot")
	key := keyFor(feed.Lots, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), body)
	put(t, s, key, body)
	stored := time.Date(2026, 1, 2, 3, 4, 7, 123456789, time.UTC)
	if err := os.Chtimes(filepath.Join(s.Dir(), key), stored, stored); err != nil {
		t.Fatal(err)
	}
	put(t, s, key, body)
	if _, written, err := s.Get(ctx, s.Locate(key), 1<<20); err != nil || !written.Equal(stored) {
		t.Fatalf("Get says written at %v (%v), want the file's modification time %v", written, err, stored)
	}
}

// Get refuses an absolute path even when it points inside the store.
func TestGetAbsolutePathInsideIsOutside(t *testing.T) {
	s := openStore(t)
	body := []byte("a")
	key := keyFor(feed.Availability, time.Date(2026, 11, 3, 4, 5, 0, 0, time.UTC), body)
	put(t, s, key, body)
	if _, _, err := s.Get(context.Background(), store.Location{Key: filepath.Join(s.Dir(), key)}, 1<<20); !errors.Is(err, store.ErrOutside) {
		t.Fatalf("get by absolute path: %v, want ErrOutside", err)
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
	if _, _, err := s.Get(ctx, s.Locate(fileKey), 1<<20); !errors.Is(err, store.ErrOutside) {
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
	if _, _, err := s.Get(ctx, s.Locate(dirKey), 1<<20); !errors.Is(err, store.ErrOutside) {
		t.Errorf("get through a directory link out of the store: %v, want ErrOutside", err)
	}
	// Nor may Put write through it.
	if _, err := s.Put(ctx, dirKey, []byte("c"), store.Meta{}); !errors.Is(err, store.ErrOutside) {
		t.Errorf("put through a directory link out of the store: %v, want ErrOutside", err)
	}
	if got, _ := os.ReadFile(filepath.Join(outsideDir, "01", "02", filepath.Base(dirKey))); string(got) != "b" {
		t.Errorf("file outside the store changed to %q", got)
	}
	// Nor does List report the linked file as a snapshot.
	if got := listAll(t, s); len(got) != 0 {
		t.Errorf("List reports links: %q", got)
	}
}

// Files that are not snapshots (writes in progress, notes, names that are
// not keys) are never listed.
func TestListSkipsLitter(t *testing.T) {
	s := openStore(t)
	body := []byte("x")
	key := keyFor(feed.Availability, time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC), body)
	put(t, s, key, body)
	day := filepath.Join(s.Dir(), "availability", "2026", "11", "03")
	for _, name := range []string{".tmp-deadbeef", "notes.txt", "20261103T000000Z-zz.json.gz"} {
		if err := os.WriteFile(filepath.Join(day, name), []byte("junk"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(s.Dir(), ".hidden", "2026"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := listAll(t, s); !slices.Equal(got, []string{key}) {
		t.Fatalf("List = %q, want only %s", got, key)
	}
}

// State documents live in _state/, written through temp files that never stay.
func TestStateLayout(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	for _, name := range []string{"cursor.json", "lots-content", "cursor.json"} {
		if err := s.WriteState(ctx, name, []byte(name)); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(filepath.Join(s.Dir(), stateDir))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"cursor.json", "lots-content"}) {
		t.Fatalf("%s holds %q, want the two documents and nothing else", stateDir, names)
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
	if s.String() != "file://"+dir || s.Dir() != dir {
		t.Fatalf("String() = %q, Dir() = %q", s.String(), s.Dir())
	}
	if _, err := Open(""); err == nil {
		t.Fatal("Open(\"\") succeeded")
	}
}
