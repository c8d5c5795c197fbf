package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/internal/awstest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/dbtest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/feedtest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/snapshottest"
	"github.com/parking-newtaipei/parking-newtaipei/shared/clock"
	"github.com/parking-newtaipei/parking-newtaipei/shared/load/backfill"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store/filestore"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store/s3store"
)

// bfStart is 23:00 Taipei: the range crosses a UTC day.
var bfStart = time.Date(2026, 11, 26, 23, 0, 0, 0, clock.Taipei)

const bfInterval = 10 * time.Minute

// bfStore fills a file store with n availability snapshots and two lots snapshots.
func bfStore(t *testing.T, n int) (store.Store, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "snapshots")
	st, err := filestore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := snapshottest.Month(context.Background(), st, bfStart, n, bfInterval, 4); err != nil {
		t.Fatal(err)
	}
	return st, "file://" + dir
}

// loaderCmd is the loader binary (built by TestMain) with a clean environment.
func loaderCmd(env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(binDir, "loader"), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	return cmd
}

type bfRun struct {
	code    int
	summary backfill.Summary
	stderr  string
}

func runLoaderBackfill(t *testing.T, env []string, args ...string) bfRun {
	t.Helper()
	cmd := loaderCmd(env, append([]string{"backfill"}, args...)...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := bfRun{stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	if stdout.Len() > 0 {
		if err := json.Unmarshal([]byte(stdout.String()), &r.summary); err != nil {
			t.Fatalf("summary %q: %v", stdout.String(), err)
		}
	}
	return r
}

func rangeArgs(n int) []string {
	return []string{"-from", bfStart.Format(time.RFC3339), "-to", bfStart.Add(time.Duration(n) * bfInterval).Format(time.RFC3339)}
}

// TestBackfillTwice: the second backfill of a range skips every snapshot
// without downloading it and leaves the database exactly as it was.
func TestBackfillTwice(t *testing.T) {
	const n = 30
	_, storeURL := bfStore(t, n)
	db := filepath.Join(t.TempDir(), "parking.db")
	env := []string{"PARKING_STORE=" + storeURL, "PARKING_DB=" + db}
	r := runLoaderBackfill(t, env, rangeArgs(n)...)
	if r.code != 0 || r.summary.Applied != n+2 || r.summary.Failed != 0 {
		t.Fatalf("first backfill: exit %d, %+v\n%s", r.code, r.summary, r.stderr)
	}
	if !strings.Contains(r.stderr, `"msg":"backfill finished"`) {
		t.Errorf("no summary line in the log:\n%s", r.stderr)
	}
	first := dbtest.Dump(t, db)
	r = runLoaderBackfill(t, env, append(rangeArgs(n), "-dataset", "all")...)
	if r.code != 0 || r.summary.Skipped != n+2 || r.summary.Applied != 0 || r.summary.Bytes != 0 {
		t.Fatalf("second backfill: exit %d, %+v\n%s", r.code, r.summary, r.stderr)
	}
	if dbtest.Dump(t, db) != first {
		t.Fatal("the second backfill changed the database")
	}
}

// TestBackfillFromS3 runs the binary against the S3 test server, configured
// the way a deployment is: the SDK's standard environment.
func TestBackfillFromS3(t *testing.T) {
	const n = 12
	client, bucket := awstest.S3(t)
	st := s3store.New(client, bucket, "prod/snapshots")
	if err := snapshottest.Month(context.Background(), st, bfStart, n, bfInterval, 4); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(t.TempDir(), "parking.db")
	env := append(awstest.Env(t), "PARKING_STORE=s3://"+bucket+"/prod/snapshots", "PARKING_DB="+db)
	r := runLoaderBackfill(t, env, rangeArgs(n)...)
	if r.code != 0 || r.summary.Applied != n+2 {
		t.Fatalf("exit %d, %+v\n%s", r.code, r.summary, r.stderr)
	}
	// The same snapshots from a file store give the same database.
	_, fileURL := bfStore(t, n)
	other := filepath.Join(t.TempDir(), "file.db")
	runLoaderBackfill(t, []string{"PARKING_STORE=" + fileURL, "PARKING_DB=" + other}, rangeArgs(n)...)
	if dbtest.Dump(t, db) != dbtest.Dump(t, other) {
		t.Fatal("backfill from S3 and from a directory differ")
	}
}

// TestBackfillSIGKILL kills the backfill at several points, each after it has
// committed some transactions (seen in its log, never guessed with a sleep),
// restarts it, and compares the end result with an uninterrupted backfill.
func TestBackfillSIGKILL(t *testing.T) {
	const n = 60
	_, storeURL := bfStore(t, n)
	ref := filepath.Join(t.TempDir(), "reference.db")
	if r := runLoaderBackfill(t, []string{"PARKING_STORE=" + storeURL, "PARKING_DB=" + ref}, rangeArgs(n)...); r.code != 0 {
		t.Fatalf("reference backfill: exit %d\n%s", r.code, r.stderr)
	}
	want := dbtest.Dump(t, ref)

	db := filepath.Join(t.TempDir(), "parking.db")
	env := []string{"PARKING_STORE=" + storeURL, "PARKING_DB=" + db}
	args := append([]string{"backfill", "-batch", "3", "-concurrency", "2", "-log-level", "debug"}, rangeArgs(n)...)
	// Kill after the 1st commit, then 4 commits into the next run, then 7.
	for i, commits := range []int{1, 4, 7} {
		killAfterCommits(t, loaderCmd(env, args...), commits)
		if _, err := os.Stat(db + "-journal"); err == nil {
			t.Logf("kill %d left a hot journal; the next open rolls it back", i+1)
		}
	}
	r := runLoaderBackfill(t, env, args[1:]...)
	if r.code != 0 {
		t.Fatalf("final run: exit %d\n%s", r.code, r.stderr)
	}
	if r.summary.Skipped < 1+4+7 || r.summary.Applied+r.summary.Skipped != n+2 {
		t.Errorf("final run %+v: want the committed snapshots skipped and the rest applied", r.summary)
	}
	if got := dbtest.Dump(t, db); got != want {
		t.Fatal("a backfill killed three times and restarted differs from an uninterrupted one")
	}
}

// killAfterCommits starts cmd, reads its log until it has reported commits
// committed transactions, and kills it with SIGKILL.
func killAfterCommits(t *testing.T, cmd *exec.Cmd, commits int) {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	seen := 0
	var log []string
	for seen < commits && sc.Scan() {
		log = append(log, sc.Text())
		if strings.Contains(sc.Text(), `"msg":"committed"`) {
			seen++
		}
	}
	if seen < commits {
		cmd.Wait()
		t.Fatalf("the backfill ended after %d commits, before the kill point %d:\n%s", seen, commits, strings.Join(log, "\n"))
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Drain the pipe so Wait returns, then check that it was the kill that ended it.
	for sc.Scan() {
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the backfill was not killed: %v", err)
	}
}

// TestBackfillRefusedWhileLoaderHolds: a running loader holds the database;
// a backfill must refuse clearly and write nothing.
func TestBackfillRefusedWhileLoaderHolds(t *testing.T) {
	_, storeURL := bfStore(t, 3)
	db := filepath.Join(t.TempDir(), "parking.db")
	held, err := sqlite.Open(context.Background(), db, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	r := runLoaderBackfill(t, []string{"PARKING_STORE=" + storeURL, "PARKING_DB=" + db}, rangeArgs(3)...)
	if r.code != 2 {
		t.Fatalf("exit %d, want 2\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"refused", "held by another loader", "stop the running loader", "extractor replay"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	known, err := held.Known(context.Background(), []string{"x"})
	if err != nil || len(known) != 0 {
		t.Fatalf("known %v, %v", known, err)
	}
}

// TestBackfillAllowMassDelete: a lots snapshot that removes most lots is
// refused by a backfill, and applied by one run with -allow-mass-delete
// (which used to be ignored).
func TestBackfillAllowMassDelete(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "snapshots")
	st, err := filestore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	lots := feedtest.SampleLots()
	if _, _, err := snapshottest.Put(ctx, st, snapshottest.Lots(bfStart, lots)); err != nil {
		t.Fatal(err)
	}
	mass, _, err := snapshottest.Put(ctx, st, snapshottest.Lots(bfStart.Add(bfInterval), lots[:1]))
	if err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(t.TempDir(), "parking.db")
	env := []string{"PARKING_STORE=file://" + dir, "PARKING_DB=" + db}
	active := func() int { return dbtest.Count(t, db, "parking_lots", "deleted_at IS NULL") }

	r := runLoaderBackfill(t, env, rangeArgs(2)...)
	if r.code != 0 || r.summary.Applied != 1 || r.summary.Refused != 1 {
		t.Fatalf("without the flag: exit %d, %+v\n%s", r.code, r.summary, r.stderr)
	}
	if got := dbtest.Query(t, db, "SELECT outcome FROM snapshots WHERE key = ?", mass.Key); len(got) != 1 || got[0][0] != "refused" {
		t.Fatalf("ledger of the mass delete without the flag: %v", got)
	}
	before := active()
	if before < 2 {
		t.Fatalf("%d active lots after the first snapshot", before)
	}

	r = runLoaderBackfill(t, env, append(rangeArgs(2), "-allow-mass-delete")...)
	if r.code != 0 || r.summary.Applied != 1 || r.summary.Skipped != 1 || r.summary.Refused != 0 {
		t.Fatalf("with the flag: exit %d, %+v\n%s", r.code, r.summary, r.stderr)
	}
	if got := dbtest.Query(t, db, "SELECT outcome FROM snapshots WHERE key = ?", mass.Key); len(got) != 1 || got[0][0] != "applied" {
		t.Fatalf("ledger of the mass delete with the flag: %v", got)
	}
	if got := active(); got != 1 {
		t.Fatalf("%d active lots after the allowed mass delete, want 1 (of %d)", got, before)
	}
}

// TestBackfillUsage: bad arguments are refused before anything is opened.
func TestBackfillUsage(t *testing.T) {
	dir := t.TempDir()
	env := []string{"PARKING_DB=" + filepath.Join(dir, "p.db"), "PARKING_STORE=file://" + dir}
	for _, args := range [][]string{
		{},
		{"-from", "yesterday"},
		{"-from", "2026-11-27", "-to", "2026-11-26"},
		{"-from", "2026-11-26", "-dataset", "weather"},
		{"-from", "2026-11-26", "-progress", "fancy"},
	} {
		if r := runLoaderBackfill(t, env, args...); r.code != 1 || r.stderr == "" {
			t.Errorf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "p.db")); err == nil {
		t.Error("a refused command created the database")
	}
}
