package reliability

import (
	"context"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/internal/consumetest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/feedtest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/logtest"
	"github.com/parking-newtaipei/parking-newtaipei/shared/extract"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/load/consume"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue/sqlitequeue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store/filestore"
)

// world is one installation on the embedded backends: a snapshot directory,
// a SQLite queue and a database path, used in-process.
type world struct {
	t     testing.TB
	dir   string
	store *filestore.Store
	queue *sqlitequeue.Queue
	db    string
	logs  *logtest.Buffer
	// locking is the mode of the in-process loader ("": auto).
	locking sqlite.Locking
}

func newWorld(t testing.TB) *world {
	t.Helper()
	dir := t.TempDir()
	w := &world{t: t, dir: dir, db: filepath.Join(dir, "parking.db"), logs: &logtest.Buffer{}}
	var err error
	if w.store, err = filestore.Open(filepath.Join(dir, "snapshots")); err != nil {
		t.Fatalf("open store: %v", err)
	}
	// MaxReceive < 0: the tests decide what is dead-lettered, not a redrive count.
	if w.queue, err = sqlitequeue.Open(context.Background(), w.queuePath(), sqlitequeue.Options{MaxReceive: -1}); err != nil {
		t.Fatalf("open queue: %v", err)
	}
	t.Cleanup(func() { w.queue.Close() })
	return w
}

func (w *world) queuePath() string { return filepath.Join(w.dir, "queue.db") }

// bodySnapshot wraps one response body into a snapshot, as a fetch would.
func bodySnapshot(d feed.Dataset, at time.Time, body []byte) *snapshot.Snapshot {
	return &snapshot.Snapshot{
		Format: snapshot.FormatName, Version: snapshot.Version, Dataset: d, Source: feed.JSON,
		FetchedAt: at.UTC(), Origin: "reliability-test",
		Responses: []snapshot.Response{{
			Method: http.MethodGet, URL: "https://data.ntpc.gov.tw/api/datasets/" + d.UUID() + "/json?page=0&size=1000",
			Status: http.StatusOK, RequestedAt: at.UTC(), ReceivedAt: at.UTC(), Body: body,
		}},
	}
}

func lotsSnapshot(at time.Time, rows []feed.LotRow) *snapshot.Snapshot {
	return bodySnapshot(feed.Lots, at, feedtest.JSONBody(rows))
}

func availabilitySnapshot(at time.Time, rows []feed.AvailabilityRow) *snapshot.Snapshot {
	return bodySnapshot(feed.Availability, at, feedtest.JSONBody(rows))
}

// publish stores a snapshot the way the extractor does and returns the
// encoded message announcing it (not yet sent).
func publish(t testing.TB, st store.Store, snap *snapshot.Snapshot, rows int) []byte {
	t.Helper()
	res, data, err := extract.Prepare(snap, rows)
	if err != nil {
		t.Fatalf("encode snapshot: %v", err)
	}
	loc, err := st.Put(context.Background(), res.Key, data, store.Meta{
		Dataset: string(res.Dataset), FetchedAt: res.FetchedAt, SHA256: res.SHA256, FormatVersion: snap.Version,
	})
	if err != nil {
		t.Fatalf("store %s: %v", res.Key, err)
	}
	body, err := queue.EncodeMessage(extract.Message(res, loc))
	if err != nil {
		t.Fatalf("encode message: %v", err)
	}
	return body
}

func send(t testing.TB, q queue.Queue, bodies ...[]byte) {
	t.Helper()
	// Batches of 10: the SQS limit, and what sqsqueue sends per call anyway.
	for start := 0; start < len(bodies); start += 10 {
		if err := q.Send(context.Background(), bodies[start:min(start+10, len(bodies))]...); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
}

// drain runs the loader's consume loop in-process until the queue is empty.
func (w *world) drain(tune func(*consume.Config)) {
	w.t.Helper()
	drainInto(w.t, w.db, w.locking, w.queue, w.store, w.logs, tune)
}

func drainInto(t testing.TB, dbPath string, locking sqlite.Locking, q queue.Queue, st store.Store, logs *logtest.Buffer, tune func(*consume.Config)) {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, dbPath, sqlite.Options{Locking: locking})
	if err != nil {
		t.Fatalf("open database: %v", err)
	}
	defer db.Close()
	cfg := consume.Config{Queue: q, Store: st, Visibility: time.Minute, Logger: slog.New(slog.NewJSONHandler(logs, nil))}
	if tune != nil {
		tune(&cfg)
	}
	if _, err := consumetest.DrainDB(ctx, db, cfg); err != nil {
		t.Fatalf("consume: %v", err)
	}
	if locking != "" && db.Locking() != locking {
		t.Fatalf("the loader ran in %s mode, want %s", db.Locking(), locking)
	}
}

func (w *world) queueEmpty() {
	w.t.Helper()
	v, f, err := w.queue.Len(context.Background())
	if err != nil {
		w.t.Fatalf("queue length: %v", err)
	}
	if v+f != 0 {
		w.t.Fatalf("queue still holds %d visible and %d in-flight messages; logs:\n%s", v, f, w.logs)
	}
}
