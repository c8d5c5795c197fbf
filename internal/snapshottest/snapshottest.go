// Package snapshottest builds stores full of realistic snapshots, for the
// tests and the benchmark of backfill, replay and the migration commands
// (internal/dbtest compares the databases they produce).
package snapshottest

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/parking-newtaipei/parking-newtaipei/internal/feedtest"
	"github.com/parking-newtaipei/parking-newtaipei/shared/extract"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
)

// Snapshot builds a snapshot of d fetched at t whose responses are the JSON
// endpoint's pages of rows (lots or availability), as the extractor stores them.
func Snapshot(d feed.Dataset, t time.Time, pages [][]byte) *snapshot.Snapshot {
	s := &snapshot.Snapshot{
		Format: snapshot.FormatName, Version: snapshot.Version, Dataset: d, Source: feed.JSON,
		FetchedAt: t.UTC(), Origin: "extractor",
	}
	for i, body := range pages {
		s.Responses = append(s.Responses, snapshot.Response{
			Method:      http.MethodGet,
			URL:         fmt.Sprintf("https://data.ntpc.gov.tw/api/datasets/%s/json?page=%d&size=1000", d.UUID(), i),
			Status:      http.StatusOK,
			Header:      http.Header{"Content-Type": {"application/json"}},
			RequestedAt: t.UTC(),
			ReceivedAt:  t.UTC().Add(200 * time.Millisecond),
			Body:        body,
		})
	}
	return s
}

// Availability is a realistic availability snapshot at t (seeded by t).
func Availability(t time.Time) *snapshot.Snapshot {
	return AvailabilityOf(t, 0)
}

// AvailabilityOf is Availability with only the first lots rows of the feed
// (0: all of them), for a feed of another size.
func AvailabilityOf(t time.Time, lots int) *snapshot.Snapshot {
	rows := feedtest.SampleAvailability(uint64(t.Unix()))
	if lots > 0 && lots < len(rows) {
		rows = rows[:lots]
	}
	return Snapshot(feed.Availability, t, feedtest.AvailabilityJSONPages(rows, feedtest.PageCap))
}

// Lots is a lots snapshot at t of rows.
func Lots(t time.Time, rows []feed.LotRow) *snapshot.Snapshot {
	return Snapshot(feed.Lots, t, feedtest.LotsJSONPages(rows, feedtest.PageCap))
}

// Put encodes and stores s; it returns what the extractor's job would.
func Put(ctx context.Context, st store.Store, s *snapshot.Snapshot) (extract.Result, store.Location, error) {
	rows := 0
	switch s.Dataset {
	case feed.Lots:
		r, err := s.Lots()
		if err != nil {
			return extract.Result{}, store.Location{}, err
		}
		rows = len(r)
	case feed.Availability:
		r, err := s.Availability()
		if err != nil {
			return extract.Result{}, store.Location{}, err
		}
		rows = len(r)
	}
	res, data, err := extract.Prepare(s, rows)
	if err != nil {
		return res, store.Location{}, err
	}
	loc, err := st.Put(ctx, res.Key, data, store.Meta{
		Dataset: string(res.Dataset), FetchedAt: res.FetchedAt, SHA256: res.SHA256, FormatVersion: s.Version,
	})
	if err != nil {
		return res, loc, fmt.Errorf("put %s: %w", res.Key, err)
	}
	res.Stored, res.Location = true, loc.String()
	return res, loc, nil
}

// Month fills st with n availability snapshots every interval from start, and
// a lots snapshot at start and at the middle (one lot removed, one renamed),
// building and uploading with the given concurrency. It returns the keys.
func Month(ctx context.Context, st store.Store, start time.Time, n int, interval time.Duration, concurrency int) error {
	lots := feedtest.SampleLots()
	later := append([]feed.LotRow(nil), lots[1:]...)
	later[0].Name += "(改)"
	if _, _, err := Put(ctx, st, Lots(start, lots)); err != nil {
		return err
	}
	if _, _, err := Put(ctx, st, Lots(start.Add(time.Duration(n/2)*interval+time.Second), later)); err != nil {
		return err
	}
	var g errgroup.Group
	g.SetLimit(max(concurrency, 1))
	for i := range n {
		g.Go(func() error {
			_, _, err := Put(ctx, st, Availability(start.Add(time.Duration(i)*interval)))
			return err
		})
	}
	return g.Wait()
}
