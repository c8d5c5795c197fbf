package snapshot

import (
	"bytes"
	"compress/gzip"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
)

// fuzzSeed is a real encoding: what the extractor stores.
func fuzzSeed(t testing.TB) []byte {
	at := time.Date(2026, 9, 20, 2, 0, 0, 0, time.UTC)
	s := &Snapshot{
		Format: FormatName, Version: Version, Dataset: feed.Availability, Source: feed.JSON, FetchedAt: at, Origin: "extractor",
		Responses: []Response{{Method: http.MethodGet, URL: "https://data.ntpc.gov.tw/api/datasets/x/json?page=0&size=1000",
			Status: 200, Header: http.Header{"Content-Type": {"application/json"}}, RequestedAt: at, ReceivedAt: at,
			Body: []byte(`[{"ID":"010056","AVAILABLECAR":"-9"},{"ID":"010057","AVAILABLECAR":"12"}]`)}},
	}
	data, _, err := Encode(s)
	if err != nil {
		t.Fatalf("encode the seed: %v", err)
	}
	return data
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// FuzzDecodeSnapshot: Decode never panics, every error wraps ErrCorrupt, and
// whatever it accepts passes Validate and encodes again.
//
// Seeds: a real encoding, hand-made hostile documents and the object cases
// of the reliability corpus. Run longer with
//
//	go test ./shared/snapshot/ -run '^$' -fuzz FuzzDecodeSnapshot -fuzztime 5m
func FuzzDecodeSnapshot(f *testing.F) {
	seed := fuzzSeed(f)
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	f.Add(append(append([]byte{}, seed...), seed...)) // a second gzip member
	f.Add([]byte{})
	f.Add([]byte("not gzip"))
	for _, doc := range []string{
		`{}`, `null`, `[]`, `{"format":"parking-newtaipei/snapshot","version":1}`,
		`{"format":"parking-newtaipei/snapshot","version":2,"dataset":"lots","source_format":"json","fetched_at":"2026-01-01T00:00:00Z","responses":[{}]}`,
		`{"format":"parking-newtaipei/snapshot","version":1,"dataset":"lots","source_format":"json","fetched_at":"0001-01-01T00:00:00Z","responses":[{}]}`,
		`{"format":"parking-newtaipei/snapshot","version":1,"dataset":"parking","source_format":"json","fetched_at":"2026-01-01T00:00:00Z","responses":[{}]}`,
		`{"format":"parking-newtaipei/snapshot","version":1,"dataset":"lots","source_format":"xml","fetched_at":"2026-01-01T00:00:00Z","responses":[{}]}`,
		`{"format":"parking-newtaipei/snapshot","version":1,"dataset":"lots","source_format":"json","fetched_at":"2026-01-01T00:00:00Z","responses":[]}`,
		`{"format":"parking-newtaipei/snapshot","version":1,"dataset":"lots","source_format":"json","fetched_at":"2026-01-01T00:00:00Z","responses":[{"body":"!!"}]}`,
		`{"format":"parking-newtaipei/snapshot","version":1,"dataset":"lots","source_format":"json","fetched_at":"2026-01-01T00:00:00Z","responses":[{}]} {}`,
	} {
		f.Add(gz([]byte(doc)))
	}
	// The reliability corpus's hostile objects (small ones: the fuzzer
	// mutates every seed).
	objects, _ := filepath.Glob("../../reliability/testdata/hostile/object-*")
	for _, name := range objects {
		if b, err := os.ReadFile(name); err == nil && len(b) < 4096 {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			if s != nil {
				t.Fatalf("a snapshot returned with the error %v", err)
			}
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("Decode accepted a snapshot Validate refuses: %v", err)
		}
		again, _, err := Encode(s)
		if err != nil {
			t.Fatalf("an accepted snapshot does not encode: %v", err)
		}
		if _, err := Decode(again); err != nil {
			t.Fatalf("an accepted snapshot does not survive encode and decode: %v", err)
		}
	})
}
