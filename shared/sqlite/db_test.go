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
)

// holdEnv makes the test binary a lock holder: it opens the database named by
// the variable, prints "locked", and closes it when its stdin closes. SQLite's
// locks are POSIX locks, per process, so only another process can prove that
// a second loader is kept out.
const holdEnv = "DATABASE_TEST_HOLD"

func TestMain(m *testing.M) {
	if path := os.Getenv(holdEnv); path != "" {
		os.Exit(holdLock(path))
	}
	os.Exit(m.Run())
}

func holdLock(path string) int {
	ctx := context.Background()
	db, err := Open(ctx, path, Options{})
	if err != nil {
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

func startHolder(t *testing.T, path string) *holder {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holdEnv+"="+path)
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

func openTest(t testing.TB, path string) *DB {
	t.Helper()
	db, err := Open(context.Background(), path, Options{Now: fixedClock()})
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
	path := filepath.Join(t.TempDir(), "sub", "dir", "parking.db")
	db := openTest(t, path)
	if db.Path() != path {
		t.Errorf("Path() = %q", db.Path())
	}
	ctx := context.Background()
	want := map[string]string{
		"locking_mode": "exclusive",
		"journal_mode": "delete",
		"synchronous":  "2",
		"foreign_keys": "1",
		"temp_store":   "2",
		"cache_size":   fmt.Sprint(-DefaultCacheKiB),
		"busy_timeout": fmt.Sprint(DefaultLockTimeout.Milliseconds()),
		"user_version": fmt.Sprint(SchemaVersion()),
		"mmap_size":    "0",
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
	// In exclusive locking mode the journal is kept (with a zeroed header)
	// between transactions; it must be a rollback journal, never WAL.
	for _, suffix := range []string{"-shm", "-wal"} {
		if _, err := os.Stat(path + suffix); err == nil {
			t.Errorf("%s exists", path+suffix)
		}
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

func TestOpenRefusesShm(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parking.db")
	if err := os.WriteFile(path+"-shm", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), path, Options{})
	if err == nil || !strings.Contains(err.Error(), "-shm") {
		t.Fatalf("err = %v", err)
	}
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
	path := filepath.Join(t.TempDir(), "parking.db")
	startHolder(t, path)
	start := time.Now()
	_, err := Open(context.Background(), path, Options{})
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
	h := startHolder(t, path)

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
	startHolder(t, path)
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
