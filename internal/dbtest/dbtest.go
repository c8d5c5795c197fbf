// Package dbtest holds test helpers that read a parking database from outside
// the loader: a canonical dump of every user-facing table, for tests that
// prove two databases built in different ways are the same.
package dbtest

import (
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"

	_ "modernc.org/sqlite" // the driver the loader uses
)

// Tables are the user-facing tables (the ledger's apply times are the only
// thing allowed to differ between two runs, and its outcomes depend on
// delivery order by design: "superseded" says a snapshot arrived late).
var Tables = []string{"parking_lots", "lot_versions", "availability", "availability_latest"}

// Dump returns every row of every user-facing table, sorted, one line a row.
// The database must not be held by a running loader.
func Dump(t testing.TB, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer db.Close()
	var b strings.Builder
	for _, table := range Tables {
		fmt.Fprintf(&b, "== %s\n", table)
		rows, err := db.Query("SELECT * FROM " + table)
		if err != nil {
			t.Fatalf("dump %s of %s: %v", table, path, err)
		}
		cols, _ := rows.Columns()
		var lines []string
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatalf("dump %s: %v", table, err)
			}
			parts := make([]string, len(cols))
			for i, v := range vals {
				switch v := v.(type) {
				case nil:
					parts[i] = "NULL"
				case []byte:
					parts[i] = fmt.Sprintf("%q", v)
				case float64:
					parts[i] = fmt.Sprintf("%.9f", v)
				default:
					parts[i] = fmt.Sprintf("%v", v)
				}
			}
			lines = append(lines, strings.Join(parts, "|"))
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("dump %s: %v", table, err)
		}
		rows.Close()
		slices.Sort(lines)
		fmt.Fprintf(&b, "%s\n", strings.Join(lines, "\n"))
	}
	return b.String()
}

// Count returns SELECT count(*) FROM table WHERE where (where may be empty).
func Count(t testing.TB, path, table, where string, args ...any) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer db.Close()
	q := "SELECT count(*) FROM " + table
	if where != "" {
		q += " WHERE " + where
	}
	var n int
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s on %s: %v", q, path, err)
	}
	return n
}

// Query returns the rows of a query as strings, for precise assertions.
func Query(t testing.TB, path, q string, args ...any) [][]string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer db.Close()
	rows, err := db.Query(q, args...)
	if err != nil {
		t.Fatalf("%s on %s: %v", q, path, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out [][]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			if v.Valid {
				row[i] = v.String
			} else {
				row[i] = "NULL"
			}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
}
