package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// names lists dir, so a test sees any temporary file left behind.
func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func TestWriteFileReplacesWholeWithThePermissionsAsked(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "dir")
	path := filepath.Join(dir, "availability.json")
	for _, content := range []string{"old", "new content"} {
		if err := WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(path); err != nil || string(got) != content {
			t.Fatalf("file = %q, %v; want %q", got, err, content)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode = %v, %v; want 0644", fi.Mode(), err)
	}
	if got := names(t, dir); !slices.Equal(got, []string{"availability.json"}) {
		t.Errorf("directory holds %v, want only the file", got)
	}
}

// Whatever step fails, the destination keeps its old content and no
// temporary file stays behind.
func TestEveryFailureLeavesTheOldFileAndNoTemporaryFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "copy.db")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	injected := errors.New("injected")
	cases := map[string]struct {
		path   string
		create func(tmp string) error
		want   string
	}{
		"the writer fails after writing": {path, func(tmp string) error {
			if err := os.WriteFile(tmp, []byte("half"), 0o644); err != nil {
				return err
			}
			return injected
		}, "injected"},
		"the writer writes nothing": {path, func(string) error { return nil }, "fsync"},
		"the rename fails": {path, func(tmp string) error {
			// A directory at the temporary name cannot be renamed over a file.
			return os.Mkdir(tmp, 0o755)
		}, "rename"},
		"the directory cannot be made": {filepath.Join(path, "under-a-file"), func(tmp string) error {
			t.Error("create called although the directory is a file")
			return nil
		}, "create directory"},
	}
	for name, c := range cases {
		err := Replace(c.path, c.create)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one saying %q", name, err, c.want)
		}
		if got, _ := os.ReadFile(path); string(got) != "old" {
			t.Errorf("%s: the destination now holds %q", name, got)
		}
		if got := names(t, dir); !slices.Equal(got, []string{"copy.db"}) {
			t.Errorf("%s: directory holds %v, want only the old file", name, got)
		}
	}
}

// Replace hands over a name that does not exist yet (VACUUM INTO refuses an
// existing file), hidden, beside the destination.
func TestReplaceGivesAFreshHiddenNameBesideTheDestination(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "parking-20261126T000000Z.db")
	var seen []string
	for range 2 {
		err := Replace(path, func(tmp string) error {
			if _, err := os.Lstat(tmp); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("temporary name %s exists already (%v)", tmp, err)
			}
			if filepath.Dir(tmp) != dir || !strings.HasPrefix(filepath.Base(tmp), ".") {
				t.Errorf("temporary name %s is not hidden beside %s", tmp, path)
			}
			seen = append(seen, tmp)
			return os.WriteFile(tmp, []byte("x"), 0o600)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if seen[0] == seen[1] {
		t.Errorf("two replacements used the same temporary name %s", seen[0])
	}
}
