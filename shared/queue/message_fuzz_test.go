package queue

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
)

// FuzzDecodeMessage: Decode never panics, every error wraps ErrInvalidMessage, and
// whatever it accepts passes Validate and survives Encode and Decode unchanged.
//
// Seeds: real encodings and the message cases of the reliability corpus.
// Run longer with
//
//	go test ./shared/queue/ -run '^$' -fuzz FuzzDecodeMessage -fuzztime 5m
func FuzzDecodeMessage(f *testing.F) {
	real := Message{Version: MessageVersion, Dataset: feed.Lots,
		Key:    "lots/2026/09/20/20260920T020000Z-c7b3ca618fadad84.json.gz",
		SHA256: strings.Repeat("c7b3ca618fadad84", 4), Size: 51234,
		FetchedAt: time.Date(2026, 9, 20, 2, 0, 0, 123e6, time.UTC), Rows: 1392}
	for _, m := range []Message{real, func() Message { m := real; m.Bucket, m.Key = "parking-snapshots", "prod/"+m.Key; return m }()} {
		b, err := EncodeMessage(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{"", "{}", "null", "[]", `{"version":1}`, `{"version":"1"}`, `{"version":1e309}`,
		`{"version":-1}`, `{"version":99999999999999999999}`, `{"version":1,"version":2}`, "{\"version\":1,\"key\":\"\xff\"}"} {
		f.Add([]byte(s))
	}
	templates, _ := filepath.Glob("../../reliability/testdata/hostile/message-*")
	fill := strings.NewReplacer("{{DATASET}}", "availability", "{{KEY}}", "availability/2026/09/20/20260920T022000Z-79ba71ad5948145a.json.gz",
		"{{SHA}}", strings.Repeat("79ba71ad5948145a", 4), "{{SIZE}}", "812", "{{FETCHED}}", "2026-09-20T02:20:00Z")
	for _, name := range templates {
		if b, err := os.ReadFile(name); err == nil {
			f.Add([]byte(fill.Replace(string(b))))
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := DecodeMessage(body)
		if err != nil {
			if !errors.Is(err, ErrInvalidMessage) {
				t.Fatalf("error does not wrap ErrInvalidMessage: %v", err)
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("Decode accepted a message Validate refuses: %v", err)
		}
		if len(body) > MaxMessageBytes {
			t.Fatalf("accepted %d bytes, more than MaxMessageBytes", len(body))
		}
		again, err := EncodeMessage(m)
		if err != nil {
			t.Fatalf("an accepted message does not encode: %v", err)
		}
		m2, err := DecodeMessage(again)
		if err != nil {
			t.Fatalf("an accepted message does not survive encode and decode: %v", err)
		}
		// Times compare by instant: JSON keeps the instant, not the location.
		if !m2.FetchedAt.Equal(m.FetchedAt) {
			t.Fatalf("fetched_at changed: %v -> %v", m.FetchedAt, m2.FetchedAt)
		}
		m2.FetchedAt = m.FetchedAt
		if !reflect.DeepEqual(m, m2) {
			a, _ := json.Marshal(m)
			b, _ := json.Marshal(m2)
			t.Fatalf("round trip changed the message:\n%s\n%s", a, b)
		}
	})
}
