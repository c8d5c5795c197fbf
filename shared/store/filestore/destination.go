package filestore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"

	"github.com/parking-newtaipei/parking-newtaipei/shared/internal/ctxio"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
)

// This file makes a directory a publication destination (file://dir): the
// loader's published objects as plain files, for a web server or a local
// look. Content-Type and Cache-Control have no place in a file; a server in
// front of the directory derives them from the name.

var _ store.Destination = (*Store)(nil)

// PutObject replaces the file at key with body: written to a temp file in
// the destination directory, fsynced, then renamed over the old one, so a
// reader (a web server) opens either the old file or the new one, whole.
// With opts.IfAbsent the temp file is hard-linked instead, which fails when
// the name exists (store.ErrExists), so such a file is never replaced.
func (s *Store) PutObject(ctx context.Context, key string, body io.ReadSeeker, opts store.ObjectOptions) error {
	if err := snapshot.CheckObject(key, opts); err != nil {
		return fmt.Errorf("publish %s: %w", key, err)
	}
	if _, err := body.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("publish %s: rewind body: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("publish %s: %w", key, err)
	}
	root, err := s.openRoot()
	if err != nil {
		return err
	}
	defer root.Close()
	err = install(ctx, root, key, body, opts.IfAbsent)
	if opts.IfAbsent && errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("publish %s: %w", key, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("publish %s: %w", key, classify(err))
	}
	return nil
}

// install writes r to a temp file in the directory of name (made if need
// be), fsynced, and puts it at name: renamed over what is there or, with
// noReplace, hard-linked, which fails with fs.ErrExist when name exists.
// The temp name is gone either way. Then each directory from name's up to
// the root is fsynced, so the new name, and any directory made for it,
// survives a crash. Put, PutObject and WriteState all replace files so.
func install(ctx context.Context, root *os.Root, name string, r io.Reader, noReplace bool) error {
	dir := path.Dir(name)
	if err := root.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create directory: %w", classify(err))
	}
	tmp, err := copyTemp(ctx, root, dir, r)
	if err != nil {
		return err
	}
	if noReplace {
		err = root.Link(tmp, name)
		// The temp name is only a second link to the data (or to data that
		// lost to an existing file); it goes either way.
		if rerr := root.Remove(tmp); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			return fmt.Errorf("remove temp file %s: %w", tmp, rerr)
		}
	} else if err = root.Rename(tmp, name); err != nil {
		root.Remove(tmp)
	}
	if err != nil {
		return err
	}
	for d := dir; ; d = path.Dir(d) {
		if err := syncDir(root, d); err != nil {
			return err
		}
		if d == "." {
			return nil
		}
	}
}

// copyTemp copies r into a new temp file in dir, fsyncs and closes it, and
// returns its name; on error nothing is left behind. It streams, since a
// published database copy can be gigabytes.
func copyTemp(ctx context.Context, root *os.Root, dir string, r io.Reader) (string, error) {
	var rnd [8]byte
	rand.Read(rnd[:]) // never fails (crypto/rand documents it)
	// Not a named result: a return that clears it must not keep the deferred
	// cleanup from finding the file (that leaked .tmp-* files on a full disk).
	tmp := path.Join(dir, tempPrefix+hex.EncodeToString(rnd[:]))
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", fmt.Errorf("create temp file: %w", classify(err))
	}
	fail := func(err error) (string, error) {
		f.Close()
		if rmErr := root.Remove(tmp); rmErr != nil {
			return "", fmt.Errorf("%w (and removing the temp file: %v)", err, rmErr)
		}
		return "", err
	}
	if _, err := io.Copy(f, ctxio.Reader(ctx, r)); err != nil {
		return fail(fmt.Errorf("write temp file %s: %w", tmp, err))
	}
	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("fsync temp file %s: %w", tmp, err))
	}
	if err := f.Close(); err != nil {
		if rmErr := root.Remove(tmp); rmErr != nil {
			return "", fmt.Errorf("close temp file %s: %w (and removing it: %v)", tmp, err, rmErr)
		}
		return "", fmt.Errorf("close temp file %s: %w", tmp, err)
	}
	return tmp, nil
}
