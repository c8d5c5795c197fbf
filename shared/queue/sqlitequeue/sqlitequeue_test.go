package sqlitequeue

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/queue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue/queuetest"
)

// clock is a settable clock for Options.Now: visibility timeouts expire when
// the test says so, never by sleeping.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 3, 4, 5, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func openQueue(t *testing.T, path string, opts Options) *Queue {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "queue.db")
	}
	q, err := Open(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func send(t *testing.T, q *Queue, bodies ...string) {
	t.Helper()
	bs := make([][]byte, len(bodies))
	for i, b := range bodies {
		bs[i] = []byte(b)
	}
	if err := q.Send(context.Background(), bs...); err != nil {
		t.Fatal(err)
	}
}

// receive does a non-waiting receive.
func receive(t *testing.T, q *Queue, max int, visibility time.Duration) []queue.Delivery {
	t.Helper()
	ds, err := q.Receive(context.Background(), max, 0, visibility)
	if err != nil {
		t.Fatal(err)
	}
	if ds == nil {
		t.Fatal("Receive returned a nil slice; want an empty one")
	}
	return ds
}

func receiveOne(t *testing.T, q *Queue, visibility time.Duration) queue.Delivery {
	t.Helper()
	ds := receive(t, q, 1, visibility)
	if len(ds) != 1 {
		t.Fatalf("received %d messages, want 1", len(ds))
	}
	return ds[0]
}

func assertLen(t *testing.T, q *Queue, visible, inFlight int) {
	t.Helper()
	v, f, err := q.Len(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if v != visible || f != inFlight {
		t.Fatalf("Len = %d visible, %d in flight; want %d, %d", v, f, visible, inFlight)
	}
}

// Two Queues on one file, as two processes would be: every message is
// delivered exactly once while the visibility timeout holds.
func TestConcurrentReceiversNeverShareAMessage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	qs := []*Queue{openQueue(t, path, Options{}), openQueue(t, path, Options{})}
	const n = 300
	bodies := make([]string, n)
	for i := range bodies {
		bodies[i] = fmt.Sprintf("m%03d", i)
	}
	// Send in batches from both, so sends also contend with each other.
	var wg sync.WaitGroup
	for i := 0; i < n; i += 10 {
		q := qs[(i/10)%2]
		wg.Go(func() {
			var batch [][]byte
			for _, b := range bodies[i : i+10] {
				batch = append(batch, []byte(b))
			}
			if err := q.Send(context.Background(), batch...); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()

	var mu sync.Mutex
	seen := map[string]int{}
	for w := range 4 {
		q := qs[w%2]
		wg.Go(func() {
			ctx := context.Background()
			for {
				ds, err := q.Receive(ctx, 7, 0, time.Hour)
				if err != nil {
					t.Error(err)
					return
				}
				if len(ds) == 0 {
					return // the rest is in flight with the other workers
				}
				mu.Lock()
				for _, d := range ds {
					seen[string(d.Body)]++
				}
				mu.Unlock()
				if err := q.Delete(ctx, ds...); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("%d distinct messages delivered, want %d", len(seen), n)
	}
	for b, c := range seen {
		if c != 1 {
			t.Errorf("%s delivered %d times", b, c)
		}
	}
	assertLen(t, qs[0], 0, 0)
}

type result struct {
	ds  []queue.Delivery
	err error
}

// waitingReceive starts a Receive that waits as long as the contract allows
// and returns once it waits (the queue's waiting hook), with the channel its
// result arrives on.
func waitingReceive(t *testing.T, q *Queue) <-chan result {
	t.Helper()
	waiting := make(chan struct{})
	var once sync.Once
	q.waiting = func() { once.Do(func() { close(waiting) }) }
	ch := make(chan result, 1)
	go func() {
		ds, err := q.Receive(context.Background(), queue.MaxBatch, queue.MaxWait, time.Minute)
		ch <- result{ds, err}
	}()
	select {
	case <-waiting:
	case r := <-ch:
		t.Fatalf("Receive returned before waiting: %+v, %v", r.ds, r.err)
	}
	return ch
}

// guard fails the test if the result does not come within half the wait: a
// Receive that sat out its wait instead of waking cannot pass. It is a
// safety net, not synchronisation: a correct Receive answers long before.
func guard(t *testing.T, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(queue.MaxWait / 2):
		t.Fatal("Receive did not return")
		return result{}
	}
}

// ChangeVisibility(0) wakes a waiting Receive at once (a retry made
// visible): with an hour-long poll interval, only the wake-up can deliver.
func TestReceiveWakesOnChangeVisibilityZero(t *testing.T) {
	q := openQueue(t, "", Options{PollInterval: time.Hour})
	send(t, q, "m")
	d := receiveOne(t, q, time.Hour)
	ch := waitingReceive(t, q)
	if err := q.ChangeVisibility(context.Background(), 0, d); err != nil {
		t.Fatal(err)
	}
	r := guard(t, ch)
	if r.err != nil || len(r.ds) != 1 || r.ds[0].ReceiveCount != 2 {
		t.Fatalf("Receive: %+v, %v", r.ds, r.err)
	}
}

// Another process's Send wakes nothing here: it is found by polling.
func TestReceivePollsForOtherWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	consumer := openQueue(t, path, Options{PollInterval: 5 * time.Millisecond})
	producer := openQueue(t, path, Options{})
	ch := waitingReceive(t, consumer)
	send(t, producer, "from elsewhere")
	r := guard(t, ch)
	if r.err != nil || len(r.ds) != 1 {
		t.Fatalf("Receive: %+v, %v", r.ds, r.err)
	}
}

// A handle stays good after its visibility timeout as long as nobody
// received the message again (as in SQS): the slow worker's Delete still
// counts. (The SQS test server forgets the handle at the timeout, so this is
// not in the suite.)
func TestHandleValidAfterTimeoutUntilReceivedAgain(t *testing.T) {
	clk := newClock()
	q := openQueue(t, "", Options{Now: clk.Now})
	send(t, q, "m")
	d := receiveOne(t, q, time.Minute)
	clk.Advance(2 * time.Minute)
	assertLen(t, q, 1, 0)
	if err := q.Delete(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	assertLen(t, q, 0, 0)
}

// DeadLetters lists the dead-letter table with why and when; Redrive moves
// every dead letter back with fresh receives, keeping its ID, which a new
// message never reuses.
func TestDeadLettersAndRedrive(t *testing.T) {
	clk := newClock()
	q := openQueue(t, "", Options{Now: clk.Now, MaxReceive: 2})
	ctx := context.Background()
	send(t, q, "poison", "refused")
	first := receive(t, q, 10, time.Minute)
	if err := q.DeadLetter(ctx, first[1], "invalid message: not JSON"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	receiveOne(t, q, time.Minute)
	clk.Advance(time.Minute)
	if got := receive(t, q, 10, time.Minute); len(got) != 0 {
		t.Fatalf("delivered after MaxReceive: %+v", got)
	}
	dls, err := q.DeadLetters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 2 ||
		dls[0].ID != first[0].ID || string(dls[0].Body) != "poison" || dls[0].ReceiveCount != 2 ||
		!strings.Contains(dls[0].Reason, "received 2 times") || !dls[0].DeadAt.Equal(clk.Now()) ||
		dls[1].ID != first[1].ID || dls[1].Reason != "invalid message: not JSON" || dls[1].ReceiveCount != 1 ||
		!dls[0].SentAt.Equal(first[0].SentAt) {
		t.Fatalf("dead letters: %+v", dls)
	}

	n, err := q.Redrive(ctx)
	if err != nil || n != 2 {
		t.Fatalf("Redrive = %d, %v; want 2", n, err)
	}
	if dls, _ := q.DeadLetters(ctx); len(dls) != 0 {
		t.Fatalf("dead letters after redrive: %+v", dls)
	}
	back := receive(t, q, 10, time.Minute)
	if len(back) != 2 || back[0].ID != first[0].ID || back[0].ReceiveCount != 1 || back[1].ID != first[1].ID {
		t.Fatalf("redriven messages: %+v", back)
	}
	send(t, q, "new")
	if n := receiveOne(t, q, time.Minute); n.ID == first[0].ID || n.ID == first[1].ID {
		t.Fatalf("a new message reused the ID %s", n.ID)
	}
}

// MaxReceive < 0 turns the redrive off (the chaos tests deliver on and on).
func TestMaxReceiveOff(t *testing.T) {
	clk := newClock()
	q := openQueue(t, "", Options{Now: clk.Now, MaxReceive: -1})
	send(t, q, "m")
	for i := 1; i <= DefaultMaxReceive+2; i++ {
		if d := receiveOne(t, q, time.Minute); d.ReceiveCount != i {
			t.Fatalf("receive %d: ReceiveCount %d", i, d.ReceiveCount)
		}
		clk.Advance(time.Minute)
	}
}

// A handle no receive returned is reported, and the current ones in the
// same call are deleted all the same.
func TestDeleteReportsMalformedHandles(t *testing.T) {
	q := openQueue(t, "", Options{Now: newClock().Now})
	send(t, q, "a")
	d := receiveOne(t, q, time.Minute)
	for _, bad := range []queue.Delivery{{Handle: ""}, {Handle: "x.y"}, {Handle: "1"}, {ID: "2", Handle: d.Handle}} {
		if err := q.Delete(context.Background(), bad); !errors.Is(err, queue.ErrStaleHandle) {
			t.Errorf("Delete(%+v): %v, want ErrStaleHandle", bad, err)
		}
	}
	err := q.Delete(context.Background(), queue.Delivery{ID: "9", Handle: "9"}, d)
	if !errors.Is(err, queue.ErrStaleHandle) || !strings.Contains(err.Error(), `"9"`) {
		t.Fatalf("Delete of a malformed and a good handle: %v", err)
	}
	assertLen(t, q, 0, 0)
}

func TestPersistsAcrossOpen(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "queue.db")
	q, err := Open(context.Background(), path, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	send(t, q, "a", "b")
	d := receiveOne(t, q, time.Minute)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q2 := openQueue(t, path, Options{Now: clk.Now})
	assertLen(t, q2, 1, 1) // the in-flight one stays in flight
	if err := q2.Delete(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	if got := receiveOne(t, q2, time.Minute); string(got.Body) != "b" {
		t.Fatalf("got %q", got.Body)
	}
}

// TestConformance runs the queue contract's suite on a file, with a fake
// clock for visibility timeouts; the tests in this file are only what is
// particular to a SQLite file.
func TestConformance(t *testing.T) {
	queuetest.Run(t, func(t *testing.T) queuetest.Backend {
		clk := newClock()
		q := openQueue(t, "", Options{Now: clk.Now, MaxReceive: 2})
		return queuetest.Backend{
			Queue:      q,
			MaxReceive: 2,
			Now:        clk.Now,
			Advance:    clk.Advance,
			DeadLetters: func(t *testing.T) []queuetest.DeadLetter {
				dls, err := q.DeadLetters(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				var out []queuetest.DeadLetter
				for _, dl := range dls {
					out = append(out, queuetest.DeadLetter{Body: dl.Body, Reason: dl.Reason})
				}
				return out
			},
			Waiting: func(ctx context.Context) (context.Context, <-chan struct{}) {
				ch := make(chan struct{})
				var once sync.Once
				q.waiting = func() { once.Do(func() { close(ch) }) }
				return ctx, ch
			},
		}
	})
}

func TestOpenRejectsBadPath(t *testing.T) {
	for _, p := range []string{"", "x.db?mode=ro", "a#b"} {
		if _, err := Open(context.Background(), p, Options{}); err == nil {
			t.Errorf("Open(%q) succeeded", p)
		}
	}
}

// damagedFile makes a queue file with messages in flight, waiting and
// dead-lettered, closes it (which checkpoints the WAL into it), and returns
// its path, page size and the root page of each table.
func damagedFile(t *testing.T) (path string, pageSize int64, roots map[string]int64) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "queue.db")
	q, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		send(t, q, fmt.Sprintf(`{"n":%d,"pad":"%0300d"}`, i, i))
	}
	ds := receive(t, q, 10, time.Hour)
	if err := q.DeadLetter(context.Background(), ds[0], "refused"); err != nil {
		t.Fatal(err)
	}
	if err := q.db.QueryRow("PRAGMA page_size").Scan(&pageSize); err != nil {
		t.Fatal(err)
	}
	roots = map[string]int64{}
	rows, err := q.db.Query("SELECT name, rootpage FROM sqlite_schema WHERE rootpage > 0")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		var root int64
		if err := rows.Scan(&name, &root); err != nil {
			t.Fatal(err)
		}
		roots[name] = root
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	return path, pageSize, roots
}

// scribble overwrites pages (numbered from 1) of the file with garbage that
// is no b-tree page.
func scribble(t *testing.T, path string, pageSize int64, pages ...int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	junk := make([]byte, pageSize)
	for i := range junk {
		junk[i] = byte(i*31 + 7)
	}
	for _, p := range pages {
		if _, err := f.WriteAt(junk, (p-1)*pageSize); err != nil {
			t.Fatal(err)
		}
	}
}

func allPagesFrom(t *testing.T, path string, pageSize, first int64) []int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	var pages []int64
	for p := first; p <= fi.Size()/pageSize; p++ {
		pages = append(pages, p)
	}
	return pages
}

// A damaged queue file is refused at Open with queue.ErrCorrupt, an error
// naming the file, and left byte for byte as it was: both binaries stop
// with it instead of the loader retrying forever while the extractor goes
// on enqueueing into pages nobody can read.
func TestOpenRefusesDamagedFile(t *testing.T) {
	for _, c := range []struct {
		name   string
		damage func(t *testing.T, path string, pageSize int64, roots map[string]int64)
		says   string
	}{
		{"header overwritten", func(t *testing.T, path string, _ int64, _ map[string]int64) {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt([]byte("id,name\n1,板橋第一停車場\n"), 0); err != nil {
				t.Fatal(err)
			}
		}, "does not begin with the SQLite header"},
		{"a web page", func(t *testing.T, path string, _ int64, _ map[string]int64) {
			if err := os.WriteFile(path, []byte("<html><body>Request Rejected</body></html>"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "does not begin with the SQLite header"},
		{"ten bytes of a header", func(t *testing.T, path string, _ int64, _ map[string]int64) {
			if err := os.WriteFile(path, []byte("SQLite for"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "does not begin with the SQLite header"},
		{"damaged pages", func(t *testing.T, path string, pageSize int64, _ map[string]int64) {
			scribble(t, path, pageSize, allPagesFrom(t, path, pageSize, 2)...)
		}, "quick_check"},
		// The pages a Send never reads: without the check at Open the
		// extractor went on enqueueing while every receive failed.
		{"damaged dead-letter table", func(t *testing.T, path string, pageSize int64, roots map[string]int64) {
			scribble(t, path, pageSize, roots["dead_letters"])
		}, "quick_check"},
		{"damaged index", func(t *testing.T, path string, pageSize int64, roots map[string]int64) {
			scribble(t, path, pageSize, roots["messages_visible_at"])
		}, "quick_check"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path, pageSize, roots := damagedFile(t)
			c.damage(t, path, pageSize, roots)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			q, openErr := Open(context.Background(), path, Options{})
			if openErr == nil {
				q.Close()
				t.Fatal("Open of a damaged file succeeded")
			}
			if !errors.Is(openErr, queue.ErrCorrupt) || !strings.Contains(openErr.Error(), path) || !strings.Contains(openErr.Error(), c.says) {
				t.Fatalf("Open: %v; want queue.ErrCorrupt naming %s and saying %q", openErr, path, c.says)
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Fatal("Open changed the damaged file")
			}
			t.Logf("RESULT %s: file unchanged; %v", c.name, openErr)
		})
	}
}

// An empty file is a new, empty queue (SQLite's own rule), not a damaged one.
func TestOpenEmptyFileIsANewQueue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	q := openQueue(t, path, Options{})
	send(t, q, "m")
	assertLen(t, q, 1, 0)
}

// Damage met after Open (the file damaged under a running loader) is
// queue.ErrCorrupt naming the file on every call that reads the damaged
// pages, never an error a caller would retry.
func TestDamageWhileOpenIsErrCorrupt(t *testing.T) {
	path, pageSize, _ := damagedFile(t)
	q := openQueue(t, path, Options{})
	ctx := context.Background()
	d := receiveOne(t, q, time.Hour)

	// Another process checkpoints; the pages on disk are then damaged; its
	// next write changes the WAL, which makes q drop its page cache and
	// read the damaged pages, as a running loader would.
	other, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	var busy, logged, done int
	if err := other.QueryRow("PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logged, &done); err != nil || busy != 0 {
		t.Fatalf("checkpoint: busy %d, %v", busy, err)
	}
	scribble(t, path, pageSize, allPagesFrom(t, path, pageSize, 2)...)
	if _, err := other.Exec("PRAGMA user_version = 7"); err != nil {
		t.Fatal(err)
	}

	_, recvErr := q.Receive(ctx, 10, 0, time.Minute)
	_, _, lenErr := q.Len(ctx)
	_, dlErr := q.DeadLetters(ctx)
	for name, err := range map[string]error{
		"Receive":          recvErr,
		"Send":             q.Send(ctx, []byte("m")),
		"Delete":           q.Delete(ctx, d),
		"ChangeVisibility": q.ChangeVisibility(ctx, 0, d),
		"DeadLetter":       q.DeadLetter(ctx, d, "x"),
		"Len":              lenErr,
		"DeadLetters":      dlErr,
	} {
		if !errors.Is(err, queue.ErrCorrupt) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s on a damaged file: %v; want queue.ErrCorrupt naming %s", name, err, path)
		}
	}
}
