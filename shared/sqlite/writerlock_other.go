//go:build !unix

package sqlite

import (
	"context"
	"errors"
	"os"
	"time"
)

var (
	errWriterHeld = errors.New("writer lock held")
	errNoFlock    = errors.New("no flock on this platform")
)

// lockWriter: without flock only the exclusive mode (SQLite's own lock)
// keeps a second writer out.
func lockWriter(context.Context, string, time.Duration) (*os.File, error) {
	return nil, errNoFlock
}
