package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"os"
	"strings"
)

// Check is how much of the file Open verifies before the loader uses it.
//
// A full check (PRAGMA quick_check) reads every page: 11-20 s for a year of
// history here, minutes for five years on EFS, past the ECS health-check
// grace, and a task killed there would restart into the same check. What it
// guards against is damage from outside SQLite (a torn copy, a bad restore,
// storage faults, WAL on a network file system): a crash cannot damage the
// file, since every commit is journaled and synced. So every start runs the
// bounded check, whose cost does not grow with the history, and the full
// check runs where it costs no start-up: on every backup (VACUUM INTO reads
// every row of the live database, and the copy is checked whole before it
// replaces the previous one), on a restore, and on demand (-db-check full).
type Check string

const (
	// CheckBounded verifies what can be verified at a cost independent of
	// the history: the header and the file's length, the schema, every page
	// of every table that does not grow with the history, and the first and
	// last pages of the two that do (observations and the ledger).
	CheckBounded Check = "bounded"
	// CheckFull reads every page of the file (PRAGMA quick_check).
	CheckFull Check = "full"
)

// ParseCheck validates a -db-check value; "" means bounded.
func ParseCheck(s string) (Check, error) {
	switch Check(s) {
	case "", CheckBounded:
		return CheckBounded, nil
	case CheckFull:
		return CheckFull, nil
	}
	return "", fmt.Errorf("database check %q: want bounded or full", s)
}

// growingProbes returns, for a table whose size grows with the history,
// the queries that read the pages at both ends of its b-trees (root to first
// and to last leaf), where reads and the next writes go; the rest is left to
// the full check. Each probe is one min() or max(): SQLite answers those
// from one end of the b-tree, but scans the table for two aggregates in one
// query. Other tables (nil) are checked whole.
func growingProbes(table string) []string {
	switch table {
	case "availability_obs":
		return []string{"SELECT min(k) FROM availability_obs", "SELECT max(k) FROM availability_obs"}
	case "snapshots":
		return []string{"SELECT min(rowid) FROM snapshots", "SELECT max(rowid) FROM snapshots",
			"SELECT min(key) FROM snapshots", "SELECT max(key) FROM snapshots"}
	}
	return nil
}

// check verifies the open database as c says. Errors name the check and
// what it found; SQLite says "malformed" for a page it cannot read.
func check(ctx context.Context, conn *sql.Conn, c Check) error {
	if c == CheckFull {
		return integrity(ctx, conn, "PRAGMA quick_check(10)", "integrity check (full)")
	}
	rows, err := conn.QueryContext(ctx, "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
	if err != nil {
		return fmt.Errorf("integrity check (bounded): read the schema: %w", err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return fmt.Errorf("integrity check (bounded): read the schema: %w", err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("integrity check (bounded): read the schema: %w", err)
	}
	for _, t := range tables {
		if probes := growingProbes(t); probes != nil {
			for _, probe := range probes {
				var end sql.NullString
				if err := conn.QueryRowContext(ctx, probe).Scan(&end); err != nil {
					return fmt.Errorf("integrity check (bounded): the ends of %s: %w", t, err)
				}
			}
			continue
		}
		// With a table name, quick_check reads that table and its indexes only.
		if err := integrity(ctx, conn, fmt.Sprintf("PRAGMA quick_check(%q)", t), "integrity check (bounded) of "+t); err != nil {
			return err
		}
	}
	return nil
}

// integrity runs an integrity pragma, which answers "ok" or lists problems.
func integrity(ctx context.Context, conn *sql.Conn, pragma, what string) error {
	rows, err := conn.QueryContext(ctx, pragma)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		problems = append(problems, line)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if len(problems) == 1 && problems[0] == "ok" {
		return nil
	}
	return fmt.Errorf("%s failed: %s", what, strings.Join(problems, "; "))
}

// checkLength refuses a file shorter than its header says: a copy or a
// restore cut short, which SQLite would otherwise only notice when it reads
// the missing pages. The header's page count is trusted only when SQLite
// marks it valid and no journal or WAL may still change the file.
func checkLength(path string) error {
	for _, side := range []string{"-journal", "-wal"} {
		if fi, err := os.Stat(path + side); err == nil && fi.Size() > 0 {
			return nil
		}
	}
	header, size, err := readHead(path, 100)
	if err != nil || len(header) < 100 {
		return err // Shorter than a header: new and empty, or refused by the header check.
	}
	pageSize := int64(binary.BigEndian.Uint16(header[16:18]))
	if pageSize == 1 {
		pageSize = 65536
	}
	pages := int64(binary.BigEndian.Uint32(header[28:32]))
	changes, validFor := binary.BigEndian.Uint32(header[24:28]), binary.BigEndian.Uint32(header[92:96])
	if pages == 0 || changes != validFor {
		return nil
	}
	if want := pages * pageSize; size < want {
		return fmt.Errorf("open database %s: length check: the header says %d pages of %d bytes (%d bytes), the file has %d: truncated (left untouched)",
			path, pages, pageSize, want, size)
	}
	return nil
}
