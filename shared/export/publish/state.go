package publish

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
)

// state is what was published from this database to the destination: it
// is kept in the database (sqlite.DB.PublishState), so a restarted loader
// knows which months the destination lacks or holds stale, whether the map
// page changed, and when the database was last copied.
type state struct {
	Version int `json:"version"`
	// Months: the month files as last published.
	Months map[string]monthState `json:"months"`
	// Site: SHA-256 (hex) of each published file of the map page, by key.
	Site map[string]string `json:"site"`
	// DBAt is when parking.db was last published; Daily is the Taipei day
	// of the last daily copy.
	DBAt  time.Time `json:"db_published_at"`
	Daily string    `json:"db_daily"`
}

// monthState describes one published month file: the rows it holds (to
// compare with the database at start), its bytes, and how it was served.
type monthState struct {
	sqlite.ObservationStats
	Layout       int       `json:"layout"`
	SHA256       string    `json:"sha256"`
	Bytes        int64     `json:"bytes"`
	CacheControl string    `json:"cache_control"`
	At           time.Time `json:"published_at"`
}

const stateVersion = 1

func newState() *state {
	return &state{Version: stateVersion, Months: map[string]monthState{}, Site: map[string]string{}}
}

// loadState reads the state of dest from db. An unreadable document or one
// of another version counts as none: the cost is a republication.
func loadState(ctx context.Context, db *sqlite.DB, dest string) (s *state, warning error, err error) {
	doc, ok, err := db.PublishState(ctx, dest)
	if err != nil || !ok {
		return newState(), nil, err
	}
	s = newState()
	if err := json.Unmarshal(doc, s); err != nil || s.Version != stateVersion {
		return newState(), fmt.Errorf("publication state of %s unreadable (%v, version %d); publishing everything again", dest, err, s.Version), nil
	}
	if s.Months == nil {
		s.Months = map[string]monthState{}
	}
	if s.Site == nil {
		s.Site = map[string]string{}
	}
	return s, nil, nil
}

func (s *state) save(ctx context.Context, db *sqlite.DB, dest string) error {
	doc, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode the publication state: %w", err)
	}
	return db.SetPublishState(ctx, dest, doc)
}
