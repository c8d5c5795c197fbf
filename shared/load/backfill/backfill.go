// Package backfill applies stored snapshots of a time range straight from the
// store into the database: to build a new database, to repair one, and (as
// Reconcile) to catch up on snapshots whose queue messages were lost.
//
// It is built like litestream's restore: the store is listed by key prefix
// (one day at a time, so memory does not grow with the range), snapshots
// already in the ledger are skipped without being downloaded, the rest are
// downloaded and parsed concurrently with a bound, and one goroutine applies
// them in key (fetch-time) order, several per transaction. Each snapshot's
// ledger row commits in the transaction that applied it, so a run stopped at
// any point, even by SIGKILL, resumes where it stopped and ends with the same
// database as an uninterrupted run.
package backfill

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

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
	// BatchSize is the most snapshots applied in one transaction. Default 64.
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
	// Now is the clock of Reconcile's window and of durations. Default time.Now.
	Now func() time.Time
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
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
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
	start := b.cfg.Now()
	p := &progress{start: start, now: b.cfg.Now}
	p.sum.From, p.sum.To = from, to
	if !from.Before(to) {
		return p.sum, fmt.Errorf("backfill: -from %s is not before -to %s", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	total, err := b.count(ctx, from, to)
	if err != nil {
		return p.sum, err
	}
	p.total.Store(int64(total))
	b.log.InfoContext(ctx, "backfill started", "store", b.cfg.Store.String(), "db", b.cfg.DB.Path(),
		"datasets", b.cfg.Datasets, "from", from, "to", to, "snapshots", total, "concurrency", b.cfg.Concurrency)

	stopReport := b.report(ctx, p)
	err = b.run(ctx, from, to, p)
	stopReport()

	s := p.snapshot()
	s.Duration = b.cfg.Now().Sub(start)
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
	now := b.cfg.Now()
	// A second past now: keys are to the second and the range is half-open.
	return b.Run(ctx, now.Add(-window), now.Add(time.Second))
}

// listed is one snapshot key in the range.
type listed struct {
	key  string
	info snapshot.KeyInfo
	size int64
}

// days returns the UTC days that [from, to) touches: keys are grouped by UTC day.
func days(from, to time.Time) []time.Time {
	var out []time.Time
	d := time.Date(from.UTC().Year(), from.UTC().Month(), from.UTC().Day(), 0, 0, 0, 0, time.UTC)
	for d.Before(to) {
		out = append(out, d)
		d = d.AddDate(0, 0, 1)
	}
	return out
}

// listDay returns the snapshots of the configured datasets fetched on day and
// inside [from, to), in fetch-time order (then dataset, then key).
func (b *Backfill) listDay(ctx context.Context, day, from, to time.Time) ([]listed, error) {
	var out []listed
	for _, d := range b.cfg.Datasets {
		prefix := snapshot.DayPrefix(d, day) + "/"
		err := b.cfg.Store.List(ctx, prefix, "", func(o store.Object) error {
			info, err := snapshot.ParseKey(o.Key)
			if err != nil {
				return nil // Not a snapshot: stores list only snapshots, but be safe.
			}
			if info.FetchedAt.Before(from) || !info.FetchedAt.Before(to) {
				return nil
			}
			out = append(out, listed{key: o.Key, info: info, size: o.Size})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list %s in %s: %w", prefix, b.cfg.Store, err)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, c := out[i], out[j]
		if !a.info.FetchedAt.Equal(c.info.FetchedAt) {
			return a.info.FetchedAt.Before(c.info.FetchedAt)
		}
		// Lots first at the same second, so availability's quality sees them.
		if a.info.Dataset != c.info.Dataset {
			return a.info.Dataset == feed.Lots
		}
		return a.key < c.key
	})
	return out, nil
}

// Listed is one stored snapshot in a range.
type Listed struct {
	Key  string
	Info snapshot.KeyInfo
	Size int64
}

// List calls fn for every snapshot of the datasets stored in st and fetched
// in [from, to), in fetch-time order (across datasets too; lots first at the
// same second). It lists one UTC day prefix at a time, so its memory does not
// grow with the range.
func List(ctx context.Context, st store.Store, datasets []feed.Dataset, from, to time.Time, fn func(Listed) error) error {
	b := &Backfill{cfg: Config{Store: st, Datasets: datasets}}
	if len(datasets) == 0 {
		b.cfg.Datasets = feed.Datasets
	}
	for _, day := range days(from, to) {
		ls, err := b.listDay(ctx, day, from, to)
		if err != nil {
			return err
		}
		for _, l := range ls {
			if err := fn(Listed{Key: l.key, Info: l.info, Size: l.size}); err != nil {
				return err
			}
		}
	}
	return nil
}

// count lists the range once without keeping the keys, so progress can show
// a total and an ETA. A month is ~9 list requests per dataset on S3.
func (b *Backfill) count(ctx context.Context, from, to time.Time) (int, error) {
	n := 0
	for _, day := range days(from, to) {
		ls, err := b.listDay(ctx, day, from, to)
		if err != nil {
			return 0, err
		}
		n += len(ls)
	}
	return n, nil
}

// job is one snapshot on its way from the store to the database. done is
// closed when input or err is set.
type job struct {
	listed
	done  chan struct{}
	input *snapshot.Input
	err   error
}

// run is the pipeline: a producer lists day by day, asks the ledger which keys
// it already holds, and starts a bounded download of each other key; this
// goroutine takes the jobs in order and applies them in batches.
func (b *Backfill) run(ctx context.Context, from, to time.Time, p *progress) error {
	g, gctx := errgroup.WithContext(ctx)
	// The channel's capacity bounds the parsed snapshots waiting to be applied.
	pending := make(chan *job, 2*b.cfg.Concurrency)
	g.Go(func() error {
		defer close(pending)
		var downloads errgroup.Group
		downloads.SetLimit(b.cfg.Concurrency)
		defer downloads.Wait()
		for _, day := range days(from, to) {
			ls, err := b.listDay(gctx, day, from, to)
			if err != nil {
				return err
			}
			if len(ls) == 0 {
				continue
			}
			keys := make([]string, len(ls))
			for i, l := range ls {
				keys[i] = l.key
			}
			known, err := b.cfg.DB.Known(gctx, keys)
			if err != nil {
				return err
			}
			for _, l := range ls {
				p.listed(l.key, known[l.key])
				if known[l.key] {
					continue
				}
				j := &job{listed: l, done: make(chan struct{})}
				select {
				case pending <- j:
				case <-gctx.Done():
					return gctx.Err()
				}
				// Blocks while Concurrency downloads are running.
				downloads.Go(func() error {
					defer close(j.done)
					j.input, j.err = b.read(gctx, j.listed, p)
					return nil
				})
			}
		}
		return nil
	})
	g.Go(func() error { return b.applyAll(gctx, pending, p) })
	return g.Wait()
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
			p.failed(next.key)
			b.log.ErrorContext(ctx, "snapshot failed", "key", next.key, "err", next.err)
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
// first 16 hex digits of the object's SHA-256, so the object is checked
// against its own name before it is parsed.
func (b *Backfill) read(ctx context.Context, l listed, p *progress) (*snapshot.Input, error) {
	if l.size > b.cfg.MaxObjectBytes {
		return nil, fmt.Errorf("%s: %w: %d bytes, at most %d allowed", l.key, store.ErrTooLarge, l.size, b.cfg.MaxObjectBytes)
	}
	data, _, err := b.cfg.Store.Get(ctx, b.cfg.Store.Locate(l.key), b.cfg.MaxObjectBytes)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", l.key, err)
	}
	p.bytes.Add(int64(len(data)))
	sum := sha256.Sum256(data)
	hexSum := hex.EncodeToString(sum[:])
	if hexSum[:16] != l.info.SHAPrefix {
		return nil, fmt.Errorf("%s: %w: sha256 %s does not match the key", l.key, store.ErrChecksum, hexSum)
	}
	return Input(l.key, hexSum, data)
}

// Input decodes a stored snapshot into a database input, checking that it is
// what its key says it is.
func Input(key, sha256hex string, data []byte) (*snapshot.Input, error) {
	info, err := snapshot.ParseKey(key)
	if err != nil {
		return nil, err
	}
	snap, err := snapshot.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	if snap.Dataset != info.Dataset {
		return nil, fmt.Errorf("%s: holds %s, the key says %s", key, snap.Dataset, info.Dataset)
	}
	if !snap.FetchedAt.Truncate(time.Second).Equal(info.FetchedAt) {
		return nil, fmt.Errorf("%s: fetched at %s, the key says %s", key, snap.FetchedAt.Format(time.RFC3339Nano), info.FetchedAt.Format(time.RFC3339))
	}
	in := &snapshot.Input{Key: key, SHA256: sha256hex, Dataset: snap.Dataset, FetchedAt: snap.FetchedAt}
	if in.Lots, in.Availability, err = snap.Rows(); err != nil {
		return nil, fmt.Errorf("%s: unparseable: %w", key, err)
	}
	return in, nil
}

// progress counts what the run did; the reporter reads it concurrently.
type progress struct {
	start time.Time
	now   func() time.Time
	total atomic.Int64
	done  atomic.Int64
	bytes atomic.Int64
	rows  atomic.Int64

	mu  sync.Mutex
	sum Summary
}

func (p *progress) listed(key string, known bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sum.Listed++
	if known {
		p.sum.Skipped++
		p.sum.LastKey = max(p.sum.LastKey, key)
		p.done.Add(1)
	}
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
