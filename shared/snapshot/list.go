package snapshot

import (
	"context"
	"fmt"
	"sort"
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
// first at the same second). It lists one UTC day prefix at a time, so its
// memory does not grow with the range.
func List(ctx context.Context, st store.Store, datasets []feed.Dataset, from, to time.Time, fn func(Listed) error) error {
	for _, day := range Days(from, to) {
		ls, err := ListDay(ctx, st, datasets, day, from, to)
		if err != nil {
			return err
		}
		for _, l := range ls {
			if err := fn(l); err != nil {
				return err
			}
		}
	}
	return nil
}

// Days returns the UTC days that [from, to) touches: keys are grouped by UTC day.
func Days(from, to time.Time) []time.Time {
	var out []time.Time
	d := time.Date(from.UTC().Year(), from.UTC().Month(), from.UTC().Day(), 0, 0, 0, 0, time.UTC)
	for d.Before(to) {
		out = append(out, d)
		d = d.AddDate(0, 0, 1)
	}
	return out
}

// ListDay returns the snapshots of the datasets (empty: all) fetched on day
// and inside [from, to), in fetch-time order (then lots first, then key).
func ListDay(ctx context.Context, st store.Store, datasets []feed.Dataset, day, from, to time.Time) ([]Listed, error) {
	if len(datasets) == 0 {
		datasets = feed.Datasets
	}
	var out []Listed
	for _, d := range datasets {
		prefix := DayPrefix(d, day) + "/"
		err := st.List(ctx, prefix, "", func(o store.Object) error {
			info, err := ParseKey(o.Key)
			if err != nil {
				return nil // Not a snapshot: stores list only snapshots, but be safe.
			}
			if info.FetchedAt.Before(from) || !info.FetchedAt.Before(to) {
				return nil
			}
			out = append(out, Listed{Key: o.Key, Info: info, Size: o.Size})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list %s in %s: %w", prefix, st, err)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, c := out[i], out[j]
		if !a.Info.FetchedAt.Equal(c.Info.FetchedAt) {
			return a.Info.FetchedAt.Before(c.Info.FetchedAt)
		}
		// Lots first at the same second, so availability's quality sees them.
		if a.Info.Dataset != c.Info.Dataset {
			return a.Info.Dataset == feed.Lots
		}
		return a.Key < c.Key
	})
	return out, nil
}
