package snapshot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
)

// Listed is one stored snapshot in a time range.
type Listed struct {
	Key  string
	Info KeyInfo
	Size int64
}

// Ref is the reference a reader of a listed snapshot has.
func (l Listed) Ref() Ref { return Ref{Key: l.Key, Size: l.Size} }

// List calls fn for every snapshot of the datasets (empty: all) stored in st
// and fetched in [from, to), in fetch-time order (across datasets too; lots
// first at the same second, then by key).
//
// Keys sort by fetch time within a dataset, so each dataset is listed once,
// in key order, starting after the last key that can precede the range
// (store.Store's startAfter) and stopping at the first key past its end.
// What that costs grows with the snapshots in the range, never with its
// length: an empty range, even of a century, is one request per dataset on
// S3 (and a few directory reads on disk), a month of live snapshots ~9 LIST
// requests of 1,000 keys. With several datasets the listings run side by
// side and are merged; memory does not grow with the range.
func List(ctx context.Context, st store.Store, datasets []feed.Dataset, from, to time.Time, fn func(Listed) error) error {
	if len(datasets) == 0 {
		datasets = feed.Datasets
	}
	datasets = slices.Compact(slices.Sorted(slices.Values(datasets)))
	if !from.Before(to) {
		return nil
	}
	if len(datasets) == 1 {
		return listDataset(ctx, st, datasets[0], from, to, fn)
	}

	// One listing per dataset, each into its own channel; this goroutine
	// merges their heads. A stop (fn's error, ctx) cancels the listings.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	streams := make([]chan Listed, len(datasets))
	errs := make([]error, len(datasets))
	var wg sync.WaitGroup
	for i, d := range datasets {
		streams[i] = make(chan Listed, 64)
		wg.Go(func() {
			defer close(streams[i])
			errs[i] = listDataset(ctx, st, d, from, to, func(l Listed) error {
				select {
				case streams[i] <- l:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
		})
	}
	err := merge(streams, errs, fn)
	cancel()
	wg.Wait()
	return err
}

// merge calls fn for the snapshots of the streams in fetch-time order. A
// stream's error (set before it closes) ends the merge: what follows in the
// other streams might belong after what the failed one did not list.
func merge(streams []chan Listed, errs []error, fn func(Listed) error) error {
	heads := make([]*Listed, len(streams))
	next := func(i int) error {
		l, ok := <-streams[i]
		if !ok {
			heads[i] = nil
			return errs[i]
		}
		heads[i] = &l
		return nil
	}
	for i := range streams {
		if err := next(i); err != nil {
			return err
		}
	}
	for {
		first := -1
		for i, h := range heads {
			if h != nil && (first < 0 || before(*h, *heads[first])) {
				first = i
			}
		}
		if first < 0 {
			return nil
		}
		if err := fn(*heads[first]); err != nil {
			return err
		}
		if err := next(first); err != nil {
			return err
		}
	}
}

// before orders listed snapshots: fetch time, then lots first at the same
// second (so availability's quality sees them), then key.
func before(a, b Listed) bool {
	if !a.Info.FetchedAt.Equal(b.Info.FetchedAt) {
		return a.Info.FetchedAt.Before(b.Info.FetchedAt)
	}
	if a.Info.Dataset != b.Info.Dataset {
		return a.Info.Dataset == feed.Lots
	}
	return a.Key < b.Key
}

// errPastEnd stops a listing at the first key past the range.
var errPastEnd = errors.New("past the end of the range")

// listDataset lists d's snapshots fetched in [from, to) in key order.
func listDataset(ctx context.Context, st store.Store, d feed.Dataset, from, to time.Time, fn func(Listed) error) error {
	prefix := string(d) + "/"
	err := st.List(ctx, prefix, RangeStart(d, from), func(o store.Object) error {
		info, err := ParseKey(o.Key)
		if err != nil {
			return nil // Not a snapshot: stores list only snapshots, but be safe.
		}
		if !info.FetchedAt.Before(to) {
			return errPastEnd
		}
		if info.FetchedAt.Before(from) {
			return nil // In from's second but before its fraction.
		}
		return fn(Listed{Key: o.Key, Info: info, Size: o.Size})
	})
	if errors.Is(err, errPastEnd) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list %s from %s in %s: %w", prefix, from.UTC().Format(time.RFC3339), st, err)
	}
	return nil
}

// RangeStart is the startAfter of a listing of d from t: it sorts after
// every key of d fetched before t's second and before every key from it on
// (a key goes on with "-<hash>" after the time).
func RangeStart(d feed.Dataset, t time.Time) string {
	t = t.UTC().Truncate(time.Second)
	return DayPrefix(d, t) + "/" + t.Format("20060102T150405Z")
}
