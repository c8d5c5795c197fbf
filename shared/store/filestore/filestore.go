// Package filestore is the snapshot store on a local directory (file://dir).
//
// Layout: each snapshot lives at its key below the directory
// (availability/2026/11/03/20261103T040500Z-0123456789abcdef.json.gz), state
// documents live in _state/<name>, and writes in progress are dot-files named
// .tmp-* next to their destination. Nothing else is kept: a snapshot
// describes itself, so no metadata sidecar is written.
//
// Every file operation goes through an os.Root opened on the directory, so a
// key or a symbolic link can never reach a file outside it, even if the tree
// is changed while we work.
package filestore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
)

const (
	// stateDir holds the state documents. The leading underscore keeps it
	// out of List: no dataset name starts with one.
	stateDir = "_state"
	// tempPrefix marks a write in progress. List skips every dot-file, so a
	// half-written snapshot is never listed, and Get never sees one because
	// a temp name is not a snapshot key.
	tempPrefix = ".tmp-"
)

// Store is a store.Store on a local directory.
type Store struct {
	dir string // as given, for String
	abs string // absolute, so a later chdir does not move the store
}

var _ store.Store = (*Store)(nil)

// Open returns the store on dir, creating the directory if it is missing.
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("filestore: empty directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("filestore %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("filestore %s: create directory: %w", dir, err)
	}
	// Fail now, not on the first Put, if the directory cannot be opened.
	root, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("filestore %s: %w", dir, err)
	}
	root.Close()
	return &Store{dir: dir, abs: abs}, nil
}

// String is the store's URL.
func (s *Store) String() string { return "file://" + s.dir }

// Dir is the absolute path of the store's directory.
func (s *Store) Dir() string { return s.abs }

// Locate is the location of key: a directory has no bucket.
func (s *Store) Locate(key string) store.Location { return store.Location{Key: key} }

// openRoot opens the directory for one operation. A Root per call costs one
// open(2) and spares the Store a Close that the store.Store contract lacks.
func (s *Store) openRoot() (*os.Root, error) {
	root, err := os.OpenRoot(s.abs)
	if err != nil {
		return nil, fmt.Errorf("filestore %s: %w", s.dir, err)
	}
	return root, nil
}

// Put stores body at key unless a file is already there. The bytes are
// written to a temp file in the destination directory and fsynced; then the
// temp file is hard-linked to the final name. link(2) fails if the name
// exists, so of two concurrent writers exactly one publishes, and a reader
// sees either no file or the whole file, never a partial one.
func (s *Store) Put(ctx context.Context, key string, body []byte, meta store.Meta) (store.Location, error) {
	loc := s.Locate(key)
	if _, err := snapshot.ParseKey(key); err != nil {
		return loc, fmt.Errorf("put %s: %w: %v", key, store.ErrOutside, err)
	}
	sum := sha256.Sum256(body)
	if meta.SHA256 != "" && meta.SHA256 != hex.EncodeToString(sum[:]) {
		return loc, fmt.Errorf("put %s: %w: body has sha256 %x, meta says %s", key, store.ErrChecksum, sum, meta.SHA256)
	}
	if err := ctx.Err(); err != nil {
		return loc, fmt.Errorf("put %s: %w", key, err)
	}
	root, err := s.openRoot()
	if err != nil {
		return loc, err
	}
	defer root.Close()

	// Common case on a retry or a replay: the snapshot is already there.
	if err := sameContent(root, key, sum); err == nil {
		return loc, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return loc, fmt.Errorf("put %s: %w", key, err)
	}

	err = install(ctx, root, key, bytes.NewReader(body), true)
	if errors.Is(err, fs.ErrExist) {
		// A concurrent writer published first: fine if it wrote the same bytes.
		if err := sameContent(root, key, sum); err != nil {
			return loc, fmt.Errorf("put %s: %w", key, err)
		}
		return loc, nil
	}
	if err != nil {
		return loc, fmt.Errorf("put %s: %w", key, err)
	}
	return loc, nil
}

// sameContent reports nil if the file at key has SHA-256 sum, ErrNotFound if
// there is no file, and ErrConflict if its content differs.
func sameContent(root *os.Root, key string, sum [32]byte) error {
	f, err := root.Open(key)
	if err != nil {
		return classify(err) // ErrNotFound: the caller goes on to write
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file", store.ErrConflict, key)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("hash existing file: %w", err)
	}
	if got := h.Sum(nil); !bytes.Equal(got, sum[:]) {
		return fmt.Errorf("%w: existing sha256 %x, new %x", store.ErrConflict, got, sum)
	}
	return nil
}

// syncDir fsyncs a directory so that the names created in it survive a crash.
func syncDir(root *os.Root, dir string) error {
	d, err := root.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// Resolve returns the snapshot key of loc, refusing a bucket (a directory
// has none) and anything but a snapshot key with store.ErrOutside.
func (s *Store) Resolve(loc store.Location) (string, error) {
	if loc.Bucket != "" {
		return "", fmt.Errorf("%s: %w: bucket %q in a directory store %s", loc, store.ErrOutside, loc.Bucket, s)
	}
	if _, err := snapshot.ParseKey(loc.Key); err != nil {
		return "", fmt.Errorf("%s: %w: %v", loc, store.ErrOutside, err)
	}
	return loc.Key, nil
}

// Get reads the snapshot at loc. Only snapshot keys are readable, so a
// message can never make the loader read a state document, a temp file or
// anything outside the directory.
// The write time is the file's modification time: Put never rewrites a file,
// so it is when the snapshot was first stored.
func (s *Store) Get(ctx context.Context, loc store.Location, maxBytes int64) ([]byte, time.Time, error) {
	if _, err := s.Resolve(loc); err != nil {
		return nil, time.Time{}, fmt.Errorf("get %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, time.Time{}, fmt.Errorf("get %s: %w", loc, err)
	}
	root, err := s.openRoot()
	if err != nil {
		return nil, time.Time{}, err
	}
	defer root.Close()
	f, err := root.Open(loc.Key)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("get %s: %w", loc, classify(err))
	}
	defer f.Close()
	return readLimited(f, maxBytes, loc.Key)
}

// readLimited reads f whole, refusing with ErrTooLarge a file over maxBytes
// by its size before reading, and again while reading in case it grew. It
// returns the file's modification time with the bytes.
func readLimited(f *os.File, maxBytes int64, name string) ([]byte, time.Time, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("stat %s: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, time.Time{}, fmt.Errorf("%s: %w: not a regular file", name, store.ErrNotFound)
	}
	if fi.Size() > maxBytes {
		return nil, time.Time{}, fmt.Errorf("%s: %w: %d bytes, at most %d allowed", name, store.ErrTooLarge, fi.Size(), maxBytes)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxBytes+1))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(data)) > maxBytes {
		return nil, time.Time{}, fmt.Errorf("%s: %w: more than %d bytes", name, store.ErrTooLarge, maxBytes)
	}
	return data, fi.ModTime().UTC(), nil
}

// classify maps an os.Root error to the store's sentinels. os.Root reports a
// path or symbolic link leaving the directory with an unexported error whose
// text is fixed ("path escapes from parent"); TestGetSymlinkEscape pins it.
func classify(err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %v", store.ErrNotFound, err)
	case strings.Contains(err.Error(), "path escapes from parent"):
		return fmt.Errorf("%w: %v", store.ErrOutside, err)
	default:
		return err
	}
}

// List walks only the directory the prefix names (the part up to its last
// "/"), in lexical order. Walk order is key order because sibling names at
// each level never prefix one another (fixed-width dates and file names,
// "lots" and "availability"). Directories wholly before startAfter are skipped
// without being read, so resuming a long listing costs little.
func (s *Store) List(ctx context.Context, prefix, startAfter string, fn func(store.Object) error) error {
	base := "."
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		base = prefix[:i]
		for _, el := range strings.Split(base, "/") {
			if el == "" || el == "." || el == ".." || strings.HasPrefix(el, ".") || strings.HasPrefix(el, "_") {
				return nil // no snapshot key has such an element
			}
		}
	}
	root, err := s.openRoot()
	if err != nil {
		return err
	}
	defer root.Close()
	walkErr := fs.WalkDir(root.FS(), base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == base && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll // nothing stored under the prefix yet
			}
			return fmt.Errorf("list %s: %w", p, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == base {
			return nil
		}
		name := d.Name()
		if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil // a write in progress, or a state document's directory
		}
		if d.IsDir() {
			sub := p + "/"
			if !strings.HasPrefix(sub, prefix) && !strings.HasPrefix(prefix, sub) {
				return fs.SkipDir
			}
			if sub < startAfter && !strings.HasPrefix(startAfter, sub) {
				return fs.SkipDir
			}
			return nil
		}
		// Only regular files: a symbolic link is not something Put makes.
		if !d.Type().IsRegular() || !strings.HasPrefix(p, prefix) || p <= startAfter {
			return nil
		}
		if _, err := snapshot.ParseKey(p); err != nil {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return fmt.Errorf("list %s: %w", p, err)
		}
		return fn(store.Object{Key: p, Size: fi.Size()})
	})
	return walkErr
}

// statePath validates name and returns its path below the root.
func statePath(name string) (string, error) {
	if err := store.CheckStateName(name); err != nil {
		return "", err
	}
	return stateDir + "/" + name, nil
}

// ReadState returns the state document name, or ErrNotFound.
func (s *Store) ReadState(ctx context.Context, name string) ([]byte, error) {
	p, err := statePath(name)
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read state %s: %w", name, err)
	}
	root, err := s.openRoot()
	if err != nil {
		return nil, err
	}
	defer root.Close()
	f, err := root.Open(p)
	if err != nil {
		return nil, fmt.Errorf("read state %s: %w", name, classify(err))
	}
	defer f.Close()
	data, _, err := readLimited(f, store.MaxStateBytes, p)
	if err != nil {
		return nil, fmt.Errorf("read state %s: %w", name, err)
	}
	return data, nil
}

// WriteState replaces the state document name atomically: readers see the
// old document or the new one, never a mix, even after a crash.
func (s *Store) WriteState(ctx context.Context, name string, body []byte) error {
	p, err := statePath(name)
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if len(body) > store.MaxStateBytes {
		return fmt.Errorf("write state %s: %w: %d bytes, at most %d allowed", name, store.ErrTooLarge, len(body), store.MaxStateBytes)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("write state %s: %w", name, err)
	}
	root, err := s.openRoot()
	if err != nil {
		return err
	}
	defer root.Close()
	if err := install(ctx, root, p, bytes.NewReader(body), false); err != nil {
		return fmt.Errorf("write state %s: %w", name, err)
	}
	return nil
}
