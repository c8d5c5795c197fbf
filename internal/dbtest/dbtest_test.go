package dbtest

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
)

// The dump is what the equality tests rest on: the same rows dump equally
// whatever order they were written in, and any difference of value, type or
// NULL-ness shows.
func TestDumpSeesEveryDifferenceAndNoOrder(t *testing.T) {
	build := func(rows ...string) *sql.DB {
		db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "t.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if _, err := db.Exec("CREATE TABLE t (id TEXT PRIMARY KEY, name TEXT, lon REAL)"); err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if _, err := db.Exec("INSERT INTO t VALUES " + r); err != nil {
				t.Fatal(err)
			}
		}
		return db
	}
	q := "SELECT * FROM t ORDER BY id"
	a := DumpWith(t, build("('1', 'a|b', 121.5)", "('2', NULL, 0.1)"), q)
	if b := DumpWith(t, build("('2', NULL, 0.1)", "('1', 'a|b', 121.5)"), q); b != a {
		t.Errorf("the same rows in another order dump differently:\n%s\n%s", a, b)
	}
	for _, other := range [][]string{
		{"('1', 'a|b', 121.5)", "('2', 'NULL', 0.1)"},               // the text NULL is not SQL NULL
		{"('1', 'a', 121.5)", "('2', NULL, 0.1)"},                   // a value
		{"('1', 'a|b', 121.50000000000001)", "('2', NULL, 0.1)"},    // the last bit of a float
		{"('1', 'a|b', 121.5)", "('2', NULL, 0.1)", "('3', '', 0)"}, // a row
	} {
		if b := DumpWith(t, build(other...), q); b == a {
			t.Errorf("%v dumps like the original:\n%s", other, a)
		}
	}
	if !strings.Contains(a, "== "+q+"\n") {
		t.Errorf("the dump does not name its query:\n%s", a)
	}
}
