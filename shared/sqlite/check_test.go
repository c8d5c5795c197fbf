package sqlite

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
)

// historyDB writes a database whose observations span hundreds of pages
// (a b-tree of several levels), closes it and returns its path and the
// page numbers of the leaves of table, in key order.
func historyDB(t *testing.T, table string, mode Locking) (string, []int64) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "parking.db")
	db := openMode(t, path, mode)
	apply(t, db, lotsInput("lots-0", at(0), genLots(400, 0)))
	var batch []snapshot.Input
	for i := range 150 {
		batch = append(batch, availInput(fmt.Sprintf("av-%03d", i), at(1).Add(time.Duration(i)*5*time.Minute), genAvailability(400, 0, uint64(i))))
	}
	apply(t, db, batch...)
	var leaves []int64
	for _, p := range query(t, db, "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY path", table) {
		var n int64
		fmt.Sscan(p, &n)
		leaves = append(leaves, n)
	}
	if len(leaves) < 3 {
		t.Fatalf("%s has %d leaf pages, want a tree", table, len(leaves))
	}
	db.Close()
	return path, leaves
}

// scribble overwrites page n (1-based) of the file with garbage.
func scribble(t *testing.T, path string, n int64) []byte {
	t.Helper()
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const pageSize = 4096
	for i := (n - 1) * pageSize; i < n*pageSize; i++ {
		content[i] = byte(i*7 + 3)
	}
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	return content
}

func unchanged(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s changed (%d bytes before, %d after)", path, len(want), len(got))
	}
	for _, side := range []string{"-journal", "-wal"} {
		if _, err := os.Stat(path + side); err == nil {
			t.Errorf("%s%s left beside the damaged file", path, side)
		}
	}
}

// TestBoundedCheckRefusesDamageWhereItLooks: at every start, a damaged page
// of a table that does not grow with the history, or at either end of one
// that does, is refused by name, in both locking modes, and the file is left
// as it was.
func TestBoundedCheckRefusesDamageWhereItLooks(t *testing.T) {
	for _, c := range []struct {
		table string
		leaf  func([]int64) int64
		want  string
	}{
		{"parking_lots", func(l []int64) int64 { return l[len(l)/2] }, "parking_lots"},
		{"availability_obs", func(l []int64) int64 { return l[len(l)-1] }, "availability_obs"},
		{"availability_obs", func(l []int64) int64 { return l[0] }, "availability_obs"},
	} {
		for _, mode := range modes {
			t.Run(c.table+"/"+string(mode), func(t *testing.T) {
				path, leaves := historyDB(t, c.table, mode)
				content := scribble(t, path, c.leaf(leaves))
				_, err := Open(context.Background(), path, Options{Locking: mode})
				if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.want) ||
					!strings.Contains(err.Error(), "integrity check (bounded)") {
					t.Fatalf("err = %v, want the bounded check naming %s and %s", err, path, c.want)
				}
				unchanged(t, path, content)
			})
		}
	}
}

// TestFullCheckFindsWhatTheBoundedOneLeaves: a damaged page in the middle
// of the observations is beyond the bounded check (that is its bound), and
// found by -db-check full and by every backup, which never replaces the
// previous one with a damaged copy.
func TestFullCheckFindsWhatTheBoundedOneLeaves(t *testing.T) {
	ctx := context.Background()
	path, leaves := historyDB(t, "availability_obs", "")
	dir := filepath.Dir(path)
	good := filepath.Join(dir, "good.db")
	db := openTest(t, path)
	if err := db.Backup(ctx, good); err != nil {
		t.Fatal(err)
	}
	db.Close()
	backup, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	content := scribble(t, path, leaves[len(leaves)/2])

	_, err = Open(ctx, path, Options{Check: CheckFull})
	if err == nil || !strings.Contains(err.Error(), "integrity check (full)") || !strings.Contains(err.Error(), path) {
		t.Fatalf("full check: err = %v", err)
	}
	unchanged(t, path, content)

	db, err = Open(ctx, path, Options{})
	if err != nil {
		t.Fatalf("the bounded check reads no middle page of a growing table, yet: %v", err)
	}
	defer db.Close()
	err = db.Backup(ctx, good)
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "malformed") {
		t.Fatalf("backup of a damaged database: err = %v, want malformed", err)
	}
	if got, _ := os.ReadFile(good); !bytes.Equal(got, backup) {
		t.Error("a failed backup replaced the previous one")
	}
	if _, err := ParseCheck("paranoid"); err == nil {
		t.Error("ParseCheck accepted paranoid")
	}
}

// TestOpenRefusesTruncatedDatabase: a file shorter than its header says (a
// copy cut short) is refused before SQLite opens it, and left as it is.
func TestOpenRefusesTruncatedDatabase(t *testing.T) {
	path, _ := historyDB(t, "availability_obs", "")
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	content = content[:len(content)-3*4096]
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), path, Options{})
	if err == nil || !strings.Contains(err.Error(), "length check") || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("err = %v, want the length check", err)
	}
	unchanged(t, path, content)
}
