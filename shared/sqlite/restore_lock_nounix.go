//go:build !unix

package sqlite

import (
	"errors"
	"os"
)

// lockRange: restore takes SQLite's lock bytes with fcntl, which only unix
// has; elsewhere it refuses rather than replace a file it cannot lock.
func lockRange(*os.File, bool, int64, int64) error {
	return errors.New("restore needs fcntl byte-range locks (a unix system)")
}
