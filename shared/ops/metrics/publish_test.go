package metrics_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/ops/metrics"
)

func TestPublishMetrics(t *testing.T) {
	c := newClock()
	r := metrics.New(c.Now)
	render := func() (string, map[string]string) {
		var buf bytes.Buffer
		if err := r.WritePrometheus(&buf); err != nil {
			t.Fatal(err)
		}
		return buf.String(), samples(t, buf.String())
	}
	// Publication off: none of its metrics.
	if text, _ := render(); strings.Contains(text, "parking_publish_") {
		t.Fatalf("publication metrics without publication:\n%s", text)
	}
	r.PublishSucceeded("parking.db", 10) // before the start: not counted
	r.PublishStarted([]string{"availability.json", "parking.db"})
	_, got := render()
	for _, s := range []string{`parking_publish_uploads_total{object="availability.json"}`, `parking_publish_failures_total{object="parking.db"}`,
		`parking_publish_bytes_total{object="parking.db"}`, "parking_publish_oldest_unpublished_seconds"} {
		if got[s] != "0" {
			t.Errorf("%s = %q after the start, want 0", s, got[s])
		}
	}

	r.PublishPending(c.Now())
	r.PublishFailed("availability.json")
	r.PublishFailed("availability.json")
	c.Advance(90 * time.Second)
	r.PublishSucceeded("availability.json", 1234)
	r.PublishSucceeded("availability.json", 1000)
	_, got = render()
	want := map[string]string{
		`parking_publish_uploads_total{object="availability.json"}`:  "2",
		`parking_publish_failures_total{object="availability.json"}`: "2",
		`parking_publish_bytes_total{object="availability.json"}`:    "2234",
		"parking_publish_oldest_unpublished_seconds":                 "90",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %s", k, got[k], v)
		}
	}
	r.PublishPending(time.Time{})
	if _, got = render(); got["parking_publish_oldest_unpublished_seconds"] != "0" {
		t.Errorf("nothing pending: gauge = %q, want 0", got["parking_publish_oldest_unpublished_seconds"])
	}
}

func TestPublishEMF(t *testing.T) {
	c := newClock()
	r := metrics.New(c.Now)
	lines := func(all bool) []map[string]any {
		var buf bytes.Buffer
		if err := r.WriteEMF(&buf, all); err != nil {
			t.Fatal(err)
		}
		var out []map[string]any
		for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			var doc map[string]any
			if l == "" {
				continue
			}
			if err := json.Unmarshal([]byte(l), &doc); err != nil {
				t.Fatalf("not JSON: %s", l)
			}
			if _, ok := doc["PublishUploads"]; ok {
				out = append(out, doc)
			}
		}
		return out
	}
	if got := lines(true); len(got) != 0 {
		t.Fatalf("publication line without publication: %v", got)
	}
	r.PublishStarted([]string{"parking.db"})
	r.PublishPending(c.Now())
	r.PublishFailed("parking.db")
	c.Advance(2 * time.Minute)
	got := lines(false)
	if len(got) != 1 {
		t.Fatalf("%d publication lines after a failure, want 1", len(got))
	}
	doc := got[0]
	if doc["PublishFailures"] != 1.0 || doc["PublishUploads"] != 0.0 || doc["PublishOldestUnpublishedSeconds"] != 120.0 {
		t.Errorf("line = %v", doc)
	}
	aws, _ := json.Marshal(doc["_aws"])
	var shape struct {
		CloudWatchMetrics []struct {
			Namespace  string
			Dimensions [][]string
			Metrics    []struct{ Name, Unit string }
		}
	}
	if err := json.Unmarshal(aws, &shape); err != nil || len(shape.CloudWatchMetrics) != 1 {
		t.Fatalf("bad _aws block: %s", aws)
	}
	cw := shape.CloudWatchMetrics[0]
	if cw.Namespace != metrics.Namespace || !reflect.DeepEqual(cw.Dimensions, [][]string{{}}) || len(cw.Metrics) != 3 {
		t.Errorf("directive = %+v", cw)
	}
	// Counts restart after a line; nothing new: no line unless periodic.
	if got := lines(false); len(got) != 0 {
		t.Errorf("a second line without news: %v", got)
	}
	if got := lines(true); len(got) != 1 || got[0]["PublishFailures"] != 0.0 {
		t.Errorf("periodic line = %v", got)
	}
}
