// Package consumetest runs the loader's consume loop inside a test's own
// process, as the one running loader would, for the tests of the commands
// and suites around it (replay, import-responses, SQS, reliability).
package consumetest

import (
	"context"
	"sync"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/load/consume"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
)

// Drain opens the database at dbPath and runs the consume loop of cfg on it
// until a receive comes back empty, then closes it. cfg names the queue and
// the store; a zero Wait is 10 ms instead of consume's 20 s, since the
// queue is local to the test. cfg.OnEvent, if set, still sees every event.
// Drain returns the results of the snapshots applied, in order; it does not
// call t.Fatal, so it may run in its own goroutine.
func Drain(ctx context.Context, dbPath string, cfg consume.Config) ([]snapshot.Result, error) {
	db, err := sqlite.Open(ctx, dbPath, sqlite.Options{})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return DrainDB(ctx, db, cfg)
}

// DrainDB is Drain on a database the caller opened (in a locking mode of its
// choosing, say) and closes.
func DrainDB(ctx context.Context, db *sqlite.DB, cfg consume.Config) ([]snapshot.Result, error) {
	cfg.DB, cfg.Drain = db, true
	if cfg.Wait == 0 {
		cfg.Wait = 10 * time.Millisecond
	}
	var (
		mu      sync.Mutex
		results []snapshot.Result
	)
	onEvent := cfg.OnEvent
	cfg.OnEvent = func(e consume.Event) {
		if e.Kind == consume.Applied && e.Result != nil {
			mu.Lock()
			results = append(results, *e.Result)
			mu.Unlock()
		}
		if onEvent != nil {
			onEvent(e)
		}
	}
	err := consume.Run(ctx, cfg)
	mu.Lock()
	defer mu.Unlock()
	return results, err
}
