package sqlite

import (
	"errors"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// errHeld: the range is locked by someone else.
var errHeld = errors.New("locked by another process")

// lockRange takes a non-blocking lock on [start, start+n) of f. It is an open
// file description lock: it conflicts with SQLite's POSIX locks even in this
// same process (where two POSIX locks would silently merge), and closing
// another descriptor of the file does not drop it.
func lockRange(f *os.File, write bool, start, n int64) error {
	typ := int16(unix.F_RDLCK)
	if write {
		typ = unix.F_WRLCK
	}
	lk := unix.Flock_t{Type: typ, Whence: io.SeekStart, Start: start, Len: n}
	err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
		// A file system without open file description locks: a process lock
		// still sees every other process, which is what a restore needs.
		lk = unix.Flock_t{Type: typ, Whence: io.SeekStart, Start: start, Len: n}
		err = unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk)
	}
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
		return errHeld
	}
	return err
}
