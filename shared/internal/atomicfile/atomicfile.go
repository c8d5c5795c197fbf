// Package atomicfile replaces files so that a reader, and a crash, sees
// either the old content or the new one, whole: the new file is written
// under a temporary name beside the destination, fsynced, renamed over the
// destination, and the directory is fsynced so the rename itself is durable.
//
// One policy for every failure: whatever step fails, the temporary file is
// removed and the destination is left as it was; the error says which step.
// Only a failed fsync of the directory comes after the rename: the new file
// is then in place, and the error says a crash could still undo that.
package atomicfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// WriteFile replaces path with data, with permissions perm exactly (the
// umask aside: exports are read by other users, a web server for one).
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	return Replace(path, func(tmp string) error {
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if err != nil {
			return err
		}
		_, err = f.Write(data)
		if err == nil {
			err = f.Chmod(perm)
		}
		return errors.Join(err, f.Close())
	})
}

// Replace replaces path with the file create writes at tmp: a name in the
// same directory (so the rename cannot cross file systems) that does not
// exist yet, as SQLite's VACUUM INTO requires. The directory is created if
// missing.
func Replace(path string, create func(tmp string) error) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create directory: %w", err)
	}
	tmp, err := tempName(path)
	if err != nil {
		return err
	}
	if err := create(tmp); err != nil {
		return discard(tmp, fmt.Errorf("write %s: %w", tmp, err))
	}
	if err := Sync(tmp); err != nil {
		return discard(tmp, fmt.Errorf("fsync %s: %w", tmp, err))
	}
	if err := os.Rename(tmp, path); err != nil {
		return discard(tmp, err)
	}
	if err := Sync(dir); err != nil {
		return fmt.Errorf("fsync directory %s (the new %s is in place, but a crash could lose it): %w", dir, filepath.Base(path), err)
	}
	return nil
}

// tempName returns an unused hidden name beside path: .NAME.RANDOM.tmp. The
// leading dot keeps it out of listings that look for the real names (the
// backup rotation's parking-*.db).
func tempName(path string) (string, error) {
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+"."+hex.EncodeToString(rnd[:])+".tmp"), nil
}

// discard removes the temporary file after a failure and returns err (and
// the removal's own error, if the file stays behind).
func discard(tmp string, err error) error {
	if rerr := os.Remove(tmp); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		return errors.Join(err, fmt.Errorf("remove the temporary file: %w", rerr))
	}
	return err
}

// Sync flushes a file, or a directory's entries, to stable storage: after a
// rename, the directory must be synced too for the new name to survive a crash.
func Sync(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}
