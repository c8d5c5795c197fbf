//go:build unix && !linux

package sqlite

import (
	"errors"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// errHeld: the range is locked by someone else.
var errHeld = errors.New("locked by another process")

// lockRange takes a non-blocking POSIX lock on [start, start+n) of f. Without
// open file description locks, it detects other processes only, which is
// what a restore run as its own command needs.
func lockRange(f *os.File, write bool, start, n int64) error {
	typ := int16(unix.F_RDLCK)
	if write {
		typ = unix.F_WRLCK
	}
	lk := unix.Flock_t{Type: typ, Whence: io.SeekStart, Start: start, Len: n}
	err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk)
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
		return errHeld
	}
	return err
}
