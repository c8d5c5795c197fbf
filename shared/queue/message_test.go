package queue

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func valid() Message {
	return Message{Version: MessageVersion, Dataset: "lots", Key: "lots/2026/11/26/20261126T100000Z-0123456789abcdef.json.gz",
		SHA256: strings.Repeat("0a", 32), Size: 1234, FetchedAt: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC), Rows: 1400}
}

func TestRoundTrip(t *testing.T) {
	body, err := EncodeMessage(valid())
	if err != nil {
		t.Fatal(err)
	}
	m, err := DecodeMessage(body)
	if err != nil {
		t.Fatal(err)
	}
	if m != valid() {
		t.Fatalf("round trip: %+v", m)
	}
}

func TestDecodeIsStrict(t *testing.T) {
	cases := map[string]struct{ body, want string }{
		"not json":       {`hello`, "not a JSON object"},
		"future":         {`{"version":2,"dataset":"lots"}`, "version 2 is newer"},
		"no version":     {`{"dataset":"lots"}`, "not a positive integer"},
		"unknown field":  {`{"version":1,"dataset":"lots","key":"k","sha256":"` + strings.Repeat("0a", 32) + `","size":1,"fetched_at":"2026-11-26T10:00:00Z","extra":1}`, "unknown field"},
		"bad dataset":    {`{"version":1,"dataset":"bikes","key":"k","sha256":"` + strings.Repeat("0a", 32) + `","size":1,"fetched_at":"2026-11-26T10:00:00Z"}`, "unknown dataset"},
		"short sha":      {`{"version":1,"dataset":"lots","key":"k","sha256":"abc","size":1,"fetched_at":"2026-11-26T10:00:00Z"}`, "64 hex"},
		"not hex":        {`{"version":1,"dataset":"lots","key":"k","sha256":"` + strings.Repeat("zz", 32) + `","size":1,"fetched_at":"2026-11-26T10:00:00Z"}`, "not hex"},
		"huge size":      {`{"version":1,"dataset":"lots","key":"k","sha256":"` + strings.Repeat("0a", 32) + `","size":99999999999,"fetched_at":"2026-11-26T10:00:00Z"}`, "outside"},
		"no time":        {`{"version":1,"dataset":"lots","key":"k","sha256":"` + strings.Repeat("0a", 32) + `","size":1}`, "fetched_at"},
		"trailing":       {`{"version":1,"dataset":"lots","key":"k","sha256":"` + strings.Repeat("0a", 32) + `","size":1,"fetched_at":"2026-11-26T10:00:00Z"} {}`, "after top-level value"},
		"oversized body": {`{"version":1,"key":"` + strings.Repeat("x", MaxMessageBytes) + `"}`, "bytes, more than"},
	}
	for name, c := range cases {
		_, err := DecodeMessage([]byte(c.body))
		if err == nil || !errors.Is(err, ErrInvalidMessage) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want ErrInvalidMessage mentioning %q", name, err, c.want)
		}
	}
}
