// Package tmpfs mounts small tmpfs file systems for tests that need a real
// full disk (a write that fails with ENOSPC part of the way), which no mock
// of the file system would make honest.
package tmpfs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/parking-newtaipei/parking-newtaipei/internal/ci"
)

// Mount mounts a tmpfs of size bytes on a new directory and returns its
// path; it is unmounted when the test ends. Mounting needs root: without it
// the test is skipped, except under CI (ci.Enabled), where the tests run as
// root and a skip would hide a test that never ran.
func Mount(t testing.TB, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		ci.SkipOrFail(t, "this test mounts a small tmpfs and needs root; CI runs as root")
	}
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	opt := "size=" + strconv.FormatInt(size, 10)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", opt, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs of %d bytes at %s: %v\n%s", size, dir, err, out)
	}
	// Registered after TempDir's cleanup, so it runs first: the directory
	// is unmounted before it is removed. Lazily, so that a process the test
	// started and has not reaped yet cannot keep it mounted.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("unmount %s: %v\n%s", dir, err, out)
		}
	})
	return dir
}

// Fill writes a file of filler bytes in dir so that leave bytes (rounded to
// the file system's blocks) stay free, and returns its path; removing it
// frees the space again.
func Fill(t testing.TB, dir string, leave int64) string {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatalf("statfs %s: %v", dir, err)
	}
	free := int64(st.Bavail) * st.Bsize
	if free < leave {
		t.Fatalf("%s has %d bytes free, fewer than the %d to leave", dir, free, leave)
	}
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, free-leave), 0o644); err != nil {
		t.Fatalf("fill %s: %v", dir, err)
	}
	return filler
}
