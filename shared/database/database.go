// Package database holds the SQLite database: its settings, schema, and the
// idempotent, order-safe apply of snapshots.
package database

// STUB: replaced by the database work. Exported names and signatures are the contract.

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
)

// ErrLocked: another process (a running loader) holds the database.
var ErrLocked = errors.New("database is held by another loader")

type Options struct {
	WaitLock    bool
	LockTimeout time.Duration
	Logger      *slog.Logger
	Now         func() time.Time
}

type DB struct{}

func Open(ctx context.Context, path string, opts Options) (*DB, error) { return nil, errors.New("stub") }
func (db *DB) Close() error                                          { return nil }
func (db *DB) Path() string                                          { return "" }

type Input struct {
	Key             string
	SHA256          string
	Dataset         feed.Dataset
	FetchedAt       time.Time
	Lots            []feed.LotRow
	Availability    []feed.AvailabilityRow
	AllowMassDelete bool
}

type Outcome string

const (
	Applied    Outcome = "applied"
	Duplicate  Outcome = "duplicate"
	Superseded Outcome = "superseded"
	Refused    Outcome = "refused"
)

type Quality struct{}

type Result struct {
	Key            string
	Outcome        Outcome
	AlreadyApplied bool
	Reason         string
	Rows           int
	Changed        int
	Quality        Quality
}

func (db *DB) Apply(ctx context.Context, in ...Input) ([]Result, error) { return nil, errors.New("stub") }
func (db *DB) Known(ctx context.Context, keys []string) (map[string]bool, error) {
	return nil, errors.New("stub")
}

type Rejection struct {
	MessageID string
	Key       string
	Dataset   string
	Reason    string
	Body      []byte
	At        time.Time
}

func (db *DB) Reject(ctx context.Context, r Rejection) error { return errors.New("stub") }
