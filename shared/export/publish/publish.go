// Package publish keeps a publication destination (a directory or an S3
// prefix) up to date with what the loader's database holds, for readers who
// never see the loader: the live exports, the map page, copies of the
// database and a Parquet history.
//
// The publisher is never in the path of an apply. The consume loop tells it
// what an apply changed (Notify): that only marks objects as stale in a small
// set, and wakes a worker without waiting. Two workers publish: one for the
// small live files, one for the heavy objects (month files, database copies,
// the map page), so an hour's database copy never holds up the next
// availability.json. A burst of applies becomes one upload per object; a
// failed upload is retried with a growing delay; a failing destination shows
// as parking_publish_* metrics and warnings, while applies go on.
package publish

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
)

// Metrics is told what publication does; *metrics.Registry implements it.
type Metrics interface {
	// PublishStarted says publication is on, with the object kinds it publishes.
	PublishStarted(objects []string)
	PublishSucceeded(object string, bytes int64)
	PublishFailed(object string)
	// PublishPending is the time of the oldest change not yet published
	// (zero: everything is published).
	PublishPending(oldest time.Time)
}

// Config configures a Publisher.
type Config struct {
	Destination store.Destination
	DB          *sqlite.DB
	// Site is the map page (index.html at its root, its assets beside),
	// published at start when it changed. Nil: no page.
	Site fs.FS
	// DBEvery is how often parking.db is published (and once more at a
	// graceful stop). Default 1h.
	DBEvery time.Duration
	// MonthEvery is the least time between two builds of one month's file
	// while changes keep arriving (a replay of a month, a backfill), so they
	// coalesce. Default 1m.
	MonthEvery time.Duration
	// Backoff is the delay before retrying after n consecutive failed
	// attempts. Default: DefaultBackoff.
	Backoff func(n int) time.Duration
	// After is the timer; tests drive it. Default time.After.
	After func(time.Duration) <-chan time.Time
	// Now is the clock (cache lifetimes, daily copies, ages). Default time.Now.
	Now func() time.Time
	// TempDir holds month files and database copies while they are built
	// and uploaded (local disk, not EFS). Default os.TempDir().
	TempDir string
	Logger  *slog.Logger
	Metrics Metrics
}

// DefaultBackoff waits 5 s after a failure, doubling up to 5 minutes, with
// ±20% jitter so that restarts of several loaders do not retry in step.
func DefaultBackoff(n int) time.Duration {
	d := 5 * time.Second
	for i := 1; i < n && d < 5*time.Minute; i++ {
		d *= 2
	}
	d = min(d, 5*time.Minute)
	return d + time.Duration((rand.Float64()*0.4-0.2)*float64(d))
}

// Timeouts of one job: a stuck connection must not stop a worker forever.
const (
	liveTimeout = 2 * time.Minute
	bulkTimeout = 30 * time.Minute
)

// The jobs. A month's job is jobMonth + "2026-11".
const (
	jobAvailability = "availability.json"
	jobGeoJSON      = "lots.geojson"
	jobLotsParquet  = "lots.parquet"
	jobScan         = "scan"
	jobSite         = "site"
	jobDB           = "db"
	jobMonth        = "month "
)

// isLive says which worker runs a job: the live one or the bulk one.
func isLive(job string) bool {
	return job == jobAvailability || job == jobGeoJSON || job == jobLotsParquet
}

// jobOrder sorts a worker's jobs: the freshest data first, newest months
// before older ones, the database copy last.
func jobOrder(a, b string) int {
	rank := func(j string) int {
		switch {
		case j == jobAvailability, j == jobScan:
			return 0
		case j == jobGeoJSON, j == jobSite:
			return 1
		case j == jobLotsParquet, strings.HasPrefix(j, jobMonth):
			return 2
		}
		return 3
	}
	if ra, rb := rank(a), rank(b); ra != rb {
		return ra - rb
	}
	return strings.Compare(b, a) // months: newest first
}

// Publisher keeps one destination up to date.
type Publisher struct {
	cfg  Config
	log  *slog.Logger
	dest string
	site []siteFile

	ctx    context.Context // the workers'; cancelled when Close runs out of time
	cancel context.CancelFunc
	stop   chan struct{}
	live   *worker
	bulk   *worker

	mu sync.Mutex
	// pending: jobs to run, each with the time of the oldest change it
	// carries (zero for jobs that are not changes: the start-up scan, the
	// periodic database copy).
	pending map[string]time.Time
	built   map[string]time.Time // month -> when its file was last built
	liveSHA map[string]string    // key -> SHA-256 of the live file last published
	dbDue   time.Time
	// state is the bulk worker's (and, once the workers stopped, Close's).
	state *state
}

type worker struct {
	name string
	wake chan struct{}
	done chan struct{}
}

// New checks the configuration and reads the map page. Start runs it.
func New(cfg Config) (*Publisher, error) {
	if cfg.Destination == nil || cfg.DB == nil {
		return nil, errors.New("publish: Destination and DB are required")
	}
	if cfg.DBEvery <= 0 {
		cfg.DBEvery = time.Hour
	}
	if cfg.MonthEvery <= 0 {
		cfg.MonthEvery = time.Minute
	}
	if cfg.Backoff == nil {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.TempDir == "" {
		cfg.TempDir = os.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	site, err := readSite(cfg.Site)
	if err != nil {
		return nil, err
	}
	p := &Publisher{
		cfg: cfg, log: cfg.Logger.With("destination", cfg.Destination.String()), dest: cfg.Destination.String(), site: site,
		stop:    make(chan struct{}),
		live:    &worker{name: "live", wake: make(chan struct{}, 1), done: make(chan struct{})},
		bulk:    &worker{name: "bulk", wake: make(chan struct{}, 1), done: make(chan struct{})},
		pending: map[string]time.Time{}, built: map[string]time.Time{}, liveSHA: map[string]string{},
		state: newState(),
	}
	return p, nil
}

// Start reads what was published before and starts the workers: everything
// the destination lacks or holds stale is published first (the live files,
// the months whose rows changed, the map page if it changed, the database
// copy if one is due), then whatever Notify reports.
func (p *Publisher) Start(ctx context.Context) {
	s, warning, err := loadState(ctx, p.cfg.DB, p.dest)
	if err != nil {
		p.log.Warn("publication state not read; publishing everything again", "err", err)
	}
	if warning != nil {
		p.log.Warn(warning.Error())
	}
	now := p.cfg.Now()
	p.mu.Lock()
	p.state = s
	p.dbDue = s.DBAt.Add(p.cfg.DBEvery)
	p.add(jobScan, time.Time{})
	if len(p.site) > 0 {
		p.add(jobSite, time.Time{})
	}
	for _, j := range []string{jobAvailability, jobGeoJSON, jobLotsParquet} {
		p.add(j, now)
	}
	p.mu.Unlock()
	p.cfg.Metrics.PublishStarted(Objects)
	p.reportPending()
	p.log.Info("publication started", "db_every", p.cfg.DBEvery.String(), "site_files", len(p.site),
		"months_published", len(s.Months))
	p.ctx, p.cancel = context.WithCancel(context.WithoutCancel(ctx))
	go p.run(p.live)
	go p.run(p.bulk)
}

// Notify marks what the committed results changed as stale. It never
// blocks on publication: it is the consume loop's after-commit hook. A nil
// Publisher (publication off) ignores it.
func (p *Publisher) Notify(results []snapshot.Result) {
	if p == nil {
		return
	}
	now := p.cfg.Now()
	var live, bulk bool
	p.mu.Lock()
	for _, r := range results {
		if r.AlreadyApplied || r.Outcome != snapshot.Applied && r.Outcome != snapshot.Superseded {
			continue
		}
		info, err := snapshot.ParseKey(r.Key)
		if err != nil {
			continue
		}
		switch info.Dataset {
		case feed.Availability:
			p.add(jobAvailability, now)
			p.add(jobGeoJSON, now)
			live = true
			// An observation is stored at its snapshot's fetch second, which
			// the key names: the month the snapshot touched.
			if r.Changed > 0 {
				p.add(jobMonth+monthOf(info.FetchedAt), now)
				bulk = true
			}
		case feed.Lots:
			p.add(jobGeoJSON, now)
			p.add(jobLotsParquet, now)
			live = true
		}
	}
	p.mu.Unlock()
	if live || bulk {
		p.reportPending()
	}
	if live {
		poke(p.live.wake)
	}
	if bulk {
		poke(p.bulk.wake)
	}
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// add marks a job pending, keeping the oldest change time. Caller holds mu.
func (p *Publisher) add(job string, since time.Time) {
	old, ok := p.pending[job]
	if !ok || !since.IsZero() && (old.IsZero() || since.Before(old)) {
		p.pending[job] = since
	}
}

func (p *Publisher) reportPending() {
	p.mu.Lock()
	var oldest time.Time
	for _, since := range p.pending {
		if !since.IsZero() && (oldest.IsZero() || since.Before(oldest)) {
			oldest = since
		}
	}
	p.mu.Unlock()
	p.cfg.Metrics.PublishPending(oldest)
}

// take removes and returns the jobs of w that are due, in order, and how
// long until the next one that is not (0: none waiting). With all, every
// pending job is due.
func (p *Publisher) take(w *worker, all bool) (jobs []string, since []time.Time, next time.Duration) {
	now := p.cfg.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if w == p.bulk || all {
		if !now.Before(p.dbDue) {
			p.add(jobDB, time.Time{})
		}
		// A month that ended since its file was published gets the long
		// cache lifetime it now deserves.
		for m, st := range p.state.Months {
			if st.CacheControl != monthCache(m, now) {
				p.add(jobMonth+m, time.Time{})
			}
		}
	}
	for job := range p.pending {
		if !all && isLive(job) != (w == p.live) {
			continue
		}
		if m, ok := strings.CutPrefix(job, jobMonth); ok && !all {
			if wait := p.built[m].Add(p.cfg.MonthEvery).Sub(now); wait > 0 {
				if next == 0 || wait < next {
					next = wait
				}
				continue
			}
		}
		jobs = append(jobs, job)
	}
	if w == p.bulk && !all {
		if wait := p.dbDue.Sub(now); wait > 0 && (next == 0 || wait < next) {
			next = wait
		}
	}
	slices.SortFunc(jobs, func(a, b string) int {
		if la, lb := isLive(a), isLive(b); la != lb {
			if la {
				return -1
			}
			return 1
		}
		return jobOrder(a, b)
	})
	for _, j := range jobs {
		since = append(since, p.pending[j])
		delete(p.pending, j)
	}
	return jobs, since, next
}

// requeue puts back jobs that were not done.
func (p *Publisher) requeue(jobs []string, since []time.Time) {
	p.mu.Lock()
	for i, j := range jobs {
		p.add(j, since[i])
	}
	p.mu.Unlock()
}

// run is a worker: it publishes its due jobs when woken or when one comes
// due, and after a failure waits for the backoff (new changes wait with it:
// the destination is failing) before trying again.
func (p *Publisher) run(w *worker) {
	defer close(w.done)
	failures := 0
	var next time.Duration
	for {
		var timer <-chan time.Time
		wake := w.wake
		switch {
		case failures > 0:
			timer, wake = p.cfg.After(p.cfg.Backoff(failures)), nil
		case next > 0:
			timer = p.cfg.After(next)
		}
		if failures > 0 || !p.hasDue(w) {
			select {
			case <-p.stop:
				return
			case <-wake:
			case <-timer:
			}
		}
		var err error
		next, err = p.cycle(p.ctx, w, false)
		switch {
		case errors.Is(err, errStopped):
			return
		case err != nil:
			failures++
			p.log.Warn("publication failed; retrying later", "worker", w.name, "err", err, "failures", failures)
		default:
			failures = 0
		}
	}
}

// hasDue says whether w has a job to run now (a wake-up may have been
// consumed while it was busy).
func (p *Publisher) hasDue(w *worker) bool {
	now := p.cfg.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if w == p.bulk && !now.Before(p.dbDue) {
		return true
	}
	for job := range p.pending {
		if isLive(job) != (w == p.live) {
			continue
		}
		if m, ok := strings.CutPrefix(job, jobMonth); ok && p.built[m].Add(p.cfg.MonthEvery).After(now) {
			continue
		}
		return true
	}
	return false
}

var errStopped = errors.New("publication stopping")

// cycle runs w's due jobs (all pending jobs with all) and reports the wait
// until the next one. The first failure ends it: the destination is likely
// down, and the other jobs would fail the same way.
func (p *Publisher) cycle(ctx context.Context, w *worker, all bool) (time.Duration, error) {
	jobs, since, next := p.take(w, all)
	defer p.reportPending()
	for i, job := range jobs {
		if !all {
			select {
			case <-p.stop:
				p.requeue(jobs[i:], since[i:])
				return next, errStopped
			default:
			}
		}
		if err := p.do(ctx, job); err != nil {
			p.requeue(jobs[i:], since[i:])
			return next, err
		}
	}
	return next, nil
}

// Close stops the workers, then publishes what is still pending and a last
// parking.db, within ctx: the graceful stop. The error says what could not
// be published; the next start publishes it. A nil Publisher has nothing to do.
func (p *Publisher) Close(ctx context.Context) error {
	if p == nil || p.cancel == nil { // off, or never started
		return nil
	}
	close(p.stop)
	for _, w := range []*worker{p.live, p.bulk} {
		select {
		case <-w.done:
		case <-ctx.Done():
			p.cancel() // the job in flight gives up
			<-w.done
		}
	}
	defer p.cancel()
	p.mu.Lock()
	p.dbDue = time.Time{} // a last copy at every graceful stop
	p.mu.Unlock()
	// The scan, if it had not run yet, adds months: run until nothing is left.
	for range 4 {
		if _, err := p.cycle(ctx, nil, true); err != nil {
			return fmt.Errorf("final publication to %s: %w", p.dest, err)
		}
		p.mu.Lock()
		left := len(p.pending)
		p.mu.Unlock()
		if left == 0 {
			break
		}
	}
	p.log.Info("publication stopped")
	return nil
}

type noMetrics struct{}

func (noMetrics) PublishStarted([]string)        {}
func (noMetrics) PublishSucceeded(string, int64) {}
func (noMetrics) PublishFailed(string)           {}
func (noMetrics) PublishPending(time.Time)       {}
