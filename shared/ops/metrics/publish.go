package metrics

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// This file holds the publication metrics (shared/export/publish): uploads
// and failures by object kind, bytes sent, and the age of the oldest change
// not yet published, the one figure that says whether readers see current
// data. *Registry implements publish.Metrics.

// publishMetrics are zero until PublishStarted: a loader that does not
// publish shows none of them.
type publishMetrics struct {
	on       bool
	uploads  map[string]uint64
	failures map[string]uint64
	bytes    map[string]uint64
	oldest   time.Time // zero: nothing pending
	// emf counts since the last EMF line.
	emfUploads, emfFailures int
}

// PublishStarted turns the publication metrics on, each object kind at zero.
func (r *Registry) PublishStarted(objects []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := &r.publish
	p.on = true
	if p.uploads == nil {
		p.uploads, p.failures, p.bytes = map[string]uint64{}, map[string]uint64{}, map[string]uint64{}
	}
	for _, o := range objects {
		p.uploads[o] += 0
		p.failures[o] += 0
		p.bytes[o] += 0
	}
}

// PublishSucceeded counts one object published.
func (r *Registry) PublishSucceeded(object string, n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.publish.on {
		return
	}
	r.publish.uploads[object]++
	r.publish.bytes[object] += uint64(max(n, 0))
	r.publish.emfUploads++
}

// PublishFailed counts one failed upload.
func (r *Registry) PublishFailed(object string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.publish.on {
		return
	}
	r.publish.failures[object]++
	r.publish.emfFailures++
}

// PublishPending records the time of the oldest unpublished change.
func (r *Registry) PublishPending(oldest time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.publish.oldest = oldest
}

// publishAge is the age of the oldest unpublished change, 0 when none.
func (p *publishMetrics) age(now time.Time) float64 {
	if p.oldest.IsZero() {
		return 0
	}
	return max(now.Sub(p.oldest).Seconds(), 0)
}

// writePrometheus renders the publication metrics. The caller holds r.mu.
func (p *publishMetrics) writePrometheus(b *strings.Builder, now time.Time) {
	if !p.on {
		return
	}
	for _, m := range []struct {
		name, help string
		values     map[string]uint64
	}{
		{"parking_publish_uploads_total", "Objects published to the -publish destination, by object kind.", p.uploads},
		{"parking_publish_failures_total", "Failed publication uploads (each is retried with backoff), by object kind.", p.failures},
		{"parking_publish_bytes_total", "Bytes published, by object kind.", p.bytes},
	} {
		header(b, m.name, "counter", m.help)
		objects := make([]string, 0, len(m.values))
		for o := range m.values {
			objects = append(objects, o)
		}
		slices.Sort(objects)
		for _, o := range objects {
			fmt.Fprintf(b, "%s{object=%q} %d\n", m.name, o, m.values[o])
		}
	}
	header(b, "parking_publish_oldest_unpublished_seconds", "gauge", "Age of the oldest applied change not yet published (0: the destination is current).")
	fmt.Fprintf(b, "parking_publish_oldest_unpublished_seconds %s\n", formatFloat(p.age(now)))
}

// emfDoc is the content of the publication's EMF line; the counts restart
// after it. ok is false while publication is off.
func (p *publishMetrics) emfDoc(now time.Time) (doc map[string]any, metrics []emfMetric, ok bool) {
	if !p.on {
		return nil, nil, false
	}
	doc = map[string]any{
		"PublishUploads":                  p.emfUploads,
		"PublishFailures":                 p.emfFailures,
		"PublishOldestUnpublishedSeconds": p.age(now),
	}
	metrics = []emfMetric{{"PublishUploads", "Count"}, {"PublishFailures", "Count"}, {"PublishOldestUnpublishedSeconds", "Seconds"}}
	p.emfUploads, p.emfFailures = 0, 0
	return doc, metrics, true
}

// publishEMF is the publication's EMF line: every periodic line (all), or
// after an upload or a failure. The caller holds r.mu.
func (r *Registry) publishEMF(now time.Time, all bool) ([]byte, error) {
	p := &r.publish
	if !all && p.emfUploads+p.emfFailures == 0 {
		return nil, nil
	}
	doc, metrics, ok := p.emfDoc(now)
	if !ok {
		return nil, nil
	}
	// An empty dimension set: the publication is one per loader.
	doc["_aws"] = emfMeta{
		Timestamp:         now.UnixMilli(),
		CloudWatchMetrics: []emfDirective{{Namespace: Namespace, Dimensions: [][]string{{}}, Metrics: metrics}},
	}
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(doc); err != nil {
		return nil, fmt.Errorf("encode emf: %w", err)
	}
	return buf.Bytes(), nil
}
