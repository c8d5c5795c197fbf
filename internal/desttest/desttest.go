// Package desttest holds the behaviour every publication destination
// (store.Destination) must have, run against each backend by its own tests.
package desttest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
)

// Object is what a backend's test reads back of a published object.
type Object struct {
	Body []byte
	// ContentType and CacheControl as the backend serves them; a backend
	// with no place for them (a directory) sets HasHeaders false.
	ContentType, CacheControl string
	HasHeaders                bool
}

// Read reads back the object at key of the destination under test;
// store.ErrNotFound when there is none.
type Read func(t *testing.T, key string) (Object, error)

// Run checks dest's contract: whole objects replaced with their headers,
// IfAbsent refusing an existing key, bad keys and options refused without a
// write.
func Run(t *testing.T, dest store.Destination, read Read) {
	ctx := context.Background()
	opts := store.ObjectOptions{ContentType: "application/json", CacheControl: "public, max-age=60"}

	t.Run("replace", func(t *testing.T) {
		put(t, dest, "availability.json", `{"v":1}`, opts)
		check(t, read, "availability.json", `{"v":1}`, opts)
		// A body already read to its end is still sent whole: PutObject rewinds.
		body := strings.NewReader(`{"v":2, "longer": true}`)
		io.Copy(io.Discard, body)
		if err := dest.PutObject(ctx, "availability.json", body, opts); err != nil {
			t.Fatal(err)
		}
		check(t, read, "availability.json", `{"v":2, "longer": true}`, opts)
		// Shorter again: nothing of the longer object may remain.
		short := store.ObjectOptions{ContentType: "application/geo+json", CacheControl: "public, max-age=300"}
		put(t, dest, "availability.json", `{}`, short)
		check(t, read, "availability.json", `{}`, short)
	})

	t.Run("nested keys", func(t *testing.T) {
		key := "parquet/availability/month=2026-11/availability-2026-11.parquet"
		o := store.ObjectOptions{ContentType: "application/vnd.apache.parquet", CacheControl: "public, max-age=86400"}
		put(t, dest, key, "PAR1...PAR1", o)
		check(t, read, key, "PAR1...PAR1", o)
	})

	t.Run("if absent", func(t *testing.T) {
		key := "db/parking-2026-11-26.db"
		o := store.ObjectOptions{ContentType: "application/vnd.sqlite3", CacheControl: "public, max-age=31536000, immutable", IfAbsent: true}
		put(t, dest, key, "first copy", o)
		err := dest.PutObject(ctx, key, strings.NewReader("second copy"), o)
		if !errors.Is(err, store.ErrExists) {
			t.Fatalf("second IfAbsent put: %v, want ErrExists", err)
		}
		check(t, read, key, "first copy", o)
		// Without IfAbsent the same key is replaced.
		o.IfAbsent = false
		put(t, dest, key, "replaced", o)
		check(t, read, key, "replaced", o)
	})

	t.Run("refused", func(t *testing.T) {
		snapKey := snapshot.Key(feed.Availability, time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC), strings.Repeat("ab", 32))
		for _, key := range []string{"", "/abs", "a//b", "../up", "a/../b", ".hidden", "a/.tmp-1", "_state/cursor",
			"sp ace", "a\\b", "a?b", "\u4e2d", snapKey, strings.Repeat("k", 600)} {
			err := dest.PutObject(ctx, key, strings.NewReader("x"), opts)
			if !errors.Is(err, store.ErrOutside) {
				t.Errorf("PutObject(%q): %v, want ErrOutside", key, err)
			}
			if key != "" && !strings.Contains(key, "..") && len(key) < 255 {
				if _, err := read(t, key); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("after the refused PutObject(%q) the key reads %v, want not found", key, err)
				}
			}
		}
		if err := dest.PutObject(ctx, "untyped.bin", strings.NewReader("x"), store.ObjectOptions{}); err == nil {
			t.Error("PutObject without a Content-Type succeeded")
		}
		if _, err := read(t, "untyped.bin"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("after the refused untyped put: %v, want not found", err)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		put(t, dest, "lots.geojson", "old", opts)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := dest.PutObject(cctx, "lots.geojson", strings.NewReader("new"), opts); err == nil {
			t.Fatal("PutObject with a cancelled context succeeded")
		}
		check(t, read, "lots.geojson", "old", opts)
	})
}

func put(t *testing.T, dest store.Destination, key, body string, opts store.ObjectOptions) {
	t.Helper()
	if err := dest.PutObject(context.Background(), key, strings.NewReader(body), opts); err != nil {
		t.Fatalf("PutObject(%s): %v", key, err)
	}
}

func check(t *testing.T, read Read, key, body string, opts store.ObjectOptions) {
	t.Helper()
	got, err := read(t, key)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	if !bytes.Equal(got.Body, []byte(body)) {
		t.Errorf("%s holds %q, want %q", key, got.Body, body)
	}
	if got.HasHeaders && (got.ContentType != opts.ContentType || got.CacheControl != opts.CacheControl) {
		t.Errorf("%s: Content-Type %q, Cache-Control %q; want %q, %q", key, got.ContentType, got.CacheControl, opts.ContentType, opts.CacheControl)
	}
}
