package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/internal/atomicfile"
)

// Backup writes a consistent copy of the database to dest through SQLite
// (VACUUM INTO), never by copying the file: a file copy of a live database
// can be torn, and closing any descriptor of the file would drop the
// loader's locks. The copy is written beside dest and renamed into place
// (atomicfile), so dest is either the old file or a complete new one.
// Applies wait meanwhile.
//
// It is also the full check of the database (see Check): VACUUM INTO reads
// every row of every table, so a damaged page fails the backup, and the copy
// is checked page by page (PRAGMA quick_check, without holding the database)
// before it replaces the previous backup.
func (db *DB) Backup(ctx context.Context, dest string) error {
	if dest == "" {
		return errors.New("backup: no destination")
	}
	abs, err := filepath.Abs(dest)
	if err != nil {
		return fmt.Errorf("backup to %s: %w", dest, err)
	}
	if self, err := filepath.Abs(db.path); err == nil && self == abs {
		return fmt.Errorf("backup to %s: that is the database itself", dest)
	}
	err = atomicfile.Replace(abs, func(tmp string) error {
		if err := db.vacuumInto(ctx, tmp); err != nil {
			return err
		}
		return checkBackup(ctx, tmp)
	})
	if err != nil {
		return fmt.Errorf("backup to %s: %w", dest, err)
	}
	return nil
}

// BackupRotate writes parking-YYYYMMDDTHHMMSSZ.db into dir and removes all
// but the newest keep backups there. It returns the new backup's path.
func (db *DB) BackupRotate(ctx context.Context, dir string, keep int, now time.Time) (string, error) {
	dest := filepath.Join(dir, "parking-"+now.UTC().Format("20060102T150405Z")+".db")
	if err := db.Backup(ctx, dest); err != nil {
		return "", err
	}
	if keep <= 0 {
		return dest, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return dest, fmt.Errorf("rotate backups in %s: %w", dir, err)
	}
	var names []string
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, "parking-") && strings.HasSuffix(n, ".db") && e.Type().IsRegular() {
			names = append(names, n)
		}
	}
	sort.Strings(names) // the names sort by time
	for len(names) > keep {
		if err := os.Remove(filepath.Join(dir, names[0])); err != nil {
			return dest, fmt.Errorf("rotate backups in %s: %w", dir, err)
		}
		names = names[1:]
	}
	return dest, nil
}

func (db *DB) vacuumInto(ctx context.Context, tmp string) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	_, err := db.conn.ExecContext(ctx, "VACUUM INTO ?", tmp)
	return err
}

// checkBackup reads every page of a backup just written.
func checkBackup(ctx context.Context, path string) error {
	copy, err := openReaders(path, DefaultLockTimeout)
	if err != nil {
		return err
	}
	defer copy.Close()
	conn, err := copy.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return integrity(ctx, conn, "PRAGMA quick_check(10)", "integrity check of the copy")
}
