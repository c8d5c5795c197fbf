// Package metrics counts what the loader's consume loop does and renders it
// two ways: the Prometheus text exposition format (for /metrics), and
// CloudWatch Embedded Metric Format log lines (so alarms need no agent and no
// extra dependency). Both are written by hand; the formats are small.
package metrics

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/load/consume"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
)

// defaultBuckets are the upper bounds, in seconds, of every latency
// histogram: an apply is milliseconds on a local disk and can be seconds on
// EFS; a store read is tens of milliseconds on S3.
var defaultBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// Registry holds the loader's metrics. It is safe for concurrent use; the
// consume loop calls Observe from its goroutines.
type Registry struct {
	now func() time.Time

	mu        sync.Mutex
	snapshots map[snapshotKey]uint64 // by dataset and outcome
	refused   map[feed.Dataset]uint64
	rows      map[feed.Dataset]uint64
	messages  map[string]uint64
	apply     histogram // per snapshot
	commit    histogram // per transaction
	storeRead histogram
	// lastApplied is when each dataset last had a snapshot applied as current data.
	lastApplied map[feed.Dataset]time.Time
	// lastActivity is when the loop last showed it was alive.
	lastActivity time.Time
	// pending holds what the next EMF line reports, per dataset.
	pending map[feed.Dataset]*emfCounts
	// publish holds the publication metrics (publish.go).
	publish publishMetrics
	// database is whether the database fails (database.go).
	database databaseHealth
}

type snapshotKey struct {
	dataset feed.Dataset
	outcome string
}

// New returns an empty registry. now is the clock (nil: time.Now); the
// loop counts as alive from the moment the registry is made.
func New(now func() time.Time) *Registry {
	if now == nil {
		now = time.Now
	}
	r := &Registry{
		now:         now,
		snapshots:   map[snapshotKey]uint64{},
		refused:     map[feed.Dataset]uint64{},
		rows:        map[feed.Dataset]uint64{},
		messages:    map[string]uint64{},
		apply:       newHistogram(defaultBuckets),
		commit:      newHistogram(defaultBuckets),
		storeRead:   newHistogram(defaultBuckets),
		lastApplied: map[feed.Dataset]time.Time{},
		pending:     map[feed.Dataset]*emfCounts{},
	}
	r.lastActivity = now()
	return r
}

// outcome is the outcome label of a result. A key already in the ledger is
// counted apart, so a redelivery never counts as a second apply.
func outcome(res *snapshot.Result) string {
	if res.AlreadyApplied {
		return "already_applied"
	}
	return string(res.Outcome)
}

// Observe records one consume event. It never blocks for long: it is
// consume.Config.OnEvent.
func (r *Registry) Observe(ev consume.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lastActivity = r.now()
	switch ev.Kind {
	case consume.Received:
		r.messages["received"] += uint64(ev.N)
	case consume.Deleted:
		r.messages["deleted"] += uint64(ev.N)
	case consume.Retried:
		r.messages["retried"]++
	case consume.DeadLettered:
		r.messages["dead_lettered"]++
	case consume.StoreRead:
		r.storeRead.observe(ev.Duration.Seconds())
	case consume.Committed:
		r.commit.observe(ev.Duration.Seconds())
	case consume.DatabaseFailing:
		r.database.fail()
	case consume.DatabaseRecovered:
		r.database.recover()
	case consume.Applied:
		if ev.Result == nil {
			return
		}
		res := ev.Result
		r.snapshots[snapshotKey{ev.Dataset, outcome(res)}]++
		r.rows[ev.Dataset] += uint64(max(res.Changed, 0))
		p := r.pendingFor(ev.Dataset)
		// A result without a duration (a reconcile's, applied in batches
		// before the loop starts) is counted but not timed.
		if ev.Duration > 0 {
			sec := ev.Duration.Seconds()
			r.apply.observe(sec)
			if len(p.applySeconds) == emfMaxValues {
				// EMF takes at most 100 values per metric; keep the newest.
				p.applySeconds = p.applySeconds[1:]
			}
			p.applySeconds = append(p.applySeconds, sec)
		}
		p.rowsChanged += res.Changed
		switch {
		case res.AlreadyApplied:
		case res.Outcome == snapshot.Applied:
			r.lastApplied[ev.Dataset] = r.now()
			p.applied++
		case res.Outcome == snapshot.Refused:
			p.refused++
			r.refused[ev.Dataset]++
		}
	}
}

// SetLastApplied seeds the time of a dataset's last apply (from the ledger at
// start-up), so a restart does not reset the staleness gauge to "unknown".
func (r *Registry) SetLastApplied(d feed.Dataset, t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t.After(r.lastApplied[d]) {
		r.lastApplied[d] = t
	}
}

// LastActivity is when the consume loop last reported anything (a poll
// included). /healthz compares it with the poll wait.
func (r *Registry) LastActivity() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastActivity
}

func (r *Registry) pendingFor(d feed.Dataset) *emfCounts {
	p := r.pending[d]
	if p == nil {
		p = &emfCounts{}
		r.pending[d] = p
	}
	return p
}

// WritePrometheus writes every metric in the Prometheus text format 0.0.4.
func (r *Registry) WritePrometheus(w io.Writer) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	var b strings.Builder

	header(&b, "parking_snapshots_total", "counter", "Snapshots handled by the loader, by dataset and outcome (applied, duplicate, superseded, refused, already_applied).")
	keys := make([]snapshotKey, 0, len(r.snapshots))
	for k := range r.snapshots {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].dataset != keys[j].dataset {
			return keys[i].dataset < keys[j].dataset
		}
		return keys[i].outcome < keys[j].outcome
	})
	for _, k := range keys {
		fmt.Fprintf(&b, "parking_snapshots_total{dataset=%q,outcome=%q} %d\n", k.dataset, k.outcome, r.snapshots[k])
	}

	// Every dataset from the start, zero included: an alert on its increase
	// needs no first refusal to have happened.
	header(&b, "parking_snapshots_refused_total", "counter", "Snapshots the loader refused (a guard: mass delete or blanking, wrong columns, a fetch time ahead of the store, a flood of new IDs; the ledger says why), by dataset.")
	for _, d := range feed.Datasets {
		fmt.Fprintf(&b, "parking_snapshots_refused_total{dataset=%q} %d\n", d, r.refused[d])
	}

	header(&b, "parking_rows_changed_total", "counter", "Rows inserted, updated or deleted in user-facing tables, by dataset.")
	for _, d := range sortedDatasets(r.rows) {
		fmt.Fprintf(&b, "parking_rows_changed_total{dataset=%q} %d\n", d, r.rows[d])
	}

	header(&b, "parking_apply_seconds", "histogram", "Time to apply one snapshot (its share of the transaction, commit included).")
	r.apply.write(&b, "parking_apply_seconds")
	header(&b, "parking_commit_seconds", "histogram", "Time of one database transaction (a batch of snapshots) from begin to durable commit.")
	r.commit.write(&b, "parking_commit_seconds")
	header(&b, "parking_store_read_seconds", "histogram", "Time to read and verify one snapshot from the store.")
	r.storeRead.write(&b, "parking_store_read_seconds")

	header(&b, "parking_messages_total", "counter", "Queue messages, by event (received, retried, dead_lettered, deleted).")
	for _, ev := range []string{"dead_lettered", "deleted", "received", "retried"} {
		fmt.Fprintf(&b, "parking_messages_total{event=%q} %d\n", ev, r.messages[ev])
	}

	header(&b, "parking_seconds_since_last_apply", "gauge", "Seconds since a snapshot of the dataset was last applied as current data (absent: never).")
	for _, d := range sortedDatasets(r.lastApplied) {
		fmt.Fprintf(&b, "parking_seconds_since_last_apply{dataset=%q} %s\n", d, formatFloat(max(now.Sub(r.lastApplied[d]).Seconds(), 0)))
	}
	r.database.writePrometheus(&b)
	r.publish.writePrometheus(&b, now)
	_, err := io.WriteString(w, b.String())
	return err
}

func header(b *strings.Builder, name, typ, help string) {
	fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

func sortedDatasets[V any](m map[feed.Dataset]V) []feed.Dataset {
	ds := make([]feed.Dataset, 0, len(m))
	for d := range m {
		ds = append(ds, d)
	}
	slices.Sort(ds)
	return ds
}

func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	case math.IsNaN(f):
		return "NaN"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// histogram is a Prometheus histogram: cumulative bucket counts, sum, count.
type histogram struct {
	bounds []float64
	counts []uint64 // counts[i]: observations <= bounds[i], not cumulative
	sum    float64
	n      uint64
}

func newHistogram(bounds []float64) histogram {
	return histogram{bounds: bounds, counts: make([]uint64, len(bounds))}
}

func (h *histogram) observe(v float64) {
	h.sum += v
	h.n++
	if i := sort.SearchFloat64s(h.bounds, v); i < len(h.bounds) {
		h.counts[i]++
	}
}

func (h *histogram) write(b *strings.Builder, name string) {
	var cum uint64
	for i, le := range h.bounds {
		cum += h.counts[i]
		fmt.Fprintf(b, "%s_bucket{le=%q} %d\n", name, formatFloat(le), cum)
	}
	fmt.Fprintf(b, "%s_bucket{le=\"+Inf\"} %d\n%s_sum %s\n%s_count %d\n", name, h.n, name, formatFloat(h.sum), name, h.n)
}
