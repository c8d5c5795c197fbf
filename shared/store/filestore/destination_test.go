package filestore_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parking-newtaipei/parking-newtaipei/internal/desttest"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store/filestore"
)

func TestDestination(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "public")
	dest, err := filestore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	desttest.Run(t, dest, func(t *testing.T, key string) (desttest.Object, error) {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(key)))
		if errors.Is(err, fs.ErrNotExist) {
			return desttest.Object{}, store.ErrNotFound
		}
		return desttest.Object{Body: b}, err
	})
	// Nothing but the published files is left behind: no temp file from a
	// replace, a refused IfAbsent or a cancelled write.
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") {
			t.Errorf("left behind: %s", path)
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			// A web server serving the directory must be able to read it.
			if fi.Mode().Perm()&0o044 != 0o044 {
				t.Errorf("%s has mode %v: not readable by group and others", path, fi.Mode())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A symbolic link in the destination cannot lead a published object outside it.
func TestDestinationSymlinkEscape(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "public")
	dest, err := filestore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "db")); err != nil {
		t.Fatal(err)
	}
	err = dest.PutObject(context.Background(), "db/parking.db", strings.NewReader("x"),
		store.ObjectOptions{ContentType: "application/vnd.sqlite3"})
	if err == nil {
		t.Fatal("PutObject through a symbolic link out of the destination succeeded")
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatalf("the directory outside holds %d entries after the refused write", len(entries))
	}
}
