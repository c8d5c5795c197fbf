// Package extract holds the extractor's side of the pipeline: the feed client
// (client.go), the job that fetches one dataset, stores the raw snapshot and
// enqueues one message pointing at it (extract.go), and the import of the
// original project's saved responses as snapshots (responses.go). It never
// touches the database.
package extract

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
)

// ErrUnchanged says a lots fetch equals the last stored one, stored less
// than UnchangedWindow before: nothing was stored or enqueued (the extractor
// exits 2, like the original's skip).
var ErrUnchanged = errors.New("lots unchanged since the last stored snapshot")

// ErrShape says a feed answered rows without the columns of its dataset
// (see feed.RequiredLotColumns): nothing was stored.
var ErrShape = errors.New("not the dataset's columns")

// UnchangedWindow is how long after the last stored lots snapshot an
// identical fetch is skipped. The skip cannot know whether that snapshot
// became data: the loader may have refused it (a guard), dead-lettered it,
// or never received its message. Were the skip unbounded, the daily fetch
// would never store the same list again, so a refused removal of many lots
// would be judged once and then never again, silently. Under a day, every
// daily fetch stores (and the loader judges it, and refuses it again, with
// its alarm, while the feed still says so), while a manual rerun, a retry
// or loader local's start-up fetch within hours is skipped as the original
// skipped it. The cost is one lots object a day (~100-300 KB) that the
// loader records as applied with nothing changed.
const UnchangedWindow = 12 * time.Hour

// Fetcher fetches one dataset as a snapshot and the rows its responses hold
// (Client implements it).
type Fetcher interface {
	Fetch(ctx context.Context, d feed.Dataset, f feed.Format) (*snapshot.Snapshot, Rows, error)
}

// Rows are the rows of one fetch, parsed once by the fetcher: lots or
// availability, the other nil.
type Rows struct {
	Lots         []feed.LotRow
	Availability []feed.AvailabilityRow
}

// Len is the number of rows.
func (r Rows) Len() int { return len(r.Lots) + len(r.Availability) }

// Job wires a fetcher to a store and a queue.
type Job struct {
	Fetcher Fetcher
	Store   store.Store
	Queue   queue.Queue
	Logger  *slog.Logger
}

// Request is what one run does.
type Request struct {
	Dataset feed.Dataset
	Format  feed.Format
	// Force stores and enqueues a lots fetch even when it is unchanged.
	Force bool
	// DryRun fetches and validates but writes nothing.
	DryRun bool
}

// Result says what a run did.
type Result struct {
	Dataset     feed.Dataset `json:"dataset"`
	Key         string       `json:"key"`
	Location    string       `json:"location,omitempty"`
	SHA256      string       `json:"sha256"`
	Size        int64        `json:"size"`
	Rows        int          `json:"rows"`
	Responses   int          `json:"responses"`
	FetchedAt   time.Time    `json:"fetched_at"`
	ContentHash string       `json:"content_hash,omitempty"`
	Stored      bool         `json:"stored"`
	Enqueued    bool         `json:"enqueued"`
}

// lotsState is the store's record of the last stored lots snapshot, read to
// skip an unchanged fetch.
type lotsState struct {
	ContentHash string    `json:"content_hash"`
	Key         string    `json:"key"`
	FetchedAt   time.Time `json:"fetched_at"`
}

const lotsStateName = "lots-content"

// Run fetches, stores and enqueues. With a lots fetch equal to the last
// stored one (and no Force) it returns the result with ErrUnchanged.
func (j *Job) Run(ctx context.Context, req Request) (Result, error) {
	log := j.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	snap, rows, err := j.Fetcher.Fetch(ctx, req.Dataset, req.Format)
	if err != nil {
		return Result{Dataset: req.Dataset}, err
	}
	res, data, err := Prepare(snap, rows.Len())
	if err != nil {
		return res, err
	}
	if err := checkShape(snap, rows); err != nil {
		return res, err
	}
	if req.Dataset == feed.Lots {
		res.ContentHash = feed.LotsContentHash(rows.Lots)
		if !req.Force {
			prev, err := j.lastLots(ctx)
			if err != nil {
				return res, err
			}
			if prev != nil && prev.ContentHash == res.ContentHash {
				age := res.FetchedAt.Sub(prev.FetchedAt)
				if age >= 0 && age < UnchangedWindow {
					log.Info("lots unchanged; nothing stored", "content_hash", res.ContentHash, "last_key", prev.Key, "rows", rows.Len(),
						"last_stored_ago", age.Round(time.Second).String())
					return res, ErrUnchanged
				}
				log.Info("lots unchanged, but the last stored snapshot is older than the skip window; storing again",
					"last_key", prev.Key, "last_stored_ago", age.Round(time.Second).String(), "window", UnchangedWindow.String())
			}
		}
	}
	if req.DryRun {
		return res, nil
	}
	if err := j.Publish(ctx, &res, data, snap); err != nil {
		return res, err
	}
	if req.Dataset == feed.Lots {
		st, _ := json.Marshal(lotsState{ContentHash: res.ContentHash, Key: res.Key, FetchedAt: res.FetchedAt})
		if err := j.Store.WriteState(ctx, lotsStateName, st); err != nil {
			// The snapshot is stored and enqueued; the only cost is that the
			// next unchanged fetch is stored again (and the loader marks it duplicate).
			log.Warn("could not record the lots content hash", "store", j.Store.String(), "err", err)
		}
	}
	return res, nil
}

// checkShape refuses rows that lack a column of their dataset in every
// row: a URL answering another dataset's rows, or rows without names or
// coordinates. Applied, they would blank every lot.
func checkShape(snap *snapshot.Snapshot, rows Rows) error {
	var missing []string
	switch snap.Dataset {
	case feed.Lots:
		missing = feed.MissingLotColumns(rows.Lots)
	case feed.Availability:
		missing = feed.MissingAvailabilityColumns(rows.Availability)
	}
	if len(missing) == 0 {
		return nil
	}
	url := ""
	if len(snap.Responses) > 0 {
		url = snap.Responses[0].URL
	}
	return fmt.Errorf("%s feed %s (%d responses, %d rows): %w: no row has a value for %s; nothing stored",
		snap.Dataset, url, len(snap.Responses), rows.Len(), ErrShape, strings.Join(missing, ", "))
}

// Prepare encodes a fetched snapshot and describes it.
func Prepare(snap *snapshot.Snapshot, rows int) (Result, []byte, error) {
	res := Result{Dataset: snap.Dataset, Rows: rows, Responses: len(snap.Responses), FetchedAt: snap.FetchedAt}
	data, sum, err := snapshot.Encode(snap)
	if err != nil {
		return res, nil, fmt.Errorf("encode %s snapshot: %w", snap.Dataset, err)
	}
	res.SHA256, res.Size = sum, int64(len(data))
	res.Key = snapshot.Key(snap.Dataset, snap.FetchedAt, sum)
	return res, data, nil
}

// Publish stores an encoded snapshot, then enqueues its message. A put that
// finds the same object already stored (a retried run) counts as stored.
func (j *Job) Publish(ctx context.Context, res *Result, data []byte, snap *snapshot.Snapshot) error {
	loc, err := j.Store.Put(ctx, res.Key, data, store.Meta{
		Dataset: string(res.Dataset), FetchedAt: res.FetchedAt, SHA256: res.SHA256, FormatVersion: snap.Version,
	})
	if err != nil {
		return fmt.Errorf("store %s: %w", res.Key, err)
	}
	res.Stored, res.Location = true, loc.String()
	body, err := queue.EncodeMessage(Message(*res, loc))
	if err != nil {
		return fmt.Errorf("message for %s: %w", res.Key, err)
	}
	if err := j.Queue.Send(ctx, body); err != nil {
		return fmt.Errorf("enqueue %s on %s: %w", res.Key, j.Queue.String(), err)
	}
	res.Enqueued = true
	return nil
}

// Message is the queue message announcing a stored snapshot.
func Message(res Result, loc store.Location) queue.Message {
	return queue.Message{
		Version: queue.MessageVersion, Dataset: res.Dataset, Bucket: loc.Bucket, Key: loc.Key,
		SHA256: res.SHA256, Size: res.Size, FetchedAt: res.FetchedAt, Rows: res.Rows,
	}
}

func (j *Job) lastLots(ctx context.Context) (*lotsState, error) {
	b, err := j.Store.ReadState(ctx, lotsStateName)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the last lots content hash from %s: %w", j.Store.String(), err)
	}
	var st lotsState
	if err := json.Unmarshal(b, &st); err != nil {
		// A damaged state document must not stop fetching: treat it as absent.
		return nil, nil
	}
	return &st, nil
}
