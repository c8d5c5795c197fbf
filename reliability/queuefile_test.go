package reliability

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"strings"
	"testing"

	"github.com/parking-newtaipei/parking-newtaipei/internal/dbtest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/feedtest"
)

// TestFaultsDamagedQueue: the local queue file is damaged (issue 13 item 6).
// Both binaries must stop with exit 1 and an error naming the file, the
// file must stay as it was, and the documented recovery (move it aside,
// start with a new queue, `loader serve -reconcile`) must apply the stored
// snapshot whose message was lost with the file. Before the fix, a damaged
// page the extractor's inserts never read let it enqueue with exit 0 while
// the loader retried its receive forever at WARN.
func TestFaultsDamagedQueue(t *testing.T) {
	fd := feedtest.NewServer(t)
	for _, c := range []struct {
		name   string
		damage func(t *testing.T, file []byte, pageSize int, deadLettersRoot int) []byte
	}{
		{"dead-letter table damaged", func(t *testing.T, file []byte, pageSize, root int) []byte {
			page := file[(root-1)*pageSize : root*pageSize]
			for i := range page {
				page[i] = byte(i*31 + 7)
			}
			return file
		}},
		{"header overwritten", func(t *testing.T, file []byte, _, _ int) []byte {
			return append([]byte(feedtest.WAFPage), file[len(feedtest.WAFPage):]...)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t)
			qpath := w.queuePath()
			env := baseEnv("PARKING_STORE=file://"+w.store.Dir(), "PARKING_QUEUE=sqlite://"+qpath, "PARKING_FEED_BASE_URL="+fd.URL)
			loader := loaderEnv(w.dir, "file://"+w.store.Dir(), "sqlite://"+qpath, "PARKING_POLL_WAIT=50ms")
			if code, log := run(t, env, "extractor", "fetch", "-dataset", "lots"); code != 0 {
				t.Fatalf("extractor exited %d on a healthy queue; log:\n%s", code, log)
			}
			if code, log := run(t, loader, "loader", "serve", "-drain"); code != 0 {
				t.Fatalf("loader exited %d on a healthy queue; log:\n%s", code, log)
			}
			// Stored and announced, not yet applied: its message is lost with the file.
			if code, log := run(t, env, "extractor", "fetch", "-dataset", "availability"); code != 0 {
				t.Fatalf("extractor exited %d on a healthy queue; log:\n%s", code, log)
			}

			// Damage the file with nobody holding it (closing the last
			// connection folds the WAL into it).
			pageSize, root := queueLayout(t, qpath)
			w.queue.Close()
			good, err := os.ReadFile(qpath)
			if err != nil {
				t.Fatal(err)
			}
			damaged := c.damage(t, good, pageSize, root)
			if err := os.WriteFile(qpath, damaged, 0o644); err != nil {
				t.Fatal(err)
			}

			code, log := run(t, env, "extractor", "fetch", "-dataset", "availability")
			if code != 1 || !strings.Contains(log, qpath) || !strings.Contains(log, "corrupt queue") {
				t.Fatalf("extractor exited %d on a damaged queue, want 1 with an error naming %s as corrupt; log:\n%s", code, qpath, log)
			}
			extractorCode, extractorSaid := code, lastLine(log)
			code, log = run(t, loader, "loader", "serve", "-drain")
			if code != 1 || !strings.Contains(log, qpath) || !strings.Contains(log, "corrupt queue") {
				t.Fatalf("loader exited %d on a damaged queue, want 1 with an error naming %s as corrupt; log:\n%s", code, qpath, log)
			}
			loaderCode, loaderSaid := code, lastLine(log)
			if after, err := os.ReadFile(qpath); err != nil || !bytes.Equal(after, damaged) {
				t.Fatalf("the damaged queue file was changed (%v)", err)
			}

			// The runbook's recovery: the store keeps the snapshot whose
			// message was in the damaged file; a new queue and -reconcile
			// apply it.
			for _, side := range []string{"", "-wal", "-shm"} {
				if err := os.Rename(qpath+side, qpath+side+".damaged"); err != nil && !os.IsNotExist(err) {
					t.Fatal(err)
				}
			}
			if code, log := run(t, loader, "loader", "serve", "-drain", "-reconcile", "24h"); code != 0 {
				t.Fatalf("loader -reconcile exited %d with a new queue; log:\n%s", code, log)
			}
			applied := dbtest.Count(t, w.db, "snapshots", "outcome = 'applied' AND dataset = 'availability'")
			if applied != 1 {
				t.Fatalf("%d availability snapshots applied after the recovery, want the 1 whose message was lost", applied)
			}
			report(t, "damaged queue (%s): extractor exit %d: %s; loader exit %d: %s; file unchanged; recovered availability snapshots: %d",
				c.name, extractorCode, extractorSaid, loaderCode, loaderSaid, applied)
		})
	}
}

// queueLayout reads the page size of the queue file at path and the root
// page of its dead-letter table.
func queueLayout(t *testing.T, path string) (pageSize, deadLettersRoot int) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if err := db.QueryRowContext(ctx, "PRAGMA page_size").Scan(&pageSize); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(ctx, "SELECT rootpage FROM sqlite_schema WHERE name = 'dead_letters'").Scan(&deadLettersRoot); err != nil {
		t.Fatal(err)
	}
	return pageSize, deadLettersRoot
}
