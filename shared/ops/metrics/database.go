package metrics

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// This file holds the database's health: whether applies fail because the
// database itself fails (its disk full, an I/O error, the file read-only or
// damaged). The consume loop then holds its batch and receives nothing, and
// /readyz answers 503; these metrics are what an alarm can watch.

// databaseHealth follows consume.DatabaseFailing and DatabaseRecovered.
type databaseHealth struct {
	failing bool
	// failedSinceEMF: the database failed at some time since the last EMF
	// line, even if it has recovered since: a failure shorter than the line's
	// interval is still reported once.
	failedSinceEMF bool
}

func (h *databaseHealth) fail() { h.failing, h.failedSinceEMF = true, true }

func (h *databaseHealth) recover() { h.failing = false }

func (h *databaseHealth) writePrometheus(b *strings.Builder) {
	header(b, "parking_database_failing", "gauge", "1 while the database fails (disk full, I/O error, read-only, damaged): the loader holds its batch, receives nothing and is not ready; else 0.")
	fmt.Fprintf(b, "parking_database_failing %d\n", b2i(h.failing))
}

// DatabaseFailingMetric is the EMF metric of the database's health: 1 when
// the database failed at any time since the previous line, else 0. The line
// has no dimension (one database per loader).
const DatabaseFailingMetric = "DatabaseFailing"

// databaseEMF is the database's EMF line, written with every periodic line.
// The caller holds r.mu.
func (r *Registry) databaseEMF(now time.Time) ([]byte, error) {
	h := &r.database
	doc := map[string]any{
		DatabaseFailingMetric: b2i(h.failedSinceEMF || h.failing),
		"_aws": emfMeta{
			Timestamp: now.UnixMilli(),
			CloudWatchMetrics: []emfDirective{{Namespace: Namespace, Dimensions: [][]string{{}},
				Metrics: []emfMetric{{DatabaseFailingMetric, "Count"}}}},
		},
	}
	h.failedSinceEMF = false
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(doc); err != nil {
		return nil, fmt.Errorf("encode emf: %w", err)
	}
	return buf.Bytes(), nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
