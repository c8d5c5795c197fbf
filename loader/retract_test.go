package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/internal/clitest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/dbtest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/snapshottest"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store/filestore"
)

func runLoader(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return clitest.Run(t, loaderCmd(env, args...))
}

// TestRetractCommand (issue 13, item 1): a snapshot fetched a year ahead
// that a loader applied before the guard existed is retracted with the
// command of the runbook; the database is the one that never had it, and a
// backfill of the whole store does not bring it back.
func TestRetractCommand(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "snapshots")
	st, err := filestore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	const n = 6
	if err := snapshottest.Month(ctx, st, bfStart, n, bfInterval, 2); err != nil {
		t.Fatal(err)
	}
	// What an older loader let through: the file's write time is its fetch
	// time, so the guard (a fetch time ahead of the write time) does not see it.
	ahead := bfStart.AddDate(1, 0, 0)
	bad, _, err := snapshottest.Put(ctx, st, snapshottest.Availability(ahead))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(dir, bad.Key), ahead, ahead); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(t.TempDir(), "parking.db")
	env := []string{"PARKING_STORE=file://" + dir, "PARKING_DB=" + db}
	all := []string{"-from", bfStart.Format(time.RFC3339), "-to", ahead.AddDate(0, 0, 1).Format(time.RFC3339)}
	if r := runLoaderBackfill(t, env, all...); r.code != 0 || r.summary.Applied != n+3 {
		t.Fatalf("backfill: exit %d, %+v\n%s", r.code, r.summary, r.stderr)
	}
	latestAhead := func() int {
		return dbtest.Count(t, db, "availability_latest", "observed_at LIKE ?", ahead.Format("2006")+"-%")
	}
	if latestAhead() == 0 {
		t.Fatal("the snapshot a year ahead did not become the latest values: the test proves nothing")
	}
	clean := filepath.Join(t.TempDir(), "clean.db")
	if r := runLoaderBackfill(t, []string{"PARKING_STORE=file://" + dir, "PARKING_DB=" + clean},
		"-from", bfStart.Format(time.RFC3339), "-to", bfStart.AddDate(0, 0, 1).Format(time.RFC3339)); r.code != 0 {
		t.Fatalf("clean backfill: exit %d\n%s", r.code, r.stderr)
	}

	retract := []string{"retract", "-key", bad.Key, "-reason", "fetched a year ahead"}
	held, err := sqlite.Open(ctx, db, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runLoader(t, env, retract...)
	held.Close()
	if code != 2 || !strings.Contains(stderr, "refused") || !strings.Contains(stderr, "Stop the running loader first") {
		t.Fatalf("while a loader holds the database: exit %d\n%s", code, stderr)
	}

	code, stdout, stderr := runLoader(t, env, retract...)
	var res sqlite.RetractResult
	if code != 0 || json.Unmarshal([]byte(stdout), &res) != nil || len(res.Snapshots) != 1 || res.Snapshots[0].Outcome != "applied" || res.Reread == 0 {
		t.Fatalf("retract: exit %d, %s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, `"msg":"snapshot retracted"`) {
		t.Errorf("the retraction is not logged:\n%s", stderr)
	}
	want := dbtest.Dump(t, clean)
	if got := dbtest.Dump(t, db); got != want {
		t.Fatalf("after the retraction the database is not the one that never had the snapshot:\n%.3000s\nwant\n%.3000s", got, want)
	}
	if r := runLoaderBackfill(t, env, all...); r.code != 0 || r.summary.Skipped != n+3 || r.summary.Applied != 0 {
		t.Fatalf("backfill after the retraction: exit %d, %+v\n%s", r.code, r.summary, r.stderr)
	}
	if got := dbtest.Dump(t, db); got != want || latestAhead() != 0 {
		t.Fatal("a backfill brought the retracted snapshot back")
	}
	if code, _, stderr := runLoader(t, env, "retract", "-reason", "x"); code != 1 || !strings.Contains(stderr, "-key is required") {
		t.Errorf("without -key: exit %d\n%s", code, stderr)
	}
}
