package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/internal/dbtest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/feedtest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/snapshottest"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store/filestore"
)

// TestReconcileRefusalIsLoud (issue 13, item 11): a lots snapshot refused
// while reconciling at start (its message was lost) is counted like one
// refused by the loop: an EMF line with SnapshotsRefused for lots, which is
// what the stack's alarm watches.
func TestReconcileRefusalIsLoud(t *testing.T) {
	p := newPipeline(t)
	p.mustRun(0, "extractor", "fetch", "-dataset", "lots")
	p.mustRun(0, "loader", "serve", "-drain")
	st, err := filestore.Open(filepath.Join(p.dir, "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	// Stored without a message: only reconcile finds it.
	if _, _, err := snapshottest.Put(context.Background(), st, snapshottest.Lots(time.Now(), feedtest.SampleLots()[:1])); err != nil {
		t.Fatal(err)
	}
	r := p.mustRun(0, "loader", "serve", "-drain", "-reconcile", "1h")
	if n := dbtest.Count(t, p.db(), "snapshots", "outcome = 'refused'"); n != 1 {
		t.Fatalf("%d refused snapshots after reconcile, want 1\n%s", n, r.stderr)
	}
	found := false
	for _, line := range strings.Split(r.stderr, "\n") {
		var emf struct {
			Dataset          string
			SnapshotsRefused int
			AWS              *json.RawMessage `json:"_aws"`
		}
		if json.Unmarshal([]byte(line), &emf) == nil && emf.AWS != nil && emf.Dataset == "lots" && emf.SnapshotsRefused == 1 {
			found = true
		}
	}
	if !found {
		t.Fatalf("no EMF line counts the refusal:\n%s", r.stderr)
	}
}
