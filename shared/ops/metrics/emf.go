package metrics

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
)

// Namespace is the CloudWatch namespace of the EMF lines.
const Namespace = "ParkingNewTaipei"

// emfCounts is what happened to a dataset since its last EMF line.
type emfCounts struct {
	applied      int
	refused      int
	rowsChanged  int
	applySeconds []float64
}

// emfMetric declares one metric of an EMF directive.
type emfMetric struct {
	Name string `json:"Name"`
	Unit string `json:"Unit"`
}

type emfDirective struct {
	Namespace  string      `json:"Namespace"`
	Dimensions [][]string  `json:"Dimensions"`
	Metrics    []emfMetric `json:"Metrics"`
}

type emfMeta struct {
	Timestamp         int64          `json:"Timestamp"`
	CloudWatchMetrics []emfDirective `json:"CloudWatchMetrics"`
}

// emfMaxValues is how many values one EMF metric may carry in an array.
const emfMaxValues = 100

// WriteEMF writes one CloudWatch Embedded Metric Format line per dataset and
// resets the counts it reports. With all set, every dataset gets a line, its
// counts zero if nothing happened, and so does the database's health: the
// periodic lines, which are what let an alarm on "SnapshotsApplied summed
// over 15 minutes < 1" see zeros rather than missing data. Without all, only
// datasets with something to report get a line (the line after an apply).
//
// Each line is written with a single Write, so lines from this and the JSON
// logger sharing the writer never interleave.
func (r *Registry) WriteEMF(w io.Writer, all bool) error {
	r.mu.Lock()
	now := r.now()
	var lines [][]byte
	for _, d := range feed.Datasets {
		p := r.pending[d]
		if p == nil {
			if !all {
				continue
			}
			p = &emfCounts{}
		}
		line, err := emfLine(now, d, p, r.lastApplied[d])
		if err != nil {
			r.mu.Unlock()
			return err
		}
		lines = append(lines, line)
		delete(r.pending, d)
	}
	if all {
		line, err := r.databaseEMF(now)
		if err != nil {
			r.mu.Unlock()
			return err
		}
		lines = append(lines, line)
	}
	if line, err := r.publishEMF(now, all); err != nil || line != nil {
		if err != nil {
			r.mu.Unlock()
			return err
		}
		lines = append(lines, line)
	}
	r.mu.Unlock()
	for _, line := range lines {
		if _, err := w.Write(line); err != nil {
			return fmt.Errorf("write emf: %w", err)
		}
	}
	return nil
}

func emfLine(now time.Time, d feed.Dataset, p *emfCounts, lastApplied time.Time) ([]byte, error) {
	metrics := []emfMetric{
		{"SnapshotsApplied", "Count"},
		{"SnapshotsRefused", "Count"},
		{"RowsChanged", "Count"},
	}
	doc := map[string]any{
		"Dataset":          string(d),
		"SnapshotsApplied": p.applied,
		"SnapshotsRefused": p.refused,
		"RowsChanged":      p.rowsChanged,
	}
	// A metric with no value is left out of the directive: declaring it
	// without a value would record nothing, and a 0 would be a false latency.
	if n := len(p.applySeconds); n > 0 {
		metrics = append(metrics, emfMetric{"ApplySeconds", "Seconds"})
		if n == 1 {
			doc["ApplySeconds"] = p.applySeconds[0]
		} else {
			doc["ApplySeconds"] = p.applySeconds
		}
	}
	if !lastApplied.IsZero() {
		metrics = append(metrics, emfMetric{"SecondsSinceLastApply", "Seconds"})
		doc["SecondsSinceLastApply"] = max(now.Sub(lastApplied).Seconds(), 0)
	}
	doc["_aws"] = emfMeta{
		Timestamp: now.UnixMilli(),
		CloudWatchMetrics: []emfDirective{{
			Namespace:  Namespace,
			Dimensions: [][]string{{"Dataset"}},
			Metrics:    metrics,
		}},
	}
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(doc); err != nil {
		return nil, fmt.Errorf("encode emf: %w", err)
	}
	return buf.Bytes(), nil
}

// RunEMF writes the periodic EMF lines every interval until ctx is done. A
// failed write is a warning: metrics never stop the loader.
func (r *Registry) RunEMF(ctx context.Context, w io.Writer, every time.Duration, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := r.WriteEMF(w, true); err != nil {
				log.WarnContext(ctx, "periodic metrics line not written", "err", err)
			}
		}
	}
}
