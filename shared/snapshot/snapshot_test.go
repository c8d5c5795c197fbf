package snapshot

import (
	"bytes"
	"compress/gzip"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
)

func sample() *Snapshot {
	return &Snapshot{Format: FormatName, Version: Version, Dataset: feed.Availability, Source: feed.JSON,
		FetchedAt: time.Date(2026, 11, 26, 10, 0, 0, 123e6, time.UTC), Origin: "extractor",
		Responses: []Response{{Method: "GET", URL: "https://data.ntpc.gov.tw/api/datasets/x/json?page=0&size=1000",
			Status: 200, Body: []byte("\xef\xbb\xbf[{\"ID\":\"010056\",\"AVAILABLECAR\":\"-9\"}]")}}}
}

func TestEncodeDecodeKeepsExactBytes(t *testing.T) {
	s := sample()
	data, sum, err := Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	again, sum2, _ := Encode(s)
	if sum != sum2 || !bytes.Equal(data, again) {
		t.Fatal("equal snapshots encode to different bytes")
	}
	got, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Responses[0].Body, s.Responses[0].Body) || !got.FetchedAt.Equal(s.FetchedAt) {
		t.Fatalf("round trip changed the snapshot: %+v", got)
	}
	rows, err := got.Availability()
	if err != nil || len(rows) != 1 || rows[0].AvailableCar != "-9" {
		t.Fatalf("rows = %+v, %v", rows, err)
	}
	if _, err := got.Lots(); err == nil {
		t.Error("an availability snapshot parsed as lots")
	}
}

func TestDecodeRefusesWhatItCannotTrust(t *testing.T) {
	good, _, _ := Encode(sample())
	future := sample()
	future.Version = Version + 1
	var fb bytes.Buffer
	zw := gzip.NewWriter(&fb)
	zw.Write([]byte(`{"format":"parking-newtaipei/snapshot","version":2,"dataset":"lots","source_format":"json","fetched_at":"2026-11-26T10:00:00Z","responses":[{}]}`))
	zw.Close()
	var bomb bytes.Buffer
	zw = gzip.NewWriter(&bomb)
	zw.Write(bytes.Repeat([]byte{' '}, 40<<20))
	zw.Close()

	cases := map[string]struct {
		data []byte
		want string
	}{
		"truncated":       {good[:len(good)/2], "unexpected EOF"},
		"not gzip":        {[]byte(`{"format":"x"}`), "not gzip"},
		"future version":  {fb.Bytes(), "version 2 is not supported"},
		"bomb":            {bomb.Bytes(), "decompression bomb"},
		"trailing stream": {append(append([]byte{}, good...), good...), ""},
	}
	for name, c := range cases {
		_, err := Decode(c.data)
		if name == "trailing stream" {
			// A second gzip member is not read (Multistream off): the first decodes.
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		if err == nil || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Decode error = %v, want ErrCorrupt mentioning %q", name, err, c.want)
		}
	}
}

func TestKeysSortByTimeAndParseBack(t *testing.T) {
	t1 := time.Date(2026, 11, 26, 23, 59, 59, 0, time.FixedZone("Asia/Taipei", 8*3600))
	sum := strings.Repeat("ab", 32)
	k := Key(feed.Lots, t1, sum)
	if k != "lots/2026/11/26/20261126T155959Z-abababababababab.json.gz" {
		t.Fatalf("key = %q (keys are UTC)", k)
	}
	if k2 := Key(feed.Lots, t1.Add(time.Second), sum); k2 <= k {
		t.Fatalf("later key %q does not sort after %q", k2, k)
	}
	info, err := ParseKey(k)
	if err != nil || info.Dataset != feed.Lots || !info.FetchedAt.Equal(t1) {
		t.Fatalf("ParseKey = %+v, %v", info, err)
	}
	for _, bad := range []string{"../lots/2026/11/26/20261126T155959Z-abababababababab.json.gz",
		"lots/2026/11/27/20261126T155959Z-abababababababab.json.gz", "parking/2026/11/26/20261126T155959Z-abababababababab.json.gz",
		"lots/2026/11/26/20261126T155959Z-ABABABABABABABAB.json.gz", "lots/2026/11/26/x.json.gz"} {
		if _, err := ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) accepted", bad)
		}
	}
}

// What the extractor can encode, the loader can decode: a long run of one
// character compresses ~1000x, which is no bomb at this size.
func TestEncodedRepetitiveSnapshotDecodes(t *testing.T) {
	s := sample()
	s.Responses[0].Body = bytes.Repeat([]byte("停"), 1<<20)
	data, _, err := Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	if ratio := float64(3<<20) / float64(len(data)); ratio < MaxRatio {
		t.Fatalf("test input compresses only %.0fx; it must exceed MaxRatio to test the floor", ratio)
	}
	got, err := Decode(data)
	if err != nil {
		t.Fatalf("Decode refused what Encode produced: %v", err)
	}
	if !bytes.Equal(got.Responses[0].Body, s.Responses[0].Body) {
		t.Fatal("body changed in the round trip")
	}
}
