//go:build unix

package sqlite

import (
	"errors"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// lockRange takes a non-blocking lock on [start, start+n) of f, shared or,
// with write, exclusive; errHeld when another holds a conflicting one.
func lockRange(f *os.File, write bool, start, n int64) error {
	typ := int16(unix.F_RDLCK)
	if write {
		typ = unix.F_WRLCK
	}
	err := setLock(f.Fd(), unix.Flock_t{Type: typ, Whence: io.SeekStart, Start: start, Len: n})
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
		return errHeld
	}
	return err
}
