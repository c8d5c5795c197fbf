// Package snapshot holds the raw-snapshot format: every response of one fetch,
// byte for byte, in one self-describing gzip-compressed JSON document.
//
// A snapshot is the source of truth. The database is derived from the set of
// snapshots applied, so the format keeps everything needed to apply it again
// years later: the dataset, the fetch time (the feeds carry no timestamp of
// their own), and each response's URL, status, headers and exact body.
package snapshot

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
)

// FormatName marks a document as a snapshot of this project.
const FormatName = "parking-newtaipei/snapshot"

// Version is the newest snapshot format version this build reads and the one it writes.
const Version = 1

// Limits that keep a hostile or broken object from exhausting memory.
const (
	// MaxObjectBytes caps a stored (compressed) snapshot. Real ones are ~50-300 KiB.
	MaxObjectBytes = 32 << 20
	// MaxDecodedBytes caps the decompressed document.
	MaxDecodedBytes = 128 << 20
	// MaxRatio caps decompressed/compressed size once the decoded document
	// passes RatioFloor: real snapshots compress ~5-15x, a gzip bomb ~1000x.
	// Below the floor any ratio is accepted, because a small document with a
	// long run of one character (seen in hostile-input tests) is no threat.
	MaxRatio   = 100
	RatioFloor = 16 << 20
)

// decodedLimit is the most bytes a stored object of the given size may
// decompress to. Encode and Decode share it, so the extractor never stores a
// snapshot that the loader would refuse to read.
func decodedLimit(compressed int) int64 {
	return min(int64(MaxDecodedBytes), max(int64(RatioFloor), int64(compressed)*MaxRatio))
}

// ErrCorrupt wraps every error that says the object can never be decoded,
// however often it is read again.
var ErrCorrupt = errors.New("corrupt snapshot")

// Snapshot is one fetch of one dataset.
type Snapshot struct {
	Format    string       `json:"format"`
	Version   int          `json:"version"`
	Dataset   feed.Dataset `json:"dataset"`
	Source    feed.Format  `json:"source_format"`
	FetchedAt time.Time    `json:"fetched_at"`
	// Origin says what produced the snapshot: "extractor" or "import-responses".
	Origin    string     `json:"origin,omitempty"`
	Responses []Response `json:"responses"`
}

// Response is one HTTP exchange of the fetch, with the body's exact bytes.
type Response struct {
	Method      string      `json:"method"`
	URL         string      `json:"url"`
	Status      int         `json:"status"`
	Header      http.Header `json:"header,omitempty"`
	RequestedAt time.Time   `json:"requested_at"`
	ReceivedAt  time.Time   `json:"received_at"`
	Body        []byte      `json:"body"`
}

// Encode returns the stored form of s (gzip of its JSON) and that form's SHA-256 in hex.
// The gzip header carries no name or time, so equal snapshots encode to equal bytes.
func Encode(s *Snapshot) ([]byte, string, error) {
	if err := s.Validate(); err != nil {
		return nil, "", err
	}
	plain, err := json.Marshal(s)
	if err != nil {
		return nil, "", fmt.Errorf("encode snapshot: %w", err)
	}
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, "", err
	}
	if _, err := zw.Write(plain); err != nil {
		return nil, "", fmt.Errorf("compress snapshot: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, "", fmt.Errorf("compress snapshot: %w", err)
	}
	if buf.Len() > MaxObjectBytes || int64(len(plain)) > decodedLimit(buf.Len()) {
		return nil, "", fmt.Errorf("snapshot of %d bytes (%d compressed) is beyond what the loader reads (%d compressed, %d decoded)",
			len(plain), buf.Len(), MaxObjectBytes, decodedLimit(buf.Len()))
	}
	sum := sha256.Sum256(buf.Bytes())
	return buf.Bytes(), hex.EncodeToString(sum[:]), nil
}

// Decode reads a stored snapshot, refusing anything larger than the limits
// above. Every error it returns wraps ErrCorrupt.
func Decode(data []byte) (*Snapshot, error) {
	if len(data) > MaxObjectBytes {
		return nil, fmt.Errorf("%w: object is %d bytes, more than the %d allowed", ErrCorrupt, len(data), MaxObjectBytes)
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: not gzip: %v", ErrCorrupt, err)
	}
	zr.Multistream(false)
	limit := decodedLimit(len(data))
	plain, err := io.ReadAll(io.LimitReader(zr, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%w: decompress: %v", ErrCorrupt, err)
	}
	if int64(len(plain)) > limit {
		return nil, fmt.Errorf("%w: decompresses to more than %d bytes from %d (a decompression bomb?)", ErrCorrupt, limit, len(data))
	}
	var s Snapshot
	dec := json.NewDecoder(bytes.NewReader(plain))
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%w: decode JSON: %v", ErrCorrupt, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the document", ErrCorrupt)
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return &s, nil
}

// Validate checks that s is a snapshot this build understands.
func (s *Snapshot) Validate() error {
	if s.Format != FormatName {
		return fmt.Errorf("format is %q, want %q", s.Format, FormatName)
	}
	if s.Version < 1 || s.Version > Version {
		return fmt.Errorf("snapshot version %d is not supported (this build reads 1 to %d)", s.Version, Version)
	}
	if _, err := feed.ParseDataset(string(s.Dataset)); err != nil {
		return err
	}
	if _, err := feed.ParseFormat(string(s.Source)); err != nil {
		return err
	}
	if s.FetchedAt.IsZero() {
		return errors.New("fetched_at is missing")
	}
	if len(s.Responses) == 0 {
		return errors.New("no responses")
	}
	return nil
}

// Rows parses every response body as rows of the snapshot's dataset: lots
// or availability, the other slice nil.
func (s *Snapshot) Rows() (lots []feed.LotRow, availability []feed.AvailabilityRow, err error) {
	switch s.Dataset {
	case feed.Lots:
		lots, err = s.Lots()
	case feed.Availability:
		availability, err = s.Availability()
	default:
		err = fmt.Errorf("unknown dataset %q", s.Dataset)
	}
	return lots, availability, err
}

// Lots parses every response body as lots rows, in order.
func (s *Snapshot) Lots() ([]feed.LotRow, error) { return parsePages(s, feed.Lots, feed.ParseLots) }

// Availability parses every response body as availability rows, in order.
func (s *Snapshot) Availability() ([]feed.AvailabilityRow, error) {
	return parsePages(s, feed.Availability, feed.ParseAvailability)
}

// parsePages parses every response body of s, which must hold d, with
// parse, and returns the rows in order.
func parsePages[R any](s *Snapshot, d feed.Dataset, parse func(feed.Format, []byte) ([]R, error)) ([]R, error) {
	if s.Dataset != d {
		return nil, fmt.Errorf("snapshot holds %s, not %s", s.Dataset, d)
	}
	var rows []R
	for i, r := range s.Responses {
		page, err := parse(s.Source, r.Body)
		if err != nil {
			return nil, fmt.Errorf("response %d (%s): %w", i, r.URL, err)
		}
		rows = append(rows, page...)
	}
	return rows, nil
}

// keyPattern is the only shape a snapshot key may have: dataset, UTC date,
// UTC fetch time, and the first 16 hex digits of the object's SHA-256.
var keyPattern = regexp.MustCompile(`^(lots|availability)/(\d{4})/(\d{2})/(\d{2})/(\d{8}T\d{6}Z)-([0-9a-f]{16})\.json\.gz$`)

// Key is where a snapshot is stored, relative to the store's root. Keys sort
// by fetch time, and a day (or month, or year) is a key prefix.
func Key(d feed.Dataset, fetchedAt time.Time, sha256hex string) string {
	t := fetchedAt.UTC()
	return fmt.Sprintf("%s/%s-%s.json.gz", DayPrefix(d, t), t.Format("20060102T150405Z"), sha256hex[:16])
}

// DayPrefix is the key prefix that holds every snapshot of d fetched on t's UTC day.
func DayPrefix(d feed.Dataset, t time.Time) string {
	return fmt.Sprintf("%s/%s", d, t.UTC().Format("2006/01/02"))
}

// CheckObject checks the key and options of an object published to a
// store.Destination: store's own checks, and never a snapshot key, which a
// publication must not overwrite. It lives here, not in store, because
// store cannot know snapshot keys (this package reads through it).
func CheckObject(key string, opts store.ObjectOptions) error {
	if err := store.CheckObjectKey(key); err != nil {
		return err
	}
	if _, err := ParseKey(key); err == nil {
		return fmt.Errorf("object key %q: %w: a snapshot key is never overwritten", key, store.ErrOutside)
	}
	return store.CheckObjectOptions(key, opts)
}

// KeyInfo is what a key says about its snapshot.
type KeyInfo struct {
	Dataset   feed.Dataset
	FetchedAt time.Time // to the second
	SHAPrefix string
}

// ParseKey checks that key has the shape Key produces and returns what it says.
func ParseKey(key string) (KeyInfo, error) {
	m := keyPattern.FindStringSubmatch(key)
	if m == nil {
		return KeyInfo{}, fmt.Errorf("key %q is not a snapshot key (want dataset/YYYY/MM/DD/YYYYMMDDTHHMMSSZ-<16 hex>.json.gz)", key)
	}
	t, err := time.Parse("20060102T150405Z", m[5])
	if err != nil {
		return KeyInfo{}, fmt.Errorf("key %q: bad time: %w", key, err)
	}
	if got := t.Format("2006/01/02"); got != strings.Join(m[2:5], "/") {
		return KeyInfo{}, fmt.Errorf("key %q: date folder does not match its time %s", key, m[5])
	}
	return KeyInfo{Dataset: feed.Dataset(m[1]), FetchedAt: t, SHAPrefix: m[6]}, nil
}
