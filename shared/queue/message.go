package queue

// This file holds the queue message that tells the loader a snapshot is
// ready: which dataset, where it is stored, and the checksum it must have.

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
)

// MessageVersion is the message format version this build writes and the newest it reads.
const MessageVersion = 1

// MaxMessageBytes caps an encoded message; real ones are ~300 bytes.
const MaxMessageBytes = 4 << 10

// ErrInvalidMessage wraps every reason a message body can never be accepted.
var ErrInvalidMessage = errors.New("invalid message")

// Message announces one stored snapshot.
type Message struct {
	Version int          `json:"version"`
	Dataset feed.Dataset `json:"dataset"`
	// Bucket is set only for S3 stores: the loader refuses snapshots in any bucket but its own.
	Bucket string `json:"bucket,omitempty"`
	// Key is the object's full key in the store (including an S3 prefix).
	Key       string    `json:"key"`
	SHA256    string    `json:"sha256"`
	Size      int64     `json:"size"`
	FetchedAt time.Time `json:"fetched_at"`
	Rows      int       `json:"rows"`
}

// EncodeMessage returns the JSON body of m.
func EncodeMessage(m Message) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(m)
}

// DecodeMessage parses a message body strictly: unknown fields, a version from the
// future, a wrong dataset or a malformed checksum are refused. Every error
// wraps ErrInvalidMessage. The key is checked against the store by the store itself.
func DecodeMessage(body []byte) (Message, error) {
	if len(body) > MaxMessageBytes {
		return Message{}, fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidMessage, len(body), MaxMessageBytes)
	}
	// Read the version first, so a future message is reported as such and not
	// as a pile of unknown fields.
	var probe struct {
		Version json.RawMessage `json:"version"`
	}
	if err := json.Unmarshal(body, &probe); err != nil {
		return Message{}, fmt.Errorf("%w: not a JSON object: %v", ErrInvalidMessage, err)
	}
	var v int
	if err := json.Unmarshal(probe.Version, &v); err != nil || v < 1 {
		return Message{}, fmt.Errorf("%w: version %s is not a positive integer", ErrInvalidMessage, probe.Version)
	}
	if v > MessageVersion {
		return Message{}, fmt.Errorf("%w: version %d is newer than this loader understands (%d)", ErrInvalidMessage, v, MessageVersion)
	}
	var m Message
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Message{}, fmt.Errorf("%w: %v", ErrInvalidMessage, err)
	}
	if dec.More() {
		return Message{}, fmt.Errorf("%w: trailing data after the object", ErrInvalidMessage)
	}
	if err := m.Validate(); err != nil {
		return Message{}, fmt.Errorf("%w: %v", ErrInvalidMessage, err)
	}
	return m, nil
}

// Validate checks the fields that do not depend on the store.
func (m Message) Validate() error {
	if m.Version != MessageVersion {
		return fmt.Errorf("version %d, want %d", m.Version, MessageVersion)
	}
	if _, err := feed.ParseDataset(string(m.Dataset)); err != nil {
		return err
	}
	if m.Key == "" {
		return errors.New("key is empty")
	}
	if len(m.SHA256) != 64 {
		return fmt.Errorf("sha256 %q is not 64 hex digits", m.SHA256)
	}
	if _, err := hex.DecodeString(m.SHA256); err != nil {
		return fmt.Errorf("sha256 %q is not hex", m.SHA256)
	}
	if m.Size <= 0 || m.Size > snapshot.MaxObjectBytes {
		return fmt.Errorf("size %d is outside 1..%d", m.Size, snapshot.MaxObjectBytes)
	}
	if m.FetchedAt.IsZero() {
		return errors.New("fetched_at is missing")
	}
	if m.Rows < 0 {
		return fmt.Errorf("rows %d is negative", m.Rows)
	}
	return nil
}
