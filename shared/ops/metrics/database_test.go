package metrics_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/load/consume"
	"github.com/parking-newtaipei/parking-newtaipei/shared/ops/metrics"
)

// databaseLine returns the value of the database's EMF line in a periodic
// write, after checking the line's shape: namespace, no dimension, one metric.
func databaseLine(t *testing.T, r *metrics.Registry) float64 {
	t.Helper()
	var buf bytes.Buffer
	if err := r.WriteEMF(&buf, true); err != nil {
		t.Fatal(err)
	}
	var values []float64
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var doc map[string]any
		if err := json.Unmarshal([]byte(l), &doc); err != nil {
			t.Fatalf("not JSON: %s", l)
		}
		v, ok := doc[metrics.DatabaseFailingMetric].(float64)
		if !ok {
			continue
		}
		var shape emfLine
		_ = json.Unmarshal([]byte(l), &shape)
		cw := shape.AWS.CloudWatchMetrics
		if len(cw) != 1 || cw[0].Namespace != metrics.Namespace || !reflect.DeepEqual(cw[0].Dimensions, [][]string{{}}) ||
			len(cw[0].Metrics) != 1 || cw[0].Metrics[0].Name != metrics.DatabaseFailingMetric || len(doc) != 2 {
			t.Fatalf("database line %s: want namespace %s, no dimension, the one metric", l, metrics.Namespace)
		}
		values = append(values, v)
	}
	if len(values) != 1 {
		t.Fatalf("%d database lines in a periodic write, want 1:\n%s", len(values), buf.String())
	}
	// Never in the line after an apply: it is periodic.
	buf.Reset()
	if err := r.WriteEMF(&buf, false); err != nil || strings.Contains(buf.String(), metrics.DatabaseFailingMetric) {
		t.Fatalf("a database line outside the periodic write (%v): %s", err, buf.String())
	}
	return values[0]
}

func failingGauge(t *testing.T, r *metrics.Registry) string {
	t.Helper()
	var buf bytes.Buffer
	if err := r.WritePrometheus(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "# TYPE parking_database_failing gauge\n") {
		t.Fatalf("no parking_database_failing gauge:\n%s", buf.String())
	}
	return samples(t, buf.String())["parking_database_failing"]
}

// A failing database (the consume loop's DatabaseFailing, until
// DatabaseRecovered) is a gauge while it lasts, and a periodic EMF line
// that is 1 for every interval in which it failed, however briefly.
func TestDatabaseFailing(t *testing.T) {
	c := newClock()
	r := metrics.New(c.Now)
	if g, v := failingGauge(t, r), databaseLine(t, r); g != "0" || v != 0 {
		t.Fatalf("healthy: gauge %s, EMF %v; want 0, 0", g, v)
	}
	full := errors.New("apply k: database or disk is full")
	r.Observe(consume.Event{Kind: consume.DatabaseFailing, N: 10, Err: full})
	c.Advance(15 * time.Second)
	r.Observe(consume.Event{Kind: consume.DatabaseFailing, N: 10, Err: full})
	if g, v := failingGauge(t, r), databaseLine(t, r); g != "1" || v != 1 {
		t.Fatalf("failing: gauge %s, EMF %v; want 1, 1", g, v)
	}
	// Still failing in the next interval, with no new event in it.
	if v := databaseLine(t, r); v != 1 {
		t.Fatalf("still failing: EMF %v, want 1", v)
	}
	r.Observe(consume.Event{Kind: consume.DatabaseRecovered, Duration: 3 * time.Minute})
	if g := failingGauge(t, r); g != "0" {
		t.Fatalf("recovered: gauge %s, want 0", g)
	}
	// A failure that began and ended between two lines is reported once.
	r.Observe(consume.Event{Kind: consume.DatabaseFailing, N: 1, Err: full})
	r.Observe(consume.Event{Kind: consume.DatabaseRecovered, Duration: time.Second})
	if g, v := failingGauge(t, r), databaseLine(t, r); g != "0" || v != 1 {
		t.Fatalf("a failure within one interval: gauge %s, EMF %v; want 0, 1", g, v)
	}
	if v := databaseLine(t, r); v != 0 {
		t.Fatalf("the interval after: EMF %v, want 0", v)
	}
}
