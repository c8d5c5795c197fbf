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
	"math/rand/v2"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
)

// Config configures Run. Zero durations and counts take the defaults below.
type Config struct {
	Queue  queue.Queue
	Store  store.Store
	DB     *sqlite.DB
	Logger *slog.Logger

	// MaxMessages per receive (SQS allows 1 to 10). Default 10.
	MaxMessages int
	// Wait is the long-poll wait of a receive. Default 20s (the SQS maximum).
	Wait time.Duration
	// Visibility is how long a received message stays hidden; the heartbeat
	// extends it while work is in flight. Default 2m.
	Visibility time.Duration
	// Drain makes Run return once a receive comes back empty.
	Drain bool
	// Concurrency bounds concurrent snapshot reads within a batch. Default 4.
	Concurrency int
	// MaxObjectBytes caps a snapshot read from the store. Default snapshot.MaxObjectBytes.
	MaxObjectBytes int64
	// AllowMassDelete lets lots snapshots through that would soft-delete more
	// than half of the active lots (normally refused as suspect).
	AllowMassDelete bool
	// ShutdownTimeout bounds the graceful stop that begins when ctx is
	// cancelled: 25s by default, under ECS's 30s stopTimeout.
	ShutdownTimeout time.Duration
	// Backoff is how long a message that failed for a transient reason stays
	// hidden, given how often it has been received. Default: 10s doubling to 15m, with jitter.
	Backoff func(receiveCount int) time.Duration
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

func (c *Config) setDefaults() error {
	if c.Queue == nil || c.Store == nil || c.DB == nil {
		return errors.New("consume: Queue, Store and DB are required")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MaxMessages <= 0 || c.MaxMessages > 10 {
		c.MaxMessages = 10
	}
	if c.Wait <= 0 {
		c.Wait = 20 * time.Second
	}
	if c.Visibility <= 0 {
		c.Visibility = 2 * time.Minute
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.MaxObjectBytes <= 0 {
		c.MaxObjectBytes = snapshot.MaxObjectBytes
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 25 * time.Second
	}
	if c.Backoff == nil {
		c.Backoff = DefaultBackoff
	}
	if c.OnEvent == nil {
		c.OnEvent = func(Event) {}
	}
	return nil
}

// DefaultBackoff hides a failing message 10s after its first receive,
// doubling each time up to 15 minutes, with ±20% jitter so a burst of
// failures does not come back as a burst.
func DefaultBackoff(receiveCount int) time.Duration {
	d := 10 * time.Second
	for i := 1; i < receiveCount && d < 15*time.Minute; i++ {
		d *= 2
	}
	d = min(d, 15*time.Minute)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// Run consumes until ctx is cancelled (then stops gracefully within
// ShutdownTimeout) or, with Drain, until the queue is empty. A graceful stop
// returns nil.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.setDefaults(); err != nil {
		return err
	}
	// work outlives ctx by up to ShutdownTimeout: cancelling ctx means "stop
	// taking work", not "abandon the receive in flight" (which would strand
	// its messages until their visibility timeout, aws-sdk-go-v2 #2068).
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stop := context.AfterFunc(ctx, func() {
		cfg.Logger.Info("stopping: finishing the current batch", "deadline", cfg.ShutdownTimeout.String())
		t := time.AfterFunc(cfg.ShutdownTimeout, cancelWork)
		context.AfterFunc(work, func() { t.Stop() })
	})
	defer stop()

	c := &consumer{cfg: cfg, log: cfg.Logger}
	failures := 0
	for ctx.Err() == nil {
		ds, err := cfg.Queue.Receive(work, cfg.MaxMessages, cfg.Wait, cfg.Visibility)
		if err != nil {
			if work.Err() != nil {
				break
			}
			failures++
			d := min(time.Duration(failures)*time.Second, 30*time.Second)
			c.log.Warn("receive failed; retrying", "queue", cfg.Queue.String(), "in", d.String(), "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(d):
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
	}
	if work.Err() != nil {
		return fmt.Errorf("consume: shutdown deadline of %s passed", cfg.ShutdownTimeout)
	}
	return nil
}

type consumer struct {
	cfg Config
	log *slog.Logger
}

// item is one delivery on its way through a batch.
type item struct {
	d     queue.Delivery
	msg   queue.Message
	key   string // the snapshot key, without any store prefix
	input *snapshot.Input
	err   error // set when the item failed; permanent(err) says whether to dead-letter
	done  bool  // already in the ledger: acknowledge without reading
	// released: handed back to the queue unapplied because the stop began.
	released bool
}

// permanentError marks a failure that no retry can fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return permanentError{err} }

func isPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p) ||
		errors.Is(err, store.ErrOutside) || errors.Is(err, store.ErrChecksum) ||
		errors.Is(err, store.ErrTooLarge) || errors.Is(err, snapshot.ErrCorrupt) ||
		errors.Is(err, queue.ErrInvalidMessage)
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

	// 1. Decode and validate every message; a forged one never reaches the store.
	for _, it := range items {
		it.msg, it.err = queue.DecodeMessage(it.d.Body)
		if it.err == nil {
			// Resolve before the ledger lookup: a forged location must be
			// refused and recorded, not acknowledged as an applied key.
			it.key, it.err = c.cfg.Store.Resolve(store.Location{Bucket: it.msg.Bucket, Key: it.msg.Key})
		}
		if it.err == nil {
			if info, _ := snapshot.ParseKey(it.key); info.Dataset != it.msg.Dataset {
				it.err = permanent(fmt.Errorf("message says dataset %s but key %s holds %s", it.msg.Dataset, it.key, info.Dataset))
			}
		}
	}

	// 2. Skip, without reading them, snapshots the ledger already has.
	var keys []string
	for _, it := range items {
		if it.err == nil {
			keys = append(keys, it.key)
		}
	}
	if len(keys) > 0 {
		known, err := c.cfg.DB.Known(work, keys)
		if err != nil {
			c.log.Warn("ledger lookup failed; reading every snapshot of the batch", "err", err)
		}
		for _, it := range items {
			if it.err == nil && known[it.key] {
				it.done = true
				c.log.Info("already applied; acknowledging", "key", it.key, "message_id", it.d.ID)
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

	// 4. Apply on this goroutine, unless the stop began meanwhile.
	var ready []*item
	for _, it := range items {
		if it.err == nil && !it.done {
			ready = append(ready, it)
		}
	}
	if ctx.Err() != nil {
		var back []queue.Delivery
		for _, it := range ready {
			it.released = true
			back = append(back, it.d)
		}
		hb.stop()
		c.release(work, back)
	} else if len(ready) > 0 {
		c.apply(work, ready)
	}
	// Stop extending before settling, so the heartbeat cannot undo a backoff.
	hb.stop()

	// 5. Settle every item: delete what is done, put back or dead-letter the rest.
	var del []queue.Delivery
	for _, it := range items {
		switch {
		case it.released:
		case it.err == nil:
			del = append(del, it.d)
		case isPermanent(it.err):
			c.deadLetter(work, it)
		default:
			c.retry(work, it)
		}
	}
	if len(del) > 0 {
		if err := c.cfg.Queue.Delete(work, del...); err != nil {
			// Applied but not deleted: the message comes back and the ledger acknowledges it.
			c.log.Warn("delete after commit failed; the messages will be acknowledged on redelivery", "n", len(del), "err", err)
		} else {
			c.cfg.OnEvent(Event{Kind: Deleted, N: len(del)})
		}
	}
}

// read fetches, verifies and parses one snapshot.
func (c *consumer) read(ctx context.Context, it *item) (*snapshot.Input, error) {
	start := time.Now()
	loc := store.Location{Bucket: it.msg.Bucket, Key: it.msg.Key}
	data, _, err := store.Fetch(ctx, c.cfg.Store, loc, it.msg.Size, it.msg.SHA256, c.cfg.MaxObjectBytes)
	c.cfg.OnEvent(Event{Kind: StoreRead, Dataset: it.msg.Dataset, Duration: time.Since(start), Err: err})
	if err != nil {
		return nil, err
	}
	snap, err := snapshot.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", it.key, err)
	}
	if snap.Dataset != it.msg.Dataset {
		return nil, permanent(fmt.Errorf("snapshot %s holds %s, message says %s", it.key, snap.Dataset, it.msg.Dataset))
	}
	if !snap.FetchedAt.Equal(it.msg.FetchedAt) {
		return nil, permanent(fmt.Errorf("snapshot %s was fetched at %s, message says %s", it.key, snap.FetchedAt.Format(time.RFC3339Nano), it.msg.FetchedAt.Format(time.RFC3339Nano)))
	}
	in := &snapshot.Input{
		Key:             it.key,
		SHA256:          it.msg.SHA256,
		Dataset:         snap.Dataset,
		FetchedAt:       snap.FetchedAt,
		AllowMassDelete: c.cfg.AllowMassDelete,
	}
	if in.Lots, in.Availability, err = snap.Rows(); err != nil {
		return nil, permanent(fmt.Errorf("snapshot %s: unparseable: %w", it.key, err))
	}
	return in, nil
}

// apply commits the ready items in one transaction: on a network file system
// one commit of ten snapshots costs about what one commit of one costs. If
// the transaction fails, each item is tried alone, so one bad snapshot cannot
// hold back the others.
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
	if len(ready) == 1 {
		ready[0].err = fmt.Errorf("apply %s: %w", ready[0].key, err)
		ready[0].input = nil
		return
	}
	c.log.Warn("batch apply failed; applying one at a time", "n", len(ready), "err", err)
	for _, it := range ready {
		start := time.Now()
		results, err := c.cfg.DB.Apply(ctx, *it.input)
		if err != nil {
			it.err = fmt.Errorf("apply %s: %w", it.key, err)
			it.input = nil
			continue
		}
		c.applied(ctx, []*item{it}, results, time.Since(start))
	}
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
	c.log.Error("message refused; moving it to the dead-letter queue", "message_id", it.d.ID, "key", it.key,
		"dataset", string(it.msg.Dataset), "reason", reason)
	if err := c.cfg.DB.Reject(ctx, sqlite.Rejection{
		MessageID: it.d.ID, Key: it.key, Dataset: string(it.msg.Dataset), Reason: reason, Body: it.d.Body, At: time.Now(),
	}); err != nil {
		c.log.Warn("could not record the refusal", "message_id", it.d.ID, "err", err)
	}
	if err := c.cfg.Queue.DeadLetter(ctx, it.d, reason); err != nil {
		c.log.Warn("could not dead-letter the message; it will come back", "message_id", it.d.ID, "err", err)
		return
	}
	c.cfg.OnEvent(Event{Kind: DeadLettered, Dataset: it.msg.Dataset, Err: it.err})
}

// retry hides a message for a growing delay, so a transient failure (the
// store or the database busy, the network) never becomes a tight loop.
func (c *consumer) retry(ctx context.Context, it *item) {
	d := c.cfg.Backoff(it.d.ReceiveCount)
	c.log.Warn("transient failure; the message will come back", "message_id", it.d.ID, "key", it.key,
		"receive_count", it.d.ReceiveCount, "retry_in", d.String(), "err", it.err)
	if err := c.cfg.Queue.ChangeVisibility(ctx, d, it.d); err != nil {
		c.log.Warn("could not delay the message; it comes back after its visibility timeout", "message_id", it.d.ID, "err", err)
	}
	c.cfg.OnEvent(Event{Kind: Retried, Dataset: it.msg.Dataset, Err: it.err})
}

// release makes received but unapplied messages visible again at once, so
// another loader (or this one after a restart) takes them without waiting.
func (c *consumer) release(ctx context.Context, ds []queue.Delivery) {
	if len(ds) == 0 {
		return
	}
	if err := c.cfg.Queue.ChangeVisibility(ctx, 0, ds...); err != nil {
		c.log.Warn("could not release unapplied messages; they come back after their visibility timeout", "n", len(ds), "err", err)
		return
	}
	c.log.Info("released unapplied messages", "n", len(ds))
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
		t := time.NewTicker(c.cfg.Visibility / 2)
		defer t.Stop()
		for {
			select {
			case <-hb.quit:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if err := c.cfg.Queue.ChangeVisibility(ctx, c.cfg.Visibility, ds...); err != nil {
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
