package snapshot_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
)

// listingStore counts the listings asked of the store and the objects they
// returned, and can fail the listings of one prefix.
type listingStore struct {
	store.Store
	lists, objects atomic.Int64
	failPrefix     string
}

func (s *listingStore) List(ctx context.Context, prefix, startAfter string, fn func(store.Object) error) error {
	s.lists.Add(1)
	if s.failPrefix != "" && strings.HasPrefix(prefix, s.failPrefix) {
		return errors.New("listing refused")
	}
	return s.Store.List(ctx, prefix, startAfter, func(o store.Object) error {
		s.objects.Add(1)
		return fn(o)
	})
}

func listKeys(t *testing.T, st store.Store, datasets []feed.Dataset, from, to time.Time) []string {
	t.Helper()
	var got []string
	if err := snapshot.List(context.Background(), st, datasets, from, to, func(l snapshot.Listed) error {
		got = append(got, l.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestListCostsWhatIsStored: a range is listed once per dataset from its
// start, and stops at the first key past its end, whatever its length: an
// empty century is one listing per dataset, and a range reads no object
// beyond the first one after it.
func TestListCostsWhatIsStored(t *testing.T) {
	base := openStore(t)
	day := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	var keys []string
	for i := range 30 {
		keys = append(keys, put(t, base, snap(feed.Availability, day.Add(time.Duration(i)*time.Hour), availabilityBody), "").key)
	}
	st := &listingStore{Store: base}

	for _, r := range []struct{ from, to time.Time }{
		{time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, // before everything
		{time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)}, // after everything
	} {
		st.lists.Store(0)
		st.objects.Store(0)
		if got := listKeys(t, st, nil, r.from, r.to); len(got) != 0 {
			t.Fatalf("%s to %s: listed %v", r.from, r.to, got)
		}
		if n := st.lists.Load(); n != 2 {
			t.Errorf("%s to %s: %d listings, want one per dataset", r.from.Format("2006"), r.to.Format("2006"), n)
		}
		if n := st.objects.Load(); n > 1 {
			t.Errorf("%s to %s: %d objects read by the listing, want at most the first one past the end", r.from.Format("2006"), r.to.Format("2006"), n)
		}
	}

	// Ten hours in the middle of a decade: those, and one object past them.
	st.objects.Store(0)
	got := listKeys(t, st, []feed.Dataset{feed.Availability}, day.Add(10*time.Hour), time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC))
	if strings.Join(got, "\n") != strings.Join(keys[10:], "\n") {
		t.Fatalf("listed %d keys, want the last 20", len(got))
	}
	st.objects.Store(0)
	got = listKeys(t, st, []feed.Dataset{feed.Availability}, time.Date(2016, 1, 1, 0, 0, 0, 0, time.UTC), day.Add(10*time.Hour))
	if strings.Join(got, "\n") != strings.Join(keys[:10], "\n") {
		t.Fatalf("listed %d keys, want the first 10", len(got))
	}
	if n := st.objects.Load(); n != 11 {
		t.Errorf("%d objects read, want the 10 in the range and the one that ends it", n)
	}
	t.Logf("an empty century: 2 listings; 10 snapshots of a decade: %d objects read", st.objects.Load())
}

// TestListRangeIsHalfOpenToTheNanosecond: a key says its fetch second; one
// fetched in from's second but before from is outside, one at to is outside.
func TestListRangeIsHalfOpenToTheNanosecond(t *testing.T) {
	st := openStore(t)
	at := time.Date(2026, 11, 26, 10, 0, 5, 0, time.UTC)
	k := put(t, st, snap(feed.Availability, at.Add(400*time.Millisecond), availabilityBody), "").key
	if got := listKeys(t, st, nil, at.Add(500*time.Millisecond), at.Add(time.Hour)); len(got) != 0 {
		t.Errorf("from after the key's second: listed %v", got)
	}
	if got := listKeys(t, st, nil, at, at.Add(time.Second)); len(got) != 1 || got[0] != k {
		t.Errorf("[second, second+1): listed %v", got)
	}
	if got := listKeys(t, st, nil, at.Add(-time.Hour), at); len(got) != 0 {
		t.Errorf("to at the key's second: listed %v", got)
	}
}

// TestListStops: an error from fn, or a dataset's listing failing, stops
// the whole listing with that error (List waits for its listings to end).
func TestListStops(t *testing.T) {
	base := openStore(t)
	day := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	for i := range 200 {
		put(t, base, snap(feed.Availability, day.Add(time.Duration(i)*time.Minute), availabilityBody), "")
		if i%50 == 0 {
			put(t, base, snap(feed.Lots, day.Add(time.Duration(i)*time.Minute), lotsBody), "")
		}
	}
	stop := errors.New("enough")
	n := 0
	err := snapshot.List(context.Background(), base, nil, day, day.Add(24*time.Hour), func(snapshot.Listed) error {
		if n++; n == 5 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 5 {
		t.Fatalf("err %v after %d snapshots, want fn's error after 5", err, n)
	}
	failing := &listingStore{Store: base, failPrefix: "lots/"}
	n = 0
	err = snapshot.List(context.Background(), failing, nil, day, day.Add(24*time.Hour), func(snapshot.Listed) error { n++; return nil })
	if err == nil || !strings.Contains(err.Error(), "listing refused") || !strings.Contains(err.Error(), "lots/") {
		t.Fatalf("err = %v, want the lots listing's error", err)
	}
	if n != 0 {
		t.Errorf("%d snapshots passed on although the merge could not know their order", n)
	}
}
