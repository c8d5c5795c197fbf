// Package dbtest reads a parking database from outside the loader, for
// tests: a canonical dump of the user-facing tables, to prove that two
// databases built in different ways (orders, crashes, backends) are the same,
// and counts and rows for precise assertions.
package dbtest

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the driver the loader uses
)

// Tables are the user-facing tables (the ledger's apply times are the only
// thing allowed to differ between two runs, and its outcomes depend on
// delivery order by design: "superseded" says a snapshot arrived late), and
// the per-month summary that stats read, which must be as order-free.
var Tables = []string{"parking_lots", "lot_versions", "availability", "availability_latest", "obs_months"}

// DumpQueries read Tables, every column, each in an order that is total, so
// two databases with the same content dump equally whatever order their rows
// were written in.
var DumpQueries = []string{
	"SELECT * FROM parking_lots ORDER BY id",
	"SELECT * FROM lot_versions ORDER BY parking_id, effective_at",
	"SELECT parking_id, available_car, recorded_at FROM availability ORDER BY recorded_at, parking_id",
	"SELECT * FROM availability_latest ORDER BY parking_id",
	"SELECT * FROM obs_months ORDER BY month",
}

// Querier is what DumpWith reads through: *sql.DB, *sql.Conn or *sql.Tx.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Dump renders the user-facing tables of the database at path (DumpQueries)
// as text. The database must not be held by a running loader.
func Dump(t testing.TB, path string) string {
	t.Helper()
	db := open(t, path)
	defer db.Close()
	return DumpWith(t, db, DumpQueries...)
}

// DumpWith renders the answers of queries through q, for a test that holds
// the database open itself: each query, then its rows, one line each, the
// values quoted so that no two different rows render alike.
func DumpWith(t testing.TB, q Querier, queries ...string) string {
	t.Helper()
	var b strings.Builder
	for _, query := range queries {
		fmt.Fprintf(&b, "== %s\n", query)
		for _, row := range rows(t, q, true, query) {
			b.WriteString(strings.Join(row, "|"))
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// Count returns SELECT count(*) FROM table WHERE where (where may be empty).
func Count(t testing.TB, path, table, where string, args ...any) int {
	t.Helper()
	q := "SELECT count(*) FROM " + table
	if where != "" {
		q += " WHERE " + where
	}
	db := open(t, path)
	defer db.Close()
	var n int
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s on %s: %v", q, path, err)
	}
	return n
}

// Query returns the rows of a query as strings (SQL NULL as "NULL"), for
// precise assertions.
func Query(t testing.TB, path, query string, args ...any) [][]string {
	t.Helper()
	db := open(t, path)
	defer db.Close()
	return QueryWith(t, db, query, args...)
}

// QueryWith is Query through q, for a test that holds the database open itself.
func QueryWith(t testing.TB, q Querier, query string, args ...any) [][]string {
	t.Helper()
	return rows(t, q, false, query, args...)
}

// open opens the database at path read-only.
func open(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	return db
}

func rows(t testing.TB, q Querier, quote bool, query string, args ...any) [][]string {
	t.Helper()
	rs, err := q.QueryContext(context.Background(), query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rs.Close()
	cols, err := rs.Columns()
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var out [][]string
	for rs.Next() {
		if err := rs.Scan(ptrs...); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		row := make([]string, len(vals))
		for i, v := range vals {
			row[i] = cell(v, quote)
		}
		out = append(out, row)
	}
	if err := rs.Err(); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return out
}

// cell renders one value as database/sql would convert it to a string, SQL
// NULL as NULL, and text quoted when quote is set.
func cell(v any, quote bool) string {
	var s string
	switch v := v.(type) {
	case nil:
		return "NULL"
	case []byte:
		s = string(v)
	case string:
		s = v
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	case time.Time:
		s = v.Format(time.RFC3339Nano)
	default:
		s = fmt.Sprint(v)
	}
	if quote {
		return strconv.Quote(s)
	}
	return s
}
