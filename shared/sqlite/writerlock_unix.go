//go:build unix

package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// errWriterHeld: another process holds the writer lock.
var errWriterHeld = errors.New("writer lock held")

// errNoFlock: the file system does not support flock.
var errNoFlock = errors.New("file system does not support flock")

// lockWriter takes the exclusive flock of the lock file at path, trying
// until timeout. The kernel releases a flock when its holder dies, SIGKILL
// included, so a stale file never keeps a loader out: the lock, not the
// file, is what counts.
func lockWriter(ctx context.Context, path string, timeout time.Duration) (*os.File, error) {
	deadline := time.Now().Add(timeout)
	for {
		f, err := tryLockWriter(path)
		if !errors.Is(err, errWriterHeld) {
			return f, err
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, err
		}
		// Polling: flock has no timeout, and a blocking flock in a goroutine
		// could not be abandoned.
		t := time.NewTimer(25 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
	}
}

func tryLockWriter(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("writer lock %s: %w", path, err)
	}
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	switch {
	case errors.Is(err, unix.EWOULDBLOCK):
		f.Close()
		return nil, fmt.Errorf("%w: %s", errWriterHeld, path)
	case errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.ENOLCK) || errors.Is(err, unix.EINVAL):
		f.Close()
		return nil, fmt.Errorf("writer lock %s: %w: %w", path, errNoFlock, err)
	case err != nil:
		f.Close()
		return nil, fmt.Errorf("writer lock %s: %w", path, err)
	}
	// Someone may have removed or replaced the file between the open and the
	// flock: the lock would then guard nothing another process can see.
	var held, now unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &held); err != nil {
		f.Close()
		return nil, fmt.Errorf("writer lock %s: %w", path, err)
	}
	if err := unix.Stat(path, &now); err != nil || now.Ino != held.Ino || now.Dev != held.Dev {
		f.Close()
		return nil, fmt.Errorf("%w: %s was replaced while it was being locked", errWriterHeld, path)
	}
	return f, nil
}
