//go:build unix && !linux

package sqlite

import "golang.org/x/sys/unix"

// setLock takes lk as a POSIX lock. Without open file description locks, it
// detects other processes only, which is what a restore run as its own
// command needs.
func setLock(fd uintptr, lk unix.Flock_t) error {
	return unix.FcntlFlock(fd, unix.F_SETLK, &lk)
}
