package sqlite

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
)

// holdEnv makes the test binary a lock holder: it opens the database named by
// the variable, prints "locked", and closes it when its stdin closes. SQLite's
// locks are POSIX locks, per process, so only another process can prove that
// a second loader is kept out.
const (
	holdEnv        = "DATABASE_TEST_HOLD"
	holdLockingEnv = "DATABASE_TEST_HOLD_LOCKING"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(holdEnv); path != "" {
		os.Exit(holdLock(path, Locking(os.Getenv(holdLockingEnv))))
	}
	os.Exit(m.Run())
}

// holdLock opens the database, applies one lots snapshot (so that a reader in
// another process has something to see) and holds it.
func holdLock(path string, locking Locking) int {
	ctx := context.Background()
	db, err := Open(ctx, path, Options{Locking: locking})
	if err != nil {
		fmt.Println("error:", err)
		return 3
	}
	if _, err := db.Apply(ctx, lotsInput("held", at(0), genLots(7, 0))); err != nil {
		fmt.Println("error:", err)
		return 3
	}
	fmt.Println("locked")
	_, _ = io.Copy(io.Discard, os.Stdin)
	if err := db.Close(); err != nil {
		fmt.Println("error:", err)
		return 4
	}
	return 0
}

// holder is a child process holding the database lock.
type holder struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

func startHolder(t *testing.T, path string, locking Locking) *holder {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holdEnv+"="+path, holdLockingEnv+"="+string(locking))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &holder{cmd: cmd, stdin: stdin}
	t.Cleanup(func() { h.release(t) })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "locked" {
		t.Fatalf("holder: %q, %v", line, err)
	}
	return h
}

// release closes the holder's stdin and waits for it to close the database and exit.
func (h *holder) release(t *testing.T) {
	if h.cmd.ProcessState != nil {
		return
	}
	h.stdin.Close()
	if err := h.cmd.Wait(); err != nil {
		t.Errorf("holder exit: %v", err)
	}
}

// modes are the two locking modes; tests of behaviour both must have run in each.
var modes = []Locking{LockingExclusive, LockingShared}

func openTest(t testing.TB, path string) *DB {
	t.Helper()
	return openMode(t, path, "")
}

func openMode(t testing.TB, path string, locking Locking) *DB {
	t.Helper()
	db, err := Open(context.Background(), path, Options{Now: fixedClock(), Locking: locking})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func fixedClock() func() time.Time {
	return func() time.Time { return time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC) }
}

func TestOpenPragmas(t *testing.T) {
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sub", "dir", "parking.db")
			db := openMode(t, path, mode)
			if db.Path() != path || db.Locking() != mode {
				t.Errorf("Path() = %q, Locking() = %q", db.Path(), db.Locking())
			}
			ctx := context.Background()
			want := map[string]string{
				"synchronous":  "2",
				"foreign_keys": "1",
				"temp_store":   "2",
				"cache_size":   fmt.Sprint(-DefaultCacheKiB),
				"busy_timeout": fmt.Sprint(DefaultLockTimeout.Milliseconds()),
				"user_version": fmt.Sprint(SchemaVersion()),
				"mmap_size":    "0",
			}
			if mode == LockingExclusive {
				want["locking_mode"], want["journal_mode"] = "exclusive", "delete"
			} else {
				want["locking_mode"], want["journal_mode"] = "normal", "wal"
				want["wal_autocheckpoint"] = fmt.Sprint(walAutocheckpoint)
				want["journal_size_limit"] = fmt.Sprint(walSizeLimit)
			}
			for p, w := range want {
				var got string
				if err := db.conn.QueryRowContext(ctx, "PRAGMA "+p).Scan(&got); err != nil {
					t.Fatal(err)
				}
				if got != w {
					t.Errorf("PRAGMA %s = %q, want %q", p, got, w)
				}
			}
			// In exclusive locking mode the journal is kept (with a zeroed
			// header) between transactions; it must be a rollback journal, never WAL.
			for _, suffix := range []string{"-shm", "-wal"} {
				_, err := os.Stat(path + suffix)
				if exists := err == nil; exists != (mode == LockingShared) {
					t.Errorf("%s exists: %v", path+suffix, exists)
				}
			}
		})
	}
}

// TestAutoLocking: a temporary directory is on a local file system here, so
// auto must choose shared and say why; unknown and network types choose
// exclusive.
func TestAutoLocking(t *testing.T) {
	got, reason := chooseLocking(LockingAuto, filepath.Join(t.TempDir(), "parking.db"))
	if fs := fileSystemOf(t.TempDir()); !fs.known || fs.network {
		t.Fatalf("the test directory is on %+v, not a known local file system", fs)
	}
	if got != LockingShared || !strings.Contains(reason, "local file system") {
		t.Errorf("auto on a local disk: %s (%s), want shared", got, reason)
	}
	for _, want := range modes {
		if got, _ := chooseLocking(want, "/x/parking.db"); got != want {
			t.Errorf("forced %s gave %s", want, got)
		}
	}
	if got, reason := chooseLocking(LockingAuto, "/no/such/dir/parking.db"); got != LockingExclusive || !strings.Contains(reason, "statfs") {
		t.Errorf("auto without a directory: %s (%s), want exclusive", got, reason)
	}
	for magic, fs := range fsTypes {
		if fs.name == "nfs" && (!fs.network || magic != 0x6969) {
			t.Errorf("NFS (EFS) must be a network file system: %#x %+v", magic, fs)
		}
	}
	if _, err := ParseLocking("wal"); err == nil || !strings.Contains(err.Error(), `"wal"`) {
		t.Errorf("ParseLocking(wal) = %v", err)
	}
}

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parking.db")
	ctx := context.Background()
	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Apply(ctx, lotsInput("k1", at(0), genLots(10, 0))); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, path)
	known, err := db.Known(ctx, []string{"k1", "k2"})
	if err != nil {
		t.Fatal(err)
	}
	if !known["k1"] || known["k2"] {
		t.Errorf("Known = %v", known)
	}
}

func TestOpenRefusesNonDatabase(t *testing.T) {
	dir := t.TempDir()
	cases := map[string][]byte{
		"text.db":  []byte(strings.Repeat("this is not a database\n", 300)),
		"short.db": []byte("SQLite"),
	}
	for name, content := range cases {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Open(context.Background(), path, Options{})
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "header check") {
			t.Errorf("%s: err = %v, want the file and the header check named", name, err)
		}
		got, _ := os.ReadFile(path)
		if !bytes.Equal(got, content) {
			t.Errorf("%s: file changed", name)
		}
	}
}

func TestOpenRefusesDamagedDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parking.db")
	ctx := context.Background()
	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Apply(ctx, lotsInput("k1", at(0), genLots(300, 0))); err != nil {
		t.Fatal(err)
	}
	db.Close()
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Keep page 1 (header and schema) and scribble over every later page.
	for i := 4096; i < len(content); i++ {
		content[i] = byte(i * 7)
	}
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, path, Options{})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v, want an error naming %s", err, path)
	}
	t.Logf("damaged: %v", err)
	got, _ := os.ReadFile(path)
	if !bytes.Equal(got, content) {
		t.Error("damaged file changed")
	}
}

// TestOpenRefusesShm: in exclusive mode a -shm file means someone uses WAL
// with shared memory, unsafe on a network file system; in shared mode it is
// WAL's normal companion (left behind by a killed loader, say).
func TestOpenRefusesShm(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parking.db")
	if err := os.WriteFile(path+"-shm", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), path, Options{Locking: LockingExclusive})
	if err == nil || !strings.Contains(err.Error(), "-shm") {
		t.Fatalf("err = %v", err)
	}
	openMode(t, path, LockingShared).Close()
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parking.db")
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec("PRAGMA user_version = 999"); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	_, err = Open(context.Background(), path, Options{})
	if err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("err = %v", err)
	}
}

func TestOpenLockedByAnotherProcess(t *testing.T) {
	for _, holderMode := range modes {
		for _, mode := range modes {
			t.Run(string(holderMode)+"-then-"+string(mode), func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "parking.db")
				startHolder(t, path, holderMode)
				start := time.Now()
				_, err := Open(context.Background(), path, Options{Locking: mode})
				elapsed := time.Since(start)
				if !errors.Is(err, ErrLocked) {
					t.Fatalf("err = %v, want ErrLocked", err)
				}
				if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "another loader") {
					t.Errorf("err = %v, want the file and the other loader named", err)
				}
				if elapsed > 3*time.Second {
					t.Errorf("took %v, want about the 2s lock timeout", elapsed)
				}
				t.Logf("second open refused after %v: %v", elapsed.Round(time.Millisecond), err)
			})
		}
	}
}

// TestOpenAfterHolderKilled: a SIGKILLed loader leaves its lock file (and, in
// shared mode, its WAL) behind; neither keeps the next loader out, and what
// the killed one committed is there.
func TestOpenAfterHolderKilled(t *testing.T) {
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "parking.db")
			h := startHolder(t, path, mode)
			if err := h.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			h.cmd.Wait()
			if _, err := os.Stat(path + ".lock"); err != nil {
				t.Fatalf("the killed holder's lock file: %v", err)
			}
			db := openMode(t, path, mode)
			if n := countRows(t, db, "parking_lots"); n != 7 {
				t.Errorf("%d lots after the holder was killed, want the 7 it committed", n)
			}
		})
	}
}

// TestReadersBesideTheLoader: in shared mode another process's reader sees
// what the loader committed while it runs; in exclusive mode it is kept out.
func TestReadersBesideTheLoader(t *testing.T) {
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "parking.db")
			startHolder(t, path, mode)
			// This test process is "another process" to the holder: the
			// sqlite3 shell or Python would open the file the same way.
			raw, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(200)")
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			var n int
			err = raw.QueryRow("SELECT count(*) FROM parking_lots").Scan(&n)
			switch mode {
			case LockingShared:
				if err != nil || n != 7 {
					t.Fatalf("reader beside a shared-mode loader: %d lots, %v; want 7", n, err)
				}
			case LockingExclusive:
				if err == nil || !strings.Contains(err.Error(), "locked") {
					t.Fatalf("reader beside an exclusive-mode loader: %d lots, %v; want database is locked", n, err)
				}
			}
		})
	}
}

// TestReadDoesNotBlockApply: in shared mode a reader that keeps a read
// transaction open (a slow query, a Datasette page) never makes an apply
// wait, and sees its own snapshot until it ends; the WAL stays bounded.
func TestReadDoesNotBlockApply(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "parking.db")
	db := openMode(t, path, LockingShared)
	if _, err := db.Apply(ctx, lotsInput("l0", at(0), genLots(50, 0))); err != nil {
		t.Fatal(err)
	}
	inRead := make(chan struct{})
	release := make(chan struct{})
	readDone := make(chan error, 1)
	go func() {
		readDone <- db.Read(ctx, func(r *DB) error {
			before := countRows(t, r, "availability_obs")
			close(inRead)
			<-release
			if after := countRows(t, r, "availability_obs"); after != before {
				return fmt.Errorf("the read's snapshot moved: %d then %d observations", before, after)
			}
			return nil
		})
	}()
	<-inRead
	// Hundreds of applies while the read transaction is open: each would
	// wait out the lock timeout and fail in rollback-journal mode.
	for i := range 300 {
		rows := make([]feed.AvailabilityRow, 50)
		for j := range rows {
			rows[j] = feed.AvailabilityRow{ID: lotID(j), AvailableCar: fmt.Sprint((i + j) % 40)}
		}
		if _, err := db.Apply(ctx, availInput(fmt.Sprintf("a%d", i), at(i+1), rows)); err != nil {
			t.Fatalf("apply %d while a read is open: %v", i, err)
		}
	}
	close(release)
	if err := <-readDone; err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, db, "availability_obs"); n != 300*50 {
		t.Fatalf("%d observations, want %d", n, 300*50)
	}
	// The WAL could not be reset while the read was open; the next commits
	// checkpoint it, and Close leaves none.
	for i := range 5 {
		if _, err := db.Apply(ctx, availInput(fmt.Sprintf("b%d", i), at(400+i), []feed.AvailabilityRow{{ID: lotID(0), AvailableCar: "1"}})); err != nil {
			t.Fatal(err)
		}
	}
	if st, err := os.Stat(path + "-wal"); err != nil || st.Size() > walSizeLimit+(8<<20) {
		t.Errorf("WAL after the read: %v, %v; want it bounded", st, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path + "-wal"); err == nil && st.Size() > 0 {
		t.Errorf("Close left a %d-byte WAL", st.Size())
	}
}

// TestReadViewIsReadOnly: in shared mode Read's connection cannot write,
// whatever fn tries.
func TestReadViewIsReadOnly(t *testing.T) {
	ctx := context.Background()
	db := openMode(t, filepath.Join(t.TempDir(), "parking.db"), LockingShared)
	err := db.Read(ctx, func(r *DB) error {
		_, err := r.conn.ExecContext(ctx, "INSERT INTO meta (key, value) VALUES ('x', 'y')")
		return err
	})
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "readonly") && !strings.Contains(err.Error(), "read-only") && !strings.Contains(err.Error(), "query_only") {
		t.Fatalf("write through a read view: %v, want refused", err)
	}
}

// TestSwitchModes: a database written in one mode opens in the other, data
// and all (a laptop's database copied to EFS, or a forced mode dropped).
func TestSwitchModes(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "parking.db")
	for i, mode := range []Locking{LockingShared, LockingExclusive, LockingShared} {
		db, err := Open(ctx, path, Options{Locking: mode})
		if err != nil {
			t.Fatalf("open %d (%s): %v", i, mode, err)
		}
		if _, err := db.Apply(ctx, lotsInput(fmt.Sprint("k", i), at(i), genLots(10+i, 0))); err != nil {
			t.Fatal(err)
		}
		if n := countRows(t, db, "parking_lots"); n != 10+i {
			t.Errorf("open %d (%s): %d lots, want %d", i, mode, n, 10+i)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func countRows(t testing.TB, db *DB, table string) int {
	t.Helper()
	var n int
	if err := db.conn.QueryRowContext(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// chanHandler signals when a log record with the given message arrives.
type chanHandler struct {
	msg string
	ch  chan struct{}
}

func (h chanHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h chanHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		select {
		case h.ch <- struct{}{}:
		default:
		}
	}
	return nil
}
func (h chanHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h chanHandler) WithGroup(string) slog.Handler      { return h }

func TestOpenWaitLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parking.db")
	h := startHolder(t, path, "")

	waiting := make(chan struct{}, 1)
	logger := slog.New(chanHandler{msg: "waiting for database lock", ch: waiting})
	type result struct {
		db  *DB
		err error
	}
	done := make(chan result, 1)
	go func() {
		db, err := Open(context.Background(), path, Options{WaitLock: true, LockTimeout: 100 * time.Millisecond, Logger: logger})
		done <- result{db, err}
	}()
	select {
	case <-waiting:
	case r := <-done:
		t.Fatalf("Open returned while the lock was held: %v", r.err)
	}
	h.release(t) // The holder closes the database and exits.
	r := <-done
	if r.err != nil {
		t.Fatalf("Open after the holder exited: %v", r.err)
	}
	r.db.Close()
}

func TestOpenWaitLockGivesUpWithContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parking.db")
	startHolder(t, path, "")
	waiting := make(chan struct{}, 1)
	logger := slog.New(chanHandler{msg: "waiting for database lock", ch: waiting})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := Open(ctx, path, Options{WaitLock: true, LockTimeout: 100 * time.Millisecond, Logger: logger})
		done <- err
	}()
	<-waiting
	cancel()
	if err := <-done; !errors.Is(err, ErrLocked) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want ErrLocked and context.Canceled", err)
	}
}
