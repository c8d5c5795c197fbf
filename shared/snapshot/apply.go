package snapshot

import (
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
)

// This file holds what applying a snapshot to the database means, in terms
// every stage shares: the input (a verified, parsed snapshot), the outcome
// the ledger records for it, and the quality counts of its rows.

// Input is one parsed snapshot to apply.
type Input struct {
	// Key identifies the snapshot (its store key); the ledger's primary key.
	Key string
	// SHA256 is the hex checksum of the stored snapshot. It covers the fetch
	// time, so equal checksums mean the same fetch stored twice.
	SHA256 string
	// Size is the stored snapshot's size in bytes.
	Size int64
	// StoredAt is when the store itself wrote the object (S3 LastModified,
	// the file's mtime): a time no message can forge. Zero when unknown.
	StoredAt time.Time
	Dataset  feed.Dataset
	// FetchedAt is the observation time of every row. Stored to the second.
	FetchedAt    time.Time
	Lots         []feed.LotRow
	Availability []feed.AvailabilityRow
	// AllowMassDelete turns off the guards against a snapshot that would
	// change too much at once: a lots snapshot removing or blanking more than
	// half of the active lots, an availability snapshot bringing more than
	// MaxNewLotIDs IDs never seen before.
	AllowMassDelete bool
}

// MaxFetchAhead is how far a snapshot's fetch time may be ahead of the time
// the store wrote it (Input.StoredAt) before the snapshot is refused as
// coming from the future. A fetch happens before its put, so a genuine
// snapshot is ahead only by how far the extractor's clock is ahead of the
// store's: milliseconds for hosts kept by NTP (Amazon Time Sync on Fargate;
// the same host for a file store), while 15 minutes is the skew S3 itself
// refuses a signed request for (RequestTimeTooSkewed). An extractor further
// ahead than that stamps its observations with wrong times, and refusing them
// loudly is right. A forged or mis-clocked snapshot inside the tolerance
// holds the latest values for at most this long before real snapshots
// overtake it. Only the future is suspect: import-responses stores
// snapshots years after their fetch.
const MaxFetchAhead = 15 * time.Minute

// MaxNewLotIDs is the most lot IDs, unknown to both feeds so far, that one
// availability snapshot may bring. The live feed has about 1,430 IDs in all,
// so a first snapshot into an empty database passes; a snapshot of invented
// IDs does not.
const MaxNewLotIDs = 5000

// Outcome is what became of a snapshot.
type Outcome string

const (
	// Applied: the snapshot's rows are in the database.
	Applied Outcome = "applied"
	// Duplicate: the same content (sha256) was already applied under another key.
	Duplicate Outcome = "duplicate"
	// Superseded: a lots snapshot older than the newest applied one. Its rows
	// refined the history (lot_versions, created/deleted times) only.
	Superseded Outcome = "superseded"
	// Refused: nothing was applied; Reason says why. The key may be applied again.
	Refused Outcome = "refused"
)

// Quality counts what a snapshot's rows looked like. It is stored as JSON in
// the ledger (snapshots.quality).
type Quality struct {
	// Rows is the number of rows in the snapshot, duplicates included.
	Rows int `json:"rows"`
	// DuplicateIDs counts rows whose ID appeared earlier in the snapshot; the
	// last row of an ID wins.
	DuplicateIDs int `json:"duplicate_ids"`
	// EmptyIDs counts rows without an ID; they are ignored.
	EmptyIDs     int                  `json:"empty_ids,omitempty"`
	Lots         *LotsQuality         `json:"lots,omitempty"`
	Availability *AvailabilityQuality `json:"availability,omitempty"`
}

// LotsQuality is the lots-specific part of Quality.
type LotsQuality struct {
	// Active is the number of distinct lots in the snapshot.
	Active int `json:"active"`
	// Appeared and Disappeared compare with the previous applied lots snapshot
	// in fetch time (not in arrival order).
	Appeared    int `json:"appeared"`
	Disappeared int `json:"disappeared"`
	// LotsWithoutPosition counts lots geo.Locate could not place.
	LotsWithoutPosition int `json:"lots_without_position"`
	// WithoutPositionByReason splits LotsWithoutPosition by geo's note.
	WithoutPositionByReason map[string]int `json:"without_position_by_reason,omitempty"`
	// Blanked counts lots, present before and in this snapshot, whose name,
	// district, address, coordinates or car capacity had a value before and
	// is empty here.
	Blanked int `json:"blanked,omitempty"`
}

// AvailabilityQuality is the availability-specific part of Quality.
type AvailabilityQuality struct {
	// Valid counts distinct lots with a value >= 0 (stored observations).
	Valid int `json:"valid"`
	// Unknown counts distinct lots whose value is negative (-9: no live
	// figure) or not an integer. UnknownShare is Unknown / (Valid + Unknown).
	Unknown int `json:"unknown"`
	// NoFigure, OtherNegative and NotInteger split Unknown: -9 (the city's
	// "no live figure"), another negative (-3 closed, -6 bus only in the
	// ancestor spec), and a value that is not an integer at all.
	NoFigure      int     `json:"no_figure"`
	OtherNegative int     `json:"other_negative"`
	NotInteger    int     `json:"not_integer"`
	UnknownShare  float64 `json:"unknown_share"`
	// UnknownLotIDs counts IDs that are not in parking_lots (stored anyway).
	UnknownLotIDs int `json:"unknown_lot_ids"`
	// UnknownLotIDSample lists up to 10 of them, sorted.
	UnknownLotIDSample []string `json:"unknown_lot_id_sample,omitempty"`
	// NewLotIDs counts IDs seen in neither feed before this snapshot.
	NewLotIDs int `json:"new_lot_ids,omitempty"`
}

// Result reports what Apply did with one Input.
type Result struct {
	Key     string
	Dataset feed.Dataset
	Outcome Outcome
	// AlreadyApplied: the key was already in the ledger (applied, duplicate or
	// superseded) and nothing was touched. Outcome is the recorded one.
	AlreadyApplied bool
	Reason         string
	// Rows is the number of rows in the snapshot.
	Rows int
	// Changed counts rows inserted, updated or deleted in user-facing tables.
	Changed int
	Quality Quality
	// Commit is how long the COMMIT of the transaction that recorded this
	// result took (the same for every result of one Apply): on EFS it is the
	// fsync round trips, the figure that tells a slow file system apart.
	Commit time.Duration
}
