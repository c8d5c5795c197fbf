// Package backfill applies stored snapshots of a time range straight from the
// store into the database: to build a new database, to repair one, and (as
// Reconcile) to catch up on snapshots whose queue messages were lost.
//
// It is built like litestream's restore: the store is listed once, in key
// order from the start of the range (what that costs grows with the
// snapshots stored, not with the length of the range), snapshots already in
// the ledger are skipped without being downloaded, the rest are downloaded
// and parsed concurrently with a bound, and one goroutine applies them in key
// (fetch-time) order, several per transaction. Each snapshot's
// ledger row commits in the transaction that applied it, so a run stopped at
// any point, even by SIGKILL, resumes where it stopped and ends with the same
// database as an uninterrupted run.
package backfill

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/parking-newtaipei/parking-newtaipei/shared/clock"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
)

// Defaults of Config's zero values.
const (
	DefaultConcurrency = 8
	// DefaultBatchSize: on a network file system one commit of 32 snapshots
	// costs about what one of a single snapshot costs; 32 availability
	// snapshots are ~45k rows, a few MiB parsed. 64 measured no faster and
	// used more memory (docs/BACKFILL.md).
	DefaultBatchSize = 32
	// DefaultMemoryLimit is the soft memory limit (debug.SetMemoryLimit) a
	// backfill runs under unless GOMEMLIMIT says otherwise: its live heap is
	// a few batches of parsed rows, and without a limit the GC lets the heap
	// double past it.
	DefaultMemoryLimit = 40 << 20
	// DefaultCacheKiB is the SQLite page cache a backfill opens the database
	// with: it appends in key order, so a small cache loses nothing.
	DefaultCacheKiB = 4000
	DefaultLogEvery = 10 * time.Second
)

// Config configures a Backfill. Store and DB are required.
type Config struct {
	Store  store.Store
	DB     *sqlite.DB
	Logger *slog.Logger

	// Datasets to apply; empty means both. With both, snapshots are applied
	// in fetch-time order across datasets, as the live pipeline would have.
	Datasets []feed.Dataset
	// Concurrency bounds concurrent downloads and parses. Default 8.
	Concurrency int
	// BatchSize is the most snapshots applied in one transaction. Default 32.
	BatchSize int
	// AllowMassDelete lets lots snapshots through that remove more than half
	// of the active lots (normally refused as suspect).
	AllowMassDelete bool
	// MaxObjectBytes caps a snapshot read from the store. Default snapshot.MaxObjectBytes.
	MaxObjectBytes int64

	// Progress receives a progress bar (rate and ETA) redrawn in place when
	// Terminal is set. Otherwise progress goes to Logger every LogEvery.
	Progress io.Writer
	Terminal bool
	LogEvery time.Duration
	// OnBatch, when set, is called after each committed transaction with its
	// results, on the applying goroutine (tests and metrics).
	OnBatch func(results []snapshot.Result)
	// Clock is the clock of Reconcile's window, of progress reports and of
	// durations. Default: the real clock.
	Clock clock.Clock
}

// Backfill applies stored snapshots of a time range.
type Backfill struct {
	cfg Config
	log *slog.Logger
}

// New checks cfg and fills in its defaults.
func New(cfg Config) (*Backfill, error) {
	if cfg.Store == nil || cfg.DB == nil {
		return nil, errors.New("backfill: Store and DB are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if len(cfg.Datasets) == 0 {
		cfg.Datasets = feed.Datasets
	}
	for _, d := range cfg.Datasets {
		if _, err := feed.ParseDataset(string(d)); err != nil {
			return nil, fmt.Errorf("backfill: %w", err)
		}
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.MaxObjectBytes <= 0 {
		cfg.MaxObjectBytes = snapshot.MaxObjectBytes
	}
	if cfg.LogEvery <= 0 {
		cfg.LogEvery = DefaultLogEvery
	}
	cfg.Clock = clock.Or(cfg.Clock)
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
		cfg.Terminal = false
	}
	return &Backfill{cfg: cfg, log: cfg.Logger}, nil
}

// Summary is what a run did.
type Summary struct {
	From, To time.Time
	// Listed counts snapshots in the range; each ends in exactly one of the
	// five counts after it (unless the run was stopped early).
	Listed int `json:"listed"`
	// Applied counts snapshots whose rows went in (outcome applied or superseded).
	Applied int `json:"applied"`
	// Duplicate counts snapshots with the content of one applied before.
	Duplicate int `json:"duplicate"`
	// Skipped counts snapshots already in the ledger: not downloaded.
	Skipped int `json:"skipped"`
	// Refused counts snapshots the database refused (see the ledger's reason).
	Refused int `json:"refused"`
	// Failed counts snapshots that could not be read, verified or applied.
	Failed int `json:"failed"`
	// Rows counts the rows of the snapshots applied; Changed the rows they
	// inserted, updated or deleted.
	Rows    int64 `json:"rows"`
	Changed int64 `json:"changed"`
	// Bytes counts the stored (compressed) bytes downloaded.
	Bytes    int64         `json:"bytes"`
	Duration time.Duration `json:"duration_ns"`
	// LastKey is the last key applied (or found applied): a resume point.
	LastKey string `json:"last_key,omitempty"`
}

// Done is the number of listed snapshots dealt with.
func (s Summary) Done() int { return s.Applied + s.Duplicate + s.Skipped + s.Refused + s.Failed }

// Err is nil unless some snapshots failed; a rerun retries exactly those.
func (s Summary) Err() error {
	if s.Failed > 0 {
		return fmt.Errorf("%d of %d snapshots failed (see the log); run again to retry them", s.Failed, s.Listed)
	}
	return nil
}

// Run applies every stored snapshot fetched in [from, to) that the ledger
// does not hold. It returns an error only for what stops the run (the
// context, the store's listing, the database); snapshots that fail are
// counted in the summary and logged, and the run goes on.
func (b *Backfill) Run(ctx context.Context, from, to time.Time) (Summary, error) {
	start := b.cfg.Clock.Now()
	p := &progress{start: start, now: b.cfg.Clock.Now}
	p.sum.From, p.sum.To = from, to
	if !from.Before(to) {
		return p.sum, fmt.Errorf("backfill: -from %s is not before -to %s", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	b.log.InfoContext(ctx, "backfill started", "store", b.cfg.Store.String(), "db", b.cfg.DB.Path(),
		"datasets", b.cfg.Datasets, "from", from, "to", to, "concurrency", b.cfg.Concurrency)

	stopReport := b.report(ctx, p)
	err := b.run(ctx, from, to, p)
	stopReport()

	s := p.snapshot()
	s.Duration = b.cfg.Clock.Now().Sub(start)
	b.log.InfoContext(ctx, "backfill finished", "listed", s.Listed, "applied", s.Applied, "duplicate", s.Duplicate,
		"skipped", s.Skipped, "refused", s.Refused, "failed", s.Failed, "rows", s.Rows, "changed", s.Changed,
		"bytes", s.Bytes, "duration", s.Duration.Round(time.Millisecond).String(), "last_key", s.LastKey)
	return s, err
}

// Reconcile applies the snapshots of the last window (up to now) that are
// missing from the ledger: those whose messages were lost or dead-lettered.
func (b *Backfill) Reconcile(ctx context.Context, window time.Duration) (Summary, error) {
	if window <= 0 {
		return Summary{}, fmt.Errorf("reconcile: window %s must be positive", window)
	}
	now := b.cfg.Clock.Now()
	// A second past now: keys are to the second and the range is half-open.
	return b.Run(ctx, now.Add(-window), now.Add(time.Second))
}

// job is one snapshot on its way from the store to the database. done is
// closed when input or err is set.
type job struct {
	snapshot.Listed
	done  chan struct{}
	input *snapshot.Input
	err   error
}

// run is the pipeline: a lister lists the range once, into a queue of
// compact keys that runs ahead of the rest (so progress knows the total
// early); a producer takes them in order, asks the ledger which it already
// holds, and starts a bounded download of each other key; this goroutine
// takes the jobs in order and applies them in batches.
func (b *Backfill) run(ctx context.Context, from, to time.Time, p *progress) error {
	g, gctx := errgroup.WithContext(ctx)
	listed := make(chan []entry, maxAheadChunks)
	g.Go(func() error {
		defer close(listed)
		return b.list(gctx, from, to, listed, p)
	})
	// The channel's capacity bounds the parsed snapshots waiting to be applied.
	pending := make(chan *job, 2*b.cfg.Concurrency)
	g.Go(func() error {
		defer close(pending)
		var downloads errgroup.Group
		downloads.SetLimit(b.cfg.Concurrency)
		defer downloads.Wait()
		for chunk := range listed {
			keys := make([]string, len(chunk))
			for i, e := range chunk {
				keys[i] = e.key()
			}
			known, err := b.cfg.DB.Known(gctx, keys)
			if err != nil {
				return err
			}
			for i, e := range chunk {
				if known[keys[i]] {
					p.skipped(keys[i])
					continue
				}
				j := &job{Listed: e.listed(keys[i]), done: make(chan struct{})}
				select {
				case pending <- j:
				case <-gctx.Done():
					return gctx.Err()
				}
				// Blocks while Concurrency downloads are running.
				downloads.Go(func() error {
					defer close(j.done)
					j.input, j.err = b.read(gctx, j.Listed, p)
					return nil
				})
			}
		}
		return gctx.Err()
	})
	g.Go(func() error { return b.applyAll(gctx, pending, p) })
	return g.Wait()
}

// Listing runs ahead in chunks of compact keys: up to maxAheadChunks of
// chunkKeys each (~256k keys, 6 MiB: more than two years of live
// snapshots). Beyond that the lister waits, and progress shows the total
// as "at least" until the listing ends.
const (
	chunkKeys      = 1024
	maxAheadChunks = 256
)

// list lists [from, to) once and sends the keys in order, chunkKeys at a
// time (the last chunk shorter).
func (b *Backfill) list(ctx context.Context, from, to time.Time, out chan<- []entry, p *progress) error {
	var chunk []entry
	send := func() error {
		select {
		case out <- chunk:
			chunk = nil
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	err := snapshot.List(ctx, b.cfg.Store, b.cfg.Datasets, from, to, func(l snapshot.Listed) error {
		e, err := compact(l)
		if err != nil {
			return err
		}
		chunk = append(chunk, e)
		p.listedOne(l.Info.FetchedAt)
		if len(chunk) == chunkKeys {
			return send()
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(chunk) > 0 {
		if err := send(); err != nil {
			return err
		}
	}
	p.listingDone()
	return nil
}

// entry is a listed snapshot in 24 bytes instead of ~200: everything its key
// says (snapshot keys have one exact shape) and its size.
type entry struct {
	unix    int64
	sha     [8]byte
	size    uint32
	dataset uint8
}

func compact(l snapshot.Listed) (entry, error) {
	e := entry{unix: l.Info.FetchedAt.Unix(), size: uint32(l.Size)}
	if l.Size < 0 || l.Size > math.MaxUint32 {
		e.size = math.MaxUint32 // Too large to read anyway: Read refuses it by its size.
	}
	i := slices.Index(feed.Datasets, l.Info.Dataset)
	if _, err := hex.Decode(e.sha[:], []byte(l.Info.SHAPrefix)); err != nil || i < 0 {
		return e, fmt.Errorf("listed key %s: %w", l.Key, err)
	}
	e.dataset = uint8(i)
	if e.key() != l.Key {
		return e, fmt.Errorf("listed key %s is not in the canonical form %s", l.Key, e.key())
	}
	return e, nil
}

func (e entry) key() string {
	return snapshot.Key(feed.Datasets[e.dataset], time.Unix(e.unix, 0), hex.EncodeToString(e.sha[:]))
}

func (e entry) listed(key string) snapshot.Listed {
	return snapshot.Listed{Key: key, Size: int64(e.size), Info: snapshot.KeyInfo{
		Dataset: feed.Datasets[e.dataset], FetchedAt: time.Unix(e.unix, 0).UTC(), SHAPrefix: hex.EncodeToString(e.sha[:])}}
}

// applyAll applies the jobs in arrival order, BatchSize per transaction. It
// does not wait for a full batch when the next job is still downloading: the
// batch it has is committed meanwhile.
func (b *Backfill) applyAll(ctx context.Context, pending <-chan *job, p *progress) error {
	batch := make([]*job, 0, b.cfg.BatchSize)
	var next *job
	for {
		if next == nil {
			var ok bool
			select {
			case next, ok = <-pending:
			case <-ctx.Done():
				return ctx.Err()
			}
			if !ok {
				return b.flush(ctx, batch, p)
			}
		}
		select {
		case <-next.done:
		default:
			// Not ready: commit what is ready rather than hold it.
			if len(batch) > 0 {
				if err := b.flush(ctx, batch, p); err != nil {
					return err
				}
				batch = batch[:0]
			}
			select {
			case <-next.done:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if next.err != nil {
			p.failed(next.Key)
			b.log.ErrorContext(ctx, "snapshot failed", "key", next.Key, "err", next.err)
		} else {
			batch = append(batch, next)
		}
		next = nil
		if len(batch) == b.cfg.BatchSize {
			if err := b.flush(ctx, batch, p); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
}

// flush applies a batch in one transaction. If it fails, each snapshot is
// tried alone, so one bad snapshot cannot hold back the others; an error is
// returned only when the context ends.
func (b *Backfill) flush(ctx context.Context, batch []*job, p *progress) error {
	if len(batch) == 0 {
		return nil
	}
	inputs := make([]snapshot.Input, len(batch))
	for i, j := range batch {
		inputs[i] = *j.input
		j.input = nil // Let the rows go as soon as the apply is done.
	}
	// The apply runs without the context's cancellation: the driver watches
	// a cancellable context with a goroutine per statement (~15% of a
	// backfill's CPU), and a batch takes about a second, after which the
	// stop is noticed anyway. The work done is committed, not thrown away.
	results, err := b.cfg.DB.Apply(context.WithoutCancel(ctx), inputs...)
	if err == nil {
		b.applied(results, p)
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	b.log.WarnContext(ctx, "batch apply failed; applying one at a time", "n", len(batch), "err", err)
	for _, in := range inputs {
		results, err := b.cfg.DB.Apply(context.WithoutCancel(ctx), in)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			p.failed(in.Key)
			b.log.ErrorContext(ctx, "snapshot failed", "key", in.Key, "err", err)
			continue
		}
		b.applied(results, p)
	}
	return nil
}

func (b *Backfill) applied(results []snapshot.Result, p *progress) {
	for _, r := range results {
		p.result(r)
		if r.Outcome == snapshot.Refused {
			b.log.Warn("snapshot refused", "key", r.Key, "reason", r.Reason)
		}
	}
	if b.cfg.OnBatch != nil {
		b.cfg.OnBatch(results)
	}
	// A line per commit at debug level: tests (and a curious operator) can
	// follow exactly what is committed.
	b.log.Debug("committed", "snapshots", len(results), "last_key", results[len(results)-1].Key)
}

// read downloads, verifies and parses one snapshot. The key carries the
// first 16 hex digits of the object's SHA-256 and its fetch time, so the
// object is checked against its own name.
func (b *Backfill) read(ctx context.Context, l snapshot.Listed, p *progress) (*snapshot.Input, error) {
	return snapshot.Read(ctx, b.cfg.Store, l.Ref(), snapshot.ReadOptions{
		MaxObjectBytes:  b.cfg.MaxObjectBytes,
		AllowMassDelete: b.cfg.AllowMassDelete,
		Fetched:         func(n int, _ time.Duration, _ error) { p.bytes.Add(int64(n)) },
	})
}

// progress counts what the run did; the reporter reads it concurrently.
type progress struct {
	start time.Time
	now   func() time.Time
	// total counts the snapshots listed so far; final once listed is true.
	// listedUntil is the fetch time (unix) of the last one listed.
	total       atomic.Int64
	listed      atomic.Bool
	listedUntil atomic.Int64
	done        atomic.Int64
	bytes       atomic.Int64
	rows        atomic.Int64

	mu  sync.Mutex
	sum Summary
}

// listedOne counts a snapshot the lister found, fetched at t.
func (p *progress) listedOne(t time.Time) {
	p.total.Add(1)
	p.listedUntil.Store(t.Unix())
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sum.Listed++
}

// listingDone says the total is final.
func (p *progress) listingDone() { p.listed.Store(true) }

// skipped counts a listed snapshot the ledger already holds.
func (p *progress) skipped(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sum.Skipped++
	p.sum.LastKey = max(p.sum.LastKey, key)
	p.done.Add(1)
}

func (p *progress) failed(string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sum.Failed++
	p.done.Add(1)
}

func (p *progress) result(r snapshot.Result) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case r.AlreadyApplied:
		p.sum.Skipped++
	case r.Outcome == snapshot.Applied || r.Outcome == snapshot.Superseded:
		p.sum.Applied++
		p.sum.Rows += int64(r.Rows)
		p.rows.Add(int64(r.Rows))
	case r.Outcome == snapshot.Duplicate:
		p.sum.Duplicate++
	case r.Outcome == snapshot.Refused:
		p.sum.Refused++
	}
	p.sum.Changed += int64(r.Changed)
	p.sum.LastKey = max(p.sum.LastKey, r.Key)
	p.done.Add(1)
}

func (p *progress) snapshot() Summary {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.sum
	s.Bytes = p.bytes.Load()
	return s
}
