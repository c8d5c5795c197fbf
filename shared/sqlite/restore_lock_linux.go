package sqlite

import (
	"errors"

	"golang.org/x/sys/unix"
)

// setLock takes lk as an open file description lock: it conflicts with
// SQLite's POSIX locks even in this same process (where two POSIX locks
// would silently merge), and closing another descriptor of the file does
// not drop it.
func setLock(fd uintptr, lk unix.Flock_t) error {
	ofd := lk
	err := unix.FcntlFlock(fd, unix.F_OFD_SETLK, &ofd)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
		// A file system without open file description locks: a process lock
		// still sees every other process, which is what a restore needs.
		err = unix.FcntlFlock(fd, unix.F_SETLK, &lk)
	}
	return err
}
