// Package consume holds the loader's consume loop: receive messages, read and
// verify their snapshots, apply them on one goroutine, and only then delete them.
//
// The loop is built for at-least-once delivery. The database apply is
// idempotent, so the loop's only duties are never to delete a message before
// its effect is committed, never to let slow work be delivered twice at once
// (the visibility heartbeat), never to spin on a failing message (backoff), and
// never to let a message that can never succeed block the ones behind it
// (dead-letter it with its reason).
package consume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	modernc "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/parking-newtaipei/parking-newtaipei/shared/clock"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
)

// Defaults of Config's zero values. Other packages (the loader's flags, its
// liveness window) refer to these rather than repeat them.
const (
	// DefaultMaxMessages is also the most SQS returns per receive.
	DefaultMaxMessages = 10
	// DefaultWait is the longest long poll the queues allow (SQS's).
	DefaultWait        = queue.MaxWait
	DefaultVisibility  = 2 * time.Minute
	DefaultConcurrency = 4
	// DefaultShutdownTimeout stays under ECS's default stopTimeout (30 s).
	// The stack gives the loader 120 s: the final publication gets as long
	// again after the loop stops (deploy/parking.yaml).
	DefaultShutdownTimeout = 25 * time.Second
)

// databaseRetry is how long the loop waits before trying a failing database
// again: 1s doubling up to 15s, so an outage of hours costs a failed
// transaction every 15 seconds, and every attempt reports the loop alive
// (well inside web.LiveWindow).
var databaseRetry = clock.Backoff{First: time.Second, Max: 15 * time.Second}

// releaseTimeout bounds the release of unapplied messages once the shutdown
// deadline has passed: within ECS's 30s stopTimeout after the 25s deadline.
const releaseTimeout = 3 * time.Second

// DefaultBackoff hides a failing message 10s after its first receive,
// doubling each time up to 15 minutes, with ±20% jitter so a burst of
// failures does not come back as a burst.
func DefaultBackoff() clock.Backoff {
	return clock.Backoff{First: 10 * time.Second, Max: 15 * time.Minute, Jitter: 0.2}
}

// Config configures Run. Zero values take the defaults above; invalid ones
// are refused, not corrected.
type Config struct {
	Queue  queue.Queue
	Store  store.Store
	DB     *sqlite.DB
	Logger *slog.Logger
	// Clock is what the loop waits on (the heartbeat, the receive-failure
	// retry, the shutdown deadline) and stamps refusals with. Default: the
	// real clock. How long work took is measured on the real clock always.
	Clock clock.Clock

	// MaxMessages per receive: 1 to DefaultMaxMessages (SQS's limit).
	MaxMessages int
	// Wait is the long-poll wait of a receive.
	Wait time.Duration
	// Visibility is how long a received message stays hidden; the heartbeat
	// extends it at half that while work is in flight. At least a second
	// (SQS counts it in seconds).
	Visibility time.Duration
	// Drain makes Run return once a receive comes back empty. A draining
	// receive waits only the queue's Polling().EmptyWait (none on the local
	// queue, one second on SQS) instead of Wait.
	Drain bool
	// Concurrency bounds concurrent snapshot reads within a batch.
	Concurrency int
	// MaxObjectBytes caps a snapshot read from the store. Default snapshot.MaxObjectBytes.
	MaxObjectBytes int64
	// AllowMassDelete lets lots snapshots through that would soft-delete more
	// than half of the active lots (normally refused as suspect).
	AllowMassDelete bool
	// ShutdownTimeout bounds the graceful stop that begins when ctx is
	// cancelled.
	ShutdownTimeout time.Duration
	// Backoff is how long a message that failed for a transient reason stays
	// hidden, by how often it has been received. Default: DefaultBackoff().
	Backoff clock.Backoff
	// OnEvent, when set, is told of everything the loop does (for metrics).
	// It is called from the loop's goroutines and must not block.
	OnEvent func(Event)
	// AfterCommit, when set, runs after each committed apply (for exports).
	// Its error is logged as a warning: the apply stands.
	AfterCommit func(ctx context.Context, results []snapshot.Result) error
}

// EventKind names what happened.
type EventKind string

const (
	Received     EventKind = "received"      // N messages received
	Applied      EventKind = "applied"       // one snapshot's apply committed (see Result)
	Deleted      EventKind = "deleted"       // N messages deleted after commit
	Retried      EventKind = "retried"       // a message put back with a backoff delay
	DeadLettered EventKind = "dead_lettered" // a message that can never succeed, moved aside
	StoreRead    EventKind = "store_read"    // one snapshot read from the store (Duration)
	Committed    EventKind = "committed"     // one transaction of N snapshots committed (Duration: the COMMIT)
	Polled       EventKind = "polled"        // a receive returned (the loop is alive)
	// DatabaseFailing: the database itself failed an apply (its disk full,
	// an I/O error, busy); N messages are held while it is tried again, and
	// nothing is received. Sent at every failed attempt, with the error.
	DatabaseFailing EventKind = "database_failing"
	// DatabaseRecovered: the database works again after DatabaseFailing
	// (Duration: how long it failed, on the loop's clock).
	DatabaseRecovered EventKind = "database_recovered"
)

// Event is one thing the loop did.
type Event struct {
	Kind     EventKind
	N        int
	Dataset  feed.Dataset
	Result   *snapshot.Result
	Duration time.Duration // store read or apply (with commit) time
	Err      error
}

// validate refuses what cannot work; zero values are left for setDefaults.
func (c *Config) validate() error {
	var errs []error
	if c.Queue == nil || c.Store == nil || c.DB == nil {
		errs = append(errs, errors.New("Queue, Store and DB are required"))
	}
	if c.MaxMessages < 0 || c.MaxMessages > DefaultMaxMessages {
		errs = append(errs, fmt.Errorf("MaxMessages %d: want 1 to %d (0: %[2]d)", c.MaxMessages, DefaultMaxMessages))
	}
	if c.Wait < 0 || c.ShutdownTimeout < 0 || c.Concurrency < 0 || c.MaxObjectBytes < 0 {
		errs = append(errs, fmt.Errorf("Wait %s, ShutdownTimeout %s, Concurrency %d, MaxObjectBytes %d: none may be negative",
			c.Wait, c.ShutdownTimeout, c.Concurrency, c.MaxObjectBytes))
	}
	if c.Visibility < 0 || c.Visibility > 0 && c.Visibility < time.Second {
		errs = append(errs, fmt.Errorf("Visibility %s: want at least 1s (0: %s)", c.Visibility, DefaultVisibility))
	}
	if b := c.Backoff; b.First < 0 || b.Max < b.First || b.Jitter < 0 || b.Jitter > 1 {
		errs = append(errs, fmt.Errorf("Backoff %+v: want 0 <= First <= Max and Jitter in [0, 1]", b))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Clock = clock.Or(c.Clock)
	if c.MaxMessages == 0 {
		c.MaxMessages = DefaultMaxMessages
	}
	if c.Wait == 0 {
		c.Wait = DefaultWait
	}
	if c.Visibility == 0 {
		c.Visibility = DefaultVisibility
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.MaxObjectBytes == 0 {
		c.MaxObjectBytes = snapshot.MaxObjectBytes
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Backoff == (clock.Backoff{}) {
		c.Backoff = DefaultBackoff()
	}
	if c.OnEvent == nil {
		c.OnEvent = func(Event) {}
	}
}

// Run consumes until ctx is cancelled (then stops gracefully within
// ShutdownTimeout) or, with Drain, until the queue is empty. A graceful stop
// returns nil, also when the deadline cut the last batch short and its
// unapplied messages were handed back. A damaged queue (queue.ErrCorrupt) is
// returned at once, or once the batch in hand is settled: no retry can help.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	cfg.setDefaults()
	// work outlives ctx by up to ShutdownTimeout: cancelling ctx means "stop
	// taking work", not "abandon the batch in hand".
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	var logStop sync.Once
	logStopping := func() {
		logStop.Do(func() {
			cfg.Logger.Info("stopping: finishing the current batch", "deadline", cfg.ShutdownTimeout.String())
		})
	}
	stopping := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(stopping)
		logStopping()
		t := cfg.Clock.AfterFunc(cfg.ShutdownTimeout, cancelWork)
		context.AfterFunc(work, func() { t.Stop() })
	})
	// The stop is logged before Run returns, so before whatever the caller
	// logs next: the goroutine AfterFunc started is waited for, and a loop
	// that saw ctx done before AfterFunc fired (the two race) logs it here.
	defer func() {
		if !stop() {
			<-stopping
		} else if ctx.Err() != nil {
			logStopping()
		}
	}()

	c := &consumer{cfg: cfg, log: cfg.Logger}
	poll := cfg.Queue.Polling()
	// A backend whose long poll can be interrupted without taking a message
	// waits on ctx, so a stop ends it at once. Another (SQS, aws-sdk-go-v2
	// #2068) waits on work: the poll returns by itself within Wait, and what
	// it brought is handed back.
	recvCtx := work
	if poll.Interruptible {
		recvCtx = ctx
	}
	wait := cfg.Wait
	if cfg.Drain {
		wait = poll.EmptyWait
	}
	// After the n-th receive failure in a row the loop waits n seconds, up to
	// 30: the queue itself is failing, so waiting helps, but never for long.
	receiveRetry := clock.Backoff{First: time.Second, Max: 30 * time.Second, Linear: true}
	failures := 0
	for ctx.Err() == nil {
		c.log.Debug("receiving", "queue", cfg.Queue.String(), "wait", wait.String())
		ds, err := cfg.Queue.Receive(recvCtx, cfg.MaxMessages, wait, cfg.Visibility)
		if err != nil {
			if ctx.Err() != nil {
				if poll.Interruptible {
					c.log.Info("stopping: the long poll was interrupted", "queue", cfg.Queue.String())
				}
				break
			}
			if errors.Is(err, queue.ErrCorrupt) {
				return fmt.Errorf("consume: %w", err)
			}
			failures++
			d := receiveRetry.Delay(failures)
			c.log.Warn("receive failed; retrying", "queue", cfg.Queue.String(), "in", d.String(), "err", err)
			t := cfg.Clock.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C():
			}
			continue
		}
		failures = 0
		cfg.OnEvent(Event{Kind: Polled, N: len(ds)})
		if len(ds) == 0 {
			if cfg.Drain {
				break
			}
			continue
		}
		cfg.OnEvent(Event{Kind: Received, N: len(ds)})
		if ctx.Err() != nil {
			// Received after the stop began: hand them straight back.
			c.release(work, ds)
			break
		}
		c.batch(ctx, work, ds)
		if err := c.corruptQueue(); err != nil {
			return fmt.Errorf("consume: %w", err)
		}
	}
	if c.stranded > 0 {
		return fmt.Errorf("consume: shutdown deadline of %s passed and %d unapplied messages could not be handed back; they come back after their visibility timeout",
			cfg.ShutdownTimeout, c.stranded)
	}
	return nil
}

type consumer struct {
	cfg Config
	log *slog.Logger

	mu sync.Mutex
	// corrupt is the first queue.ErrCorrupt a queue call of the batch
	// returned (the heartbeat's included): Run stops with it.
	corrupt error
	// stranded counts unapplied messages a release after the shutdown
	// deadline could not hand back.
	stranded int
}

// queueFailed notes a queue call's error that ends the loop: a damaged
// queue. Any other failure of a queue call is the caller's warning.
func (c *consumer) queueFailed(err error) {
	if !errors.Is(err, queue.ErrCorrupt) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corrupt == nil {
		c.corrupt = err
	}
}

func (c *consumer) corruptQueue() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.corrupt
}

// item is one delivery on its way through a batch.
type item struct {
	d     queue.Delivery
	msg   queue.Message
	ref   snapshot.Ref // what the message says of its snapshot, checked against the key
	input *snapshot.Input
	err   error // set when the item failed; permanent(err) says whether to dead-letter
	done  bool  // already in the ledger: acknowledge without reading
	// handBack: not applied because the stop began; made visible again at once.
	handBack bool
}

// permanent says whether no retry can make err succeed: the message is
// invalid, or the snapshot it names can never be read as it says.
func permanent(err error) bool {
	return errors.Is(err, queue.ErrInvalidMessage) || snapshot.IsPermanent(err)
}

// databaseFailure says whether err is the loader's own database failing,
// not the message: its disk full, an I/O error, the file busy, locked,
// read-only, unreadable or damaged, memory exhausted. No message is to
// blame, so none may spend its receives (its way to the dead-letter queue)
// on it.
func databaseFailure(err error) bool {
	if err == nil || permanent(err) {
		return false
	}
	var se *modernc.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED,
		sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM, sqlite3.SQLITE_NOMEM,
		sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_NOLFS:
		return true
	}
	return false
}

// batch handles one receive's deliveries. ctx is the stop signal; work is
// the context that bounds the work itself.
func (c *consumer) batch(ctx, work context.Context, ds []queue.Delivery) {
	items := make([]*item, len(ds))
	for i, d := range ds {
		items[i] = &item{d: d}
	}
	hb := c.heartbeat(work, ds)
	defer hb.stop()

	// 1. Decode and check every message against its key; a forged one never
	// reaches the store. This comes before the ledger lookup: a forged
	// location must be refused and recorded, not acknowledged as an applied key.
	for _, it := range items {
		it.msg, it.err = queue.DecodeMessage(it.d.Body)
		if it.err == nil {
			it.ref, _, it.err = snapshot.Ref{
				Location: store.Location{Bucket: it.msg.Bucket, Key: it.msg.Key}, Dataset: it.msg.Dataset,
				Size: it.msg.Size, SHA256: it.msg.SHA256, FetchedAt: it.msg.FetchedAt,
			}.Check(c.cfg.Store)
		}
	}

	// 2. Skip, without reading them, snapshots the ledger already has.
	var keys []string
	for _, it := range items {
		if it.err == nil {
			keys = append(keys, it.ref.Key)
		}
	}
	if len(keys) > 0 {
		known, err := c.cfg.DB.Known(work, keys)
		if err != nil {
			c.log.Warn("ledger lookup failed; reading every snapshot of the batch", "err", err)
		}
		for _, it := range items {
			if it.err == nil && known[it.ref.Key] {
				it.done = true
				c.log.Info("already applied; acknowledging", "key", it.ref.Key, "message_id", it.d.ID)
			}
		}
	}

	// 3. Read, verify and parse concurrently; nothing here touches the database.
	g, gctx := errgroup.WithContext(work)
	g.SetLimit(c.cfg.Concurrency)
	for _, it := range items {
		if it.err != nil || it.done {
			continue
		}
		g.Go(func() error {
			it.input, it.err = c.read(gctx, it)
			return nil
		})
	}
	_ = g.Wait()

	// 4. Apply on this goroutine, unless the stop began meanwhile; while the
	// database itself fails, hold the batch and try it again.
	var ready []*item
	for _, it := range items {
		if it.err == nil && !it.done {
			ready = append(ready, it)
		}
	}
	if ctx.Err() != nil {
		for _, it := range ready {
			it.handBack = true
		}
	} else if len(ready) > 0 {
		c.apply(work, ready)
		c.hold(ctx, work, ready)
	}
	// Stop extending before settling, so the heartbeat cannot undo a backoff.
	hb.stop()
	c.settle(work, items)
}

// settle ends every item of a batch: it deletes what is done, hands back at
// once what was not applied because the loader is stopping (or its database
// failing when the stop came), dead-letters what can never succeed and puts
// the rest back with a backoff. After the shutdown deadline every unapplied
// message is handed back, on a context of its own: the batch's is over.
func (c *consumer) settle(work context.Context, items []*item) {
	ctx := work
	deadline := work.Err() != nil
	if deadline {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(work), releaseTimeout)
		defer cancel()
	}
	var del, back []queue.Delivery
	for _, it := range items {
		switch {
		case it.err == nil && !it.handBack:
			del = append(del, it.d)
		case it.handBack || deadline || databaseFailure(it.err):
			back = append(back, it.d)
		case permanent(it.err):
			c.deadLetter(ctx, it)
		default:
			c.retry(ctx, it)
		}
	}
	if len(del) > 0 {
		if err := c.cfg.Queue.Delete(ctx, del...); err != nil {
			c.queueFailed(err)
			// Applied but not deleted: the message comes back and the ledger acknowledges it.
			c.log.Warn("delete after commit failed; the messages will be acknowledged on redelivery", "n", len(del), "err", err)
		} else {
			c.cfg.OnEvent(Event{Kind: Deleted, N: len(del)})
		}
	}
	released := c.release(ctx, back)
	if deadline {
		if !released {
			c.stranded += len(back)
		}
		c.log.Warn("shutdown deadline passed: the batch was cut short", "deadline", c.cfg.ShutdownTimeout.String(),
			"applied", len(del), "handed_back", len(back), "visible_again_at_once", released)
	}
}

// read fetches, verifies and parses one snapshot.
func (c *consumer) read(ctx context.Context, it *item) (*snapshot.Input, error) {
	return snapshot.Read(ctx, c.cfg.Store, it.ref, snapshot.ReadOptions{
		MaxObjectBytes:  c.cfg.MaxObjectBytes,
		AllowMassDelete: c.cfg.AllowMassDelete,
		Fetched: func(_ int, took time.Duration, err error) {
			c.cfg.OnEvent(Event{Kind: StoreRead, Dataset: it.msg.Dataset, Duration: took, Err: err})
		},
	})
}

// apply commits the ready items in one transaction: on a network file system
// one commit of ten snapshots costs about what one commit of one costs. If
// the transaction fails, each item is tried alone, so one bad snapshot cannot
// hold back the others, unless the database itself failed, which no item
// alone would get past. Failed items keep their input for another attempt.
func (c *consumer) apply(ctx context.Context, ready []*item) {
	inputs := make([]snapshot.Input, len(ready))
	for i, it := range ready {
		inputs[i] = *it.input
	}
	start := time.Now()
	results, err := c.cfg.DB.Apply(ctx, inputs...)
	if err == nil {
		c.applied(ctx, ready, results, time.Since(start))
		return
	}
	if len(ready) == 1 || databaseFailure(err) {
		for _, it := range ready {
			it.err = fmt.Errorf("apply %s: %w", it.ref.Key, err)
		}
		return
	}
	c.log.Warn("batch apply failed; applying one at a time", "n", len(ready), "err", err)
	for _, it := range ready {
		start := time.Now()
		results, err := c.cfg.DB.Apply(ctx, *it.input)
		if err != nil {
			it.err = fmt.Errorf("apply %s: %w", it.ref.Key, err)
			continue
		}
		c.applied(ctx, []*item{it}, results, time.Since(start))
	}
}

// hold tries again, on the clock, the items whose apply failed because the
// database itself failed, until it works or the stop begins. Meanwhile the
// messages stay in flight (the heartbeat extends them) and nothing is
// received: a full disk for an hour spends none of their receives. The
// outage is logged as an error once, and its end once.
func (c *consumer) hold(ctx, work context.Context, ready []*item) {
	held := databaseFailed(ready)
	if len(held) == 0 {
		return
	}
	since := c.cfg.Clock.Now()
	for attempt := 1; ; attempt++ {
		c.cfg.OnEvent(Event{Kind: DatabaseFailing, N: len(held), Err: held[0].err})
		if attempt == 1 {
			c.log.Error("the database is failing: holding the batch and receiving nothing until it works again; not ready meanwhile",
				"db", c.cfg.DB.Path(), "held", len(held), "err", held[0].err)
		}
		t := c.cfg.Clock.NewTimer(databaseRetry.Delay(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			c.log.Warn("stopping while the database fails: the held messages are handed back", "held", len(held), "attempts", attempt)
			return
		case <-t.C():
		}
		for _, it := range held {
			it.err = nil
		}
		c.apply(work, held)
		if held = databaseFailed(held); len(held) == 0 {
			d := c.cfg.Clock.Now().Sub(since)
			c.cfg.OnEvent(Event{Kind: DatabaseRecovered, Duration: d})
			c.log.Info("the database works again; the held batch is applied", "db", c.cfg.DB.Path(),
				"failed_for", d.String(), "attempts", attempt+1)
			return
		}
		c.log.Debug("the database still fails", "attempt", attempt+1, "err", held[0].err)
	}
}

// databaseFailed returns the items whose last attempt failed because the
// database failed.
func databaseFailed(items []*item) []*item {
	var out []*item
	for _, it := range items {
		if databaseFailure(it.err) {
			out = append(out, it)
		}
	}
	return out
}

func (c *consumer) applied(ctx context.Context, its []*item, results []snapshot.Result, d time.Duration) {
	if len(results) > 0 {
		c.cfg.OnEvent(Event{Kind: Committed, N: len(results), Duration: results[0].Commit})
	}
	for i := range results {
		r := &results[i]
		level := slog.LevelInfo
		if r.Outcome == snapshot.Refused {
			level = slog.LevelWarn
		}
		c.log.Log(ctx, level, "snapshot "+string(r.Outcome), "key", r.Key, "dataset", string(its[i].input.Dataset),
			"already_applied", r.AlreadyApplied, "rows", r.Rows, "changed", r.Changed, "reason", r.Reason,
			"message_id", its[i].d.ID, "duration_ms", d.Milliseconds())
		c.cfg.OnEvent(Event{Kind: Applied, Dataset: its[i].input.Dataset, Result: r, Duration: d / time.Duration(len(results))})
	}
	if c.cfg.AfterCommit != nil {
		if err := c.cfg.AfterCommit(ctx, results); err != nil {
			c.log.Warn("after-commit hook failed; the apply stands", "err", err)
		}
	}
}

// deadLetter records why a message can never succeed, then moves it aside
// so the messages behind it go on.
func (c *consumer) deadLetter(ctx context.Context, it *item) {
	reason := it.err.Error()
	c.log.Error("message refused; moving it to the dead-letter queue", "message_id", it.d.ID, "key", it.ref.Key,
		"dataset", string(it.msg.Dataset), "reason", reason)
	if err := c.cfg.DB.Reject(ctx, sqlite.Rejection{
		MessageID: it.d.ID, Key: it.ref.Key, Dataset: string(it.msg.Dataset), Reason: reason, Body: it.d.Body, At: c.cfg.Clock.Now(),
	}); err != nil {
		c.log.Warn("could not record the refusal", "message_id", it.d.ID, "err", err)
	}
	if err := c.cfg.Queue.DeadLetter(ctx, it.d, reason); err != nil {
		c.queueFailed(err)
		c.log.Warn("could not dead-letter the message; it will come back", "message_id", it.d.ID, "err", err)
		return
	}
	c.cfg.OnEvent(Event{Kind: DeadLettered, Dataset: it.msg.Dataset, Err: it.err})
}

// retry hides a message for a growing delay, so a transient failure (the
// store or the database busy, the network) never becomes a tight loop.
func (c *consumer) retry(ctx context.Context, it *item) {
	d := c.cfg.Backoff.Delay(it.d.ReceiveCount)
	c.log.Warn("transient failure; the message will come back", "message_id", it.d.ID, "key", it.ref.Key,
		"receive_count", it.d.ReceiveCount, "retry_in", d.String(), "err", it.err)
	if err := c.cfg.Queue.ChangeVisibility(ctx, d, it.d); err != nil {
		c.queueFailed(err)
		c.log.Warn("could not delay the message; it comes back after its visibility timeout", "message_id", it.d.ID, "err", err)
	}
	c.cfg.OnEvent(Event{Kind: Retried, Dataset: it.msg.Dataset, Err: it.err})
}

// release makes received but unapplied messages visible again at once, so
// another loader (or this one after a restart) takes them without waiting.
// It reports whether they all are.
func (c *consumer) release(ctx context.Context, ds []queue.Delivery) bool {
	if len(ds) == 0 {
		return true
	}
	if err := c.cfg.Queue.ChangeVisibility(ctx, 0, ds...); err != nil {
		c.queueFailed(err)
		c.log.Warn("could not release unapplied messages; they come back after their visibility timeout", "n", len(ds), "err", err)
		return false
	}
	c.log.Info("released unapplied messages", "n", len(ds))
	return true
}

// heartbeat extends the visibility of in-flight deliveries at half their
// timeout, so slow work is never delivered to a second consumer.
type heartbeat struct {
	once sync.Once
	quit chan struct{}
	done chan struct{}
}

func (c *consumer) heartbeat(ctx context.Context, ds []queue.Delivery) *heartbeat {
	hb := &heartbeat{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(hb.done)
		t := c.cfg.Clock.NewTicker(c.cfg.Visibility / 2)
		defer t.Stop()
		for {
			select {
			case <-hb.quit:
				return
			case <-ctx.Done():
				return
			case <-t.C():
				if err := c.cfg.Queue.ChangeVisibility(ctx, c.cfg.Visibility, ds...); err != nil {
					c.queueFailed(err)
					c.log.Warn("visibility heartbeat failed", "n", len(ds), "err", err)
				} else {
					c.log.Debug("visibility extended", "n", len(ds), "by", c.cfg.Visibility.String())
				}
			}
		}
	}()
	return hb
}

func (hb *heartbeat) stop() {
	hb.once.Do(func() { close(hb.quit) })
	<-hb.done
}
