package metrics_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/clock"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/load/consume"
	"github.com/parking-newtaipei/parking-newtaipei/shared/ops/metrics"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
)

func newClock() *clock.Fake { return clock.NewFake(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)) }

func applied(d feed.Dataset, o snapshot.Outcome, changed int, dur time.Duration) consume.Event {
	return consume.Event{Kind: consume.Applied, Dataset: d, Duration: dur,
		Result: &snapshot.Result{Key: string(d) + "/k", Outcome: o, Changed: changed}}
}

// sequence feeds a registry a known sequence: one batch of three snapshots
// (lots applied, availability applied, availability refused), a retry, a
// dead letter, and a second batch with a duplicate and a redelivery.
func sequence(t *testing.T, r *metrics.Registry, c *clock.Fake) {
	t.Helper()
	r.Observe(consume.Event{Kind: consume.Polled, N: 5})
	r.Observe(consume.Event{Kind: consume.Received, N: 5})
	r.Observe(consume.Event{Kind: consume.StoreRead, Dataset: feed.Lots, Duration: 20 * time.Millisecond})
	r.Observe(consume.Event{Kind: consume.StoreRead, Dataset: feed.Availability, Duration: 40 * time.Millisecond})
	r.Observe(consume.Event{Kind: consume.StoreRead, Dataset: feed.Availability, Duration: 3 * time.Second})
	r.Observe(applied(feed.Lots, snapshot.Applied, 900, 200*time.Millisecond))
	r.Observe(applied(feed.Availability, snapshot.Applied, 850, 200*time.Millisecond))
	r.Observe(applied(feed.Availability, snapshot.Refused, 0, 200*time.Millisecond))
	r.Observe(consume.Event{Kind: consume.Committed, N: 3, Duration: 600 * time.Millisecond})
	r.Observe(consume.Event{Kind: consume.Retried, Dataset: feed.Availability})
	r.Observe(consume.Event{Kind: consume.DeadLettered, Dataset: feed.Lots})
	r.Observe(consume.Event{Kind: consume.Deleted, N: 3})
	c.Advance(90 * time.Second)
	r.Observe(consume.Event{Kind: consume.Received, N: 2})
	dup := applied(feed.Availability, snapshot.Duplicate, 0, 2*time.Millisecond)
	again := applied(feed.Lots, snapshot.Applied, 0, 2*time.Millisecond)
	again.Result.AlreadyApplied = true
	r.Observe(dup)
	r.Observe(again)
	r.Observe(consume.Event{Kind: consume.Committed, N: 2, Duration: 4 * time.Millisecond})
	r.Observe(consume.Event{Kind: consume.Deleted, N: 2})
	c.Advance(30 * time.Second)
}

func TestPrometheusAfterAKnownSequence(t *testing.T) {
	c := newClock()
	r := metrics.New(c.Now)
	sequence(t, r, c)
	var buf bytes.Buffer
	if err := r.WritePrometheus(&buf); err != nil {
		t.Fatal(err)
	}
	got := samples(t, buf.String())
	want := map[string]string{
		`parking_snapshots_total{dataset="availability",outcome="applied"}`:   "1",
		`parking_snapshots_total{dataset="availability",outcome="duplicate"}`: "1",
		`parking_snapshots_total{dataset="availability",outcome="refused"}`:   "1",
		`parking_snapshots_total{dataset="lots",outcome="already_applied"}`:   "1",
		`parking_snapshots_total{dataset="lots",outcome="applied"}`:           "1",
		`parking_rows_changed_total{dataset="availability"}`:                  "850",
		`parking_rows_changed_total{dataset="lots"}`:                          "900",
		`parking_messages_total{event="received"}`:                            "7",
		`parking_messages_total{event="deleted"}`:                             "5",
		`parking_messages_total{event="retried"}`:                             "1",
		`parking_messages_total{event="dead_lettered"}`:                       "1",
		`parking_apply_seconds_count`:                                         "5",
		`parking_apply_seconds_bucket{le="0.005"}`:                            "2",
		`parking_apply_seconds_bucket{le="0.25"}`:                             "5",
		`parking_commit_seconds_count`:                                        "2",
		`parking_commit_seconds_bucket{le="0.005"}`:                           "1",
		`parking_commit_seconds_bucket{le="0.5"}`:                             "1",
		`parking_commit_seconds_bucket{le="1"}`:                               "2",
		`parking_store_read_seconds_count`:                                    "3",
		`parking_store_read_seconds_bucket{le="0.025"}`:                       "1",
		`parking_store_read_seconds_bucket{le="0.05"}`:                        "2",
		`parking_store_read_seconds_bucket{le="2.5"}`:                         "2",
		`parking_store_read_seconds_bucket{le="5"}`:                           "3",
		`parking_store_read_seconds_bucket{le="+Inf"}`:                        "3",
		`parking_store_read_seconds_sum`:                                      "3.06",
		`parking_seconds_since_last_apply{dataset="availability"}`:            "120",
		`parking_seconds_since_last_apply{dataset="lots"}`:                    "120",
		`parking_snapshots_refused_total{dataset="availability"}`:             "1",
		`parking_snapshots_refused_total{dataset="lots"}`:                     "0",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	// Every metric the contract names is declared with its type.
	for name, typ := range map[string]string{
		"parking_snapshots_total": "counter", "parking_rows_changed_total": "counter",
		"parking_apply_seconds": "histogram", "parking_commit_seconds": "histogram",
		"parking_store_read_seconds": "histogram", "parking_messages_total": "counter",
		"parking_seconds_since_last_apply": "gauge", "parking_snapshots_refused_total": "counter",
	} {
		if !strings.Contains(buf.String(), "# TYPE "+name+" "+typ+"\n") {
			t.Errorf("no TYPE line for %s %s", name, typ)
		}
	}
}

func TestPrometheusBeforeAnything(t *testing.T) {
	c := newClock()
	r := metrics.New(c.Now)
	var buf bytes.Buffer
	if err := r.WritePrometheus(&buf); err != nil {
		t.Fatal(err)
	}
	got := samples(t, buf.String())
	if got[`parking_messages_total{event="received"}`] != "0" || got["parking_apply_seconds_count"] != "0" ||
		got[`parking_snapshots_refused_total{dataset="lots"}`] != "0" || got[`parking_snapshots_refused_total{dataset="availability"}`] != "0" {
		t.Errorf("fresh registry:\n%s", buf.String())
	}
	if strings.Contains(buf.String(), "parking_seconds_since_last_apply{") {
		t.Error("no apply yet: the staleness gauge must be absent, not 0")
	}
	// Seeded from the ledger at start-up.
	r.SetLastApplied(feed.Availability, c.Now().Add(-10*time.Minute))
	buf.Reset()
	_ = r.WritePrometheus(&buf)
	if v := samples(t, buf.String())[`parking_seconds_since_last_apply{dataset="availability"}`]; v != "600" {
		t.Errorf("seeded gauge = %q", v)
	}
}

func TestLastActivity(t *testing.T) {
	c := newClock()
	r := metrics.New(c.Now)
	start := c.Now()
	if !r.LastActivity().Equal(start) {
		t.Error("a new registry counts as active now")
	}
	c.Advance(time.Minute)
	r.Observe(consume.Event{Kind: consume.Polled})
	if !r.LastActivity().Equal(start.Add(time.Minute)) {
		t.Error("a poll is activity")
	}
}

// emfLine is the shape CloudWatch expects of an EMF log line.
type emfLine struct {
	AWS struct {
		Timestamp         int64 `json:"Timestamp"`
		CloudWatchMetrics []struct {
			Namespace  string     `json:"Namespace"`
			Dimensions [][]string `json:"Dimensions"`
			Metrics    []struct {
				Name string `json:"Name"`
				Unit string `json:"Unit"`
			} `json:"Metrics"`
		} `json:"CloudWatchMetrics"`
	} `json:"_aws"`
}

// parseEMF checks the datasets' EMF lines of out and returns them.
func parseEMF(t *testing.T, out string) []map[string]any {
	t.Helper()
	var docs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var shape emfLine
		if err := json.Unmarshal(sc.Bytes(), &shape); err != nil {
			t.Fatalf("not JSON: %s", sc.Text())
		}
		var doc map[string]any
		_ = json.Unmarshal(sc.Bytes(), &doc)
		cw := shape.AWS.CloudWatchMetrics
		if len(cw) == 1 && reflect.DeepEqual(cw[0].Dimensions, [][]string{{}}) {
			continue // the loader's own lines (database, publication): their tests read them
		}
		if shape.AWS.Timestamp == 0 || len(cw) != 1 || cw[0].Namespace != "ParkingNewTaipei" ||
			!reflect.DeepEqual(cw[0].Dimensions, [][]string{{"Dataset"}}) {
			t.Fatalf("bad _aws block: %s", sc.Text())
		}
		if _, ok := doc["Dataset"].(string); !ok {
			t.Fatalf("dimension Dataset missing: %s", sc.Text())
		}
		// Every declared metric has a value at the root.
		for _, m := range cw[0].Metrics {
			if _, ok := doc[m.Name]; !ok {
				t.Errorf("metric %s declared without a value: %s", m.Name, sc.Text())
			}
			if m.Unit != "Count" && m.Unit != "Seconds" {
				t.Errorf("unit %q", m.Unit)
			}
		}
		docs = append(docs, doc)
	}
	return docs
}

func TestEMF(t *testing.T) {
	c := newClock()
	r := metrics.New(c.Now)

	// Before anything: the periodic line reports zero for both datasets.
	var buf bytes.Buffer
	if err := r.WriteEMF(&buf, true); err != nil {
		t.Fatal(err)
	}
	docs := parseEMF(t, buf.String())
	if len(docs) != 2 || docs[0]["Dataset"] != "lots" || docs[1]["Dataset"] != "availability" {
		t.Fatalf("periodic lines = %s", buf.String())
	}
	for _, d := range docs {
		if d["SnapshotsApplied"] != 0.0 || d["SnapshotsRefused"] != 0.0 || d["RowsChanged"] != 0.0 {
			t.Errorf("zero line = %v", d)
		}
		if _, ok := d["ApplySeconds"]; ok {
			t.Errorf("no apply: no ApplySeconds value, got %v", d)
		}
		if _, ok := d["SecondsSinceLastApply"]; ok {
			t.Errorf("never applied: no SecondsSinceLastApply, got %v", d)
		}
	}

	// After applies: the line after the commit reports them, for the datasets concerned only.
	r.Observe(applied(feed.Availability, snapshot.Applied, 850, 200*time.Millisecond))
	r.Observe(applied(feed.Availability, snapshot.Refused, 0, 100*time.Millisecond))
	c.Advance(5 * time.Second)
	buf.Reset()
	if err := r.WriteEMF(&buf, false); err != nil {
		t.Fatal(err)
	}
	docs = parseEMF(t, buf.String())
	if len(docs) != 1 {
		t.Fatalf("after apply: %s", buf.String())
	}
	d := docs[0]
	if d["Dataset"] != "availability" || d["SnapshotsApplied"] != 1.0 || d["SnapshotsRefused"] != 1.0 ||
		d["RowsChanged"] != 850.0 || d["SecondsSinceLastApply"] != 5.0 ||
		!reflect.DeepEqual(d["ApplySeconds"], []any{0.2, 0.1}) {
		t.Errorf("after apply = %v", d)
	}

	// The next periodic line starts from zero again (counts are reported once),
	// while the staleness keeps growing.
	c.Advance(time.Minute)
	buf.Reset()
	_ = r.WriteEMF(&buf, true)
	docs = parseEMF(t, buf.String())
	if len(docs) != 2 || docs[1]["SnapshotsApplied"] != 0.0 || docs[1]["SecondsSinceLastApply"] != 65.0 {
		t.Errorf("periodic after apply = %s", buf.String())
	}
	if _, ok := docs[0]["SecondsSinceLastApply"]; ok {
		t.Errorf("lots never applied: %v", docs[0])
	}
}

// syncWriter signals each write, so the test waits for a line without sleeping.
type syncWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	wrote chan struct{}
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	select {
	case w.wrote <- struct{}{}:
	default:
	}
	return len(p), nil
}

func TestRunEMFWritesPeriodically(t *testing.T) {
	r := metrics.New(nil)
	w := &syncWriter{wrote: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.RunEMF(ctx, w, time.Millisecond, nil)
	}()
	<-w.wrote
	cancel()
	<-done
	w.mu.Lock()
	defer w.mu.Unlock()
	if docs := parseEMF(t, w.buf.String()); len(docs) < 2 {
		t.Errorf("periodic output = %s", w.buf.String())
	}
}

// samples parses the exposition format into series -> value.
func samples(t *testing.T, text string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		if strings.HasPrefix(line, "#") {
			if !strings.HasPrefix(line, "# HELP ") && !strings.HasPrefix(line, "# TYPE ") {
				t.Errorf("bad comment line %q", line)
			}
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("bad sample line %q", line)
		}
		out[line[:i]] = line[i+1:]
	}
	return out
}

// Issue 13, item 11: a refusal found by reconcile (a result without a
// duration, from backfill's batches) counts as a refusal in both formats,
// and is not a zero-second apply.
func TestResultWithoutDurationIsCountedNotTimed(t *testing.T) {
	c := newClock()
	r := metrics.New(c.Now)
	r.Observe(applied(feed.Lots, snapshot.Refused, 0, 0))
	var prom, emf bytes.Buffer
	if err := r.WritePrometheus(&prom); err != nil {
		t.Fatal(err)
	}
	got := samples(t, prom.String())
	if got[`parking_snapshots_refused_total{dataset="lots"}`] != "1" || got["parking_apply_seconds_count"] != "0" {
		t.Errorf("refused %q, apply samples %q", got[`parking_snapshots_refused_total{dataset="lots"}`], got["parking_apply_seconds_count"])
	}
	if err := r.WriteEMF(&emf, false); err != nil {
		t.Fatal(err)
	}
	var line map[string]any
	if err := json.Unmarshal(emf.Bytes(), &line); err != nil {
		t.Fatalf("EMF %q: %v", emf.String(), err)
	}
	if line["Dataset"] != "lots" || line["SnapshotsRefused"] != 1.0 || line["ApplySeconds"] != nil {
		t.Errorf("EMF line %v", line)
	}
}
