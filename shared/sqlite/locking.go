package sqlite

import (
	"fmt"
	"path/filepath"
)

// Locking is how the loader shares the database file with other processes.
type Locking string

const (
	// LockingAuto picks LockingShared on a local file system and
	// LockingExclusive anywhere else (or when the file system is unknown).
	LockingAuto Locking = "auto"
	// LockingExclusive is SQLite's exclusive locking mode with a rollback
	// journal: no shared memory, no reader while the loader runs. The only
	// safe choice on a network file system (NFS, which EFS is; SMB; FUSE).
	LockingExclusive Locking = "exclusive"
	// LockingShared is WAL with normal locking: other processes (sqlite3,
	// Python, Datasette, DuckDB) read every committed snapshot while the
	// loader writes. Needs the shared-memory index WAL keeps in the -shm
	// file, which only a local file system provides correctly.
	LockingShared Locking = "shared"
)

// ParseLocking validates a -db-locking value; "" means auto.
func ParseLocking(s string) (Locking, error) {
	switch Locking(s) {
	case "", LockingAuto:
		return LockingAuto, nil
	case LockingExclusive, LockingShared:
		return Locking(s), nil
	}
	return "", fmt.Errorf("database locking %q: want auto, exclusive or shared", s)
}

// chooseLocking resolves want for the database at path and says why.
func chooseLocking(want Locking, path string) (Locking, string) {
	if want == LockingExclusive || want == LockingShared {
		return want, "set by -db-locking / PARKING_DB_LOCKING"
	}
	fs := fileSystemOf(filepath.Dir(path))
	switch {
	case fs.err != nil:
		return LockingExclusive, fmt.Sprintf("could not tell the file system (%v): exclusive is safe everywhere", fs.err)
	case !fs.known:
		return LockingExclusive, fmt.Sprintf("unrecognised file system %s: treated as networked, where WAL's shared memory is unsafe", fs.name)
	case fs.network:
		return LockingExclusive, fmt.Sprintf("%s is a network or user-space file system: WAL's shared memory is unsafe there, so a rollback journal and an exclusive lock", fs.name)
	}
	return LockingShared, fmt.Sprintf("%s is a local file system: WAL, so other processes can read while the loader writes", fs.name)
}

// fileSystem is what statfs says about a directory.
type fileSystem struct {
	name    string
	known   bool
	network bool
	err     error
}
