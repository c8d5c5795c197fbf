package snapshot_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store/filestore"
)

var fetchedAt = time.Date(2026, 11, 26, 10, 0, 0, 123e6, time.UTC)

func snap(d feed.Dataset, at time.Time, body string) *snapshot.Snapshot {
	return &snapshot.Snapshot{Format: snapshot.FormatName, Version: snapshot.Version, Dataset: d, Source: feed.JSON,
		FetchedAt: at, Origin: "test",
		Responses: []snapshot.Response{{Method: http.MethodGet, URL: "https://data.ntpc.gov.tw/x", Status: 200, Body: []byte(body)}}}
}

const (
	availabilityBody = `[{"ID":"010056","AVAILABLECAR":"12"},{"ID":"010057","AVAILABLECAR":"-9"}]`
	lotsBody         = `[{"ID":"010056","AREA":"板橋區","NAME":"A","TYPE":"1","SUMMARY":"","ADDRESS":"x","TEL":"","PAYEX":"","SERVICETIME":"","TW97X":"295000","TW97Y":"2770000","TOTALCAR":"10","TOTALMOTOR":"0"}]`
)

// stored is one snapshot put into a store under a key of the test's choosing.
type stored struct {
	key  string
	sum  string
	size int64
	at   time.Time
}

// put encodes s and stores it under key, or under its own key when key is empty.
func put(t *testing.T, st store.Store, s *snapshot.Snapshot, key string) stored {
	t.Helper()
	data, sum, err := snapshot.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	if key == "" {
		key = snapshot.Key(s.Dataset, s.FetchedAt, sum)
	}
	if _, err := st.Put(context.Background(), key, data, store.Meta{}); err != nil {
		t.Fatal(err)
	}
	return stored{key: key, sum: sum, size: int64(len(data)), at: s.FetchedAt}
}

func (s stored) message(st store.Store) snapshot.Ref {
	return snapshot.Ref{Location: st.Locate(s.key), Dataset: feed.Availability, Size: s.size, SHA256: s.sum, FetchedAt: s.at}
}

func openStore(t *testing.T) *filestore.Store {
	t.Helper()
	st, err := filestore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestReadFromAListingAndFromAMessage(t *testing.T) {
	st := openStore(t)
	good := put(t, st, snap(feed.Availability, fetchedAt, availabilityBody), "")
	var fetched []int
	opts := snapshot.ReadOptions{AllowMassDelete: true, Fetched: func(n int, _ time.Duration, err error) {
		if err != nil {
			t.Errorf("Fetched told of %v", err)
		}
		fetched = append(fetched, n)
	}}
	for name, ref := range map[string]snapshot.Ref{
		"listing": {Key: good.key, Size: good.size},
		"key":     {Key: good.key},
		"message": good.message(st),
	} {
		in, err := snapshot.Read(context.Background(), st, ref, opts)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if in.Key != good.key || in.SHA256 != good.sum || in.Size != good.size || in.Dataset != feed.Availability ||
			!in.FetchedAt.Equal(fetchedAt) || len(in.Availability) != 2 || in.Lots != nil || !in.AllowMassDelete {
			t.Errorf("%s: input %+v", name, in)
		}
	}
	if len(fetched) != 3 || fetched[0] != int(good.size) {
		t.Errorf("Fetched saw %v, want three reads of %d bytes", fetched, good.size)
	}
}

// Every way a snapshot can fail to be what its key or message says is
// refused, and refused as permanent; what may heal is not.
func TestReadRefuses(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	good := put(t, st, snap(feed.Availability, fetchedAt, availabilityBody), "")
	goodData, _, err := st.Get(ctx, st.Locate(good.key), 1<<20)
	if err != nil {
		t.Fatal(err)
	}

	// A real snapshot under a key whose time is an hour off: its hash prefix is right.
	other := snap(feed.Availability, fetchedAt, availabilityBody)
	_, otherSum, _ := snapshot.Encode(other)
	wrongTime := put(t, st, other, snapshot.Key(feed.Availability, fetchedAt.Add(time.Hour), otherSum))
	// A real snapshot under a key whose hash prefix is another object's.
	wrongHash := put(t, st, snap(feed.Availability, fetchedAt.Add(time.Minute), availabilityBody),
		snapshot.Key(feed.Availability, fetchedAt.Add(time.Minute), strings.Repeat("0", 64)))
	// Availability stored under a lots key (right time, right hash).
	avail := snap(feed.Availability, fetchedAt.Add(2*time.Minute), availabilityBody)
	_, availSum, _ := snapshot.Encode(avail)
	wrongDataset := put(t, st, avail, snapshot.Key(feed.Lots, avail.FetchedAt, availSum))
	// A lots snapshot whose body is not lots at all.
	unparseable := put(t, st, snap(feed.Lots, fetchedAt.Add(3*time.Minute), `<html>Request Rejected</html>`), "")
	// Bytes that are not a snapshot, under a key that matches their checksum.
	garbage := []byte("not gzip at all")
	garbageKey := snapshot.Key(feed.Availability, fetchedAt.Add(4*time.Minute), sha(garbage))
	if _, err := st.Put(ctx, garbageKey, garbage, store.Meta{}); err != nil {
		t.Fatal(err)
	}

	msg := good.message(st)
	with := func(f func(*snapshot.Ref)) snapshot.Ref { r := msg; f(&r); return r }
	cases := []struct {
		name      string
		ref       snapshot.Ref
		max       int64
		want      []string
		permanent bool
		is        error
	}{
		{"key time is not the fetch time", snapshot.Ref{Key: wrongTime.key, Size: wrongTime.size},
			0, []string{"fetched at 2026-11-26T10:00:00.123Z", "the key says 2026-11-26T11:00:00Z"}, true, snapshot.ErrInvalid},
		{"key hash is not the checksum", snapshot.Ref{Key: wrongHash.key, Size: wrongHash.size},
			0, []string{"does not match the key"}, true, store.ErrChecksum},
		{"key dataset is not the snapshot's", snapshot.Ref{Key: wrongDataset.key},
			0, []string{"holds availability, the key says lots"}, true, snapshot.ErrInvalid},
		{"rows do not parse", snapshot.Ref{Key: unparseable.key},
			0, []string{"unparseable"}, true, snapshot.ErrInvalid},
		{"not a snapshot", snapshot.Ref{Key: garbageKey},
			0, []string{"not gzip"}, true, snapshot.ErrCorrupt},
		{"listed size differs", snapshot.Ref{Key: good.key, Size: good.size + 1},
			0, []string{"checksum mismatch", "expected"}, true, store.ErrChecksum},
		{"larger than allowed", snapshot.Ref{Key: good.key, Size: good.size},
			good.size - 1, []string{"object too large"}, true, store.ErrTooLarge},
		{"larger than allowed, size unknown", snapshot.Ref{Key: good.key},
			good.size - 1, []string{"object too large"}, true, store.ErrTooLarge},
		{"not a key", snapshot.Ref{Key: "lots/x.json.gz"},
			0, []string{"outside"}, true, store.ErrOutside},
		{"key and location disagree", snapshot.Ref{Key: wrongHash.key, Location: st.Locate(good.key)},
			0, []string{"not " + wrongHash.key}, true, store.ErrOutside},
		{"message: another dataset", with(func(r *snapshot.Ref) { r.Dataset = feed.Lots }),
			0, []string{"message says dataset lots but key"}, true, snapshot.ErrInvalid},
		{"message: another checksum than the key's", with(func(r *snapshot.Ref) { r.SHA256 = strings.Repeat("a", 64) }),
			0, []string{"checksum mismatch: message says sha256 aaaa", "but key"}, true, store.ErrChecksum},
		{"message: another checksum with the key's prefix", with(func(r *snapshot.Ref) { r.SHA256 = good.sum[:16] + strings.Repeat("a", 48) }),
			0, []string{"checksum mismatch", "message says " + good.sum[:16]}, true, store.ErrChecksum},
		{"message: another size", with(func(r *snapshot.Ref) { r.Size++ }),
			0, []string{"checksum mismatch"}, true, store.ErrChecksum},
		{"message: another second than the key's", with(func(r *snapshot.Ref) { r.FetchedAt = r.FetchedAt.Add(-time.Hour) }),
			0, []string{"message says 2026-11-26T09:00:00.123Z"}, true, snapshot.ErrInvalid},
		{"message: the key's second, not the snapshot's time", with(func(r *snapshot.Ref) { r.FetchedAt = r.FetchedAt.Add(time.Millisecond) }),
			0, []string{"was fetched at 2026-11-26T10:00:00.123Z, message says 2026-11-26T10:00:00.124Z"}, true, snapshot.ErrInvalid},
		{"message: another bucket", with(func(r *snapshot.Ref) { r.Location.Bucket = "elsewhere" }),
			0, []string{"outside"}, true, store.ErrOutside},
		{"missing: may yet appear", snapshot.Ref{Key: snapshot.Key(feed.Availability, fetchedAt.Add(time.Hour*5), good.sum)},
			0, []string{"not found"}, false, store.ErrNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in, err := snapshot.Read(ctx, st, c.ref, snapshot.ReadOptions{MaxObjectBytes: c.max})
			if err == nil {
				t.Fatalf("read %+v", in)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if !errors.Is(err, c.is) {
				t.Errorf("error %q is not %v", err, c.is)
			}
			if got := snapshot.IsPermanent(err); got != c.permanent {
				t.Errorf("IsPermanent(%q) = %v, want %v", err, got, c.permanent)
			}
		})
	}
	// The good object was never touched by the refusals.
	if again, _, _ := st.Get(ctx, st.Locate(good.key), 1<<20); string(again) != string(goodData) {
		t.Fatal("the stored object changed")
	}
}

// Check refuses a forged message before anything is read.
func TestCheckReadsNothing(t *testing.T) {
	st := &countingStore{Store: openStore(t)}
	good := put(t, st.Store, snap(feed.Availability, fetchedAt, availabilityBody), "")
	ref := good.message(st)
	ref.FetchedAt = ref.FetchedAt.Add(time.Hour)
	if _, _, err := ref.Check(st); err == nil || !snapshot.IsPermanent(err) {
		t.Fatalf("check: %v", err)
	}
	if _, err := snapshot.Read(context.Background(), st, ref, snapshot.ReadOptions{}); err == nil {
		t.Fatal("read a forged reference")
	}
	if st.gets != 0 {
		t.Fatalf("%d gets for a reference that contradicts its key", st.gets)
	}
	checked, info, err := good.message(st).Check(st)
	if err != nil || checked.Key != good.key || info.Dataset != feed.Availability {
		t.Fatalf("check of the good message: %+v, %+v, %v", checked, info, err)
	}
}

type countingStore struct {
	store.Store
	gets int
}

func (c *countingStore) Get(ctx context.Context, loc store.Location, max int64) ([]byte, time.Time, error) {
	c.gets++
	return c.Store.Get(ctx, loc, max)
}

func TestListOrdersByFetchTimeAcrossDatasetsAndDays(t *testing.T) {
	st := openStore(t)
	day := time.Date(2026, 11, 26, 23, 59, 59, 0, time.UTC)
	a1 := put(t, st, snap(feed.Availability, day, availabilityBody), "")
	l1 := put(t, st, snap(feed.Lots, day, lotsBody), "")
	a2 := put(t, st, snap(feed.Availability, day.Add(time.Second), availabilityBody), "")
	put(t, st, snap(feed.Availability, day.Add(-time.Hour), availabilityBody), "") // before the range
	put(t, st, snap(feed.Availability, day.Add(time.Hour), availabilityBody), "")  // at its end: excluded

	var got []string
	err := snapshot.List(context.Background(), st, nil, day.Add(-time.Minute), day.Add(time.Hour), func(l snapshot.Listed) error {
		if l.Size <= 0 || l.Info.SHAPrefix == "" {
			t.Errorf("listed %+v", l)
		}
		got = append(got, l.Key)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{l1.key, a1.key, a2.key}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("listed\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	got = nil
	err = snapshot.List(context.Background(), st, []feed.Dataset{feed.Lots}, day.Add(-time.Minute), day.Add(time.Hour), func(l snapshot.Listed) error {
		got = append(got, l.Key)
		return nil
	})
	if err != nil || len(got) != 1 || got[0] != l1.key {
		t.Fatalf("lots only: %v, %v", got, err)
	}
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
