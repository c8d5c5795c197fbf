// Package scaledb writes a year-scale (or any-scale) parking database
// quickly, for benchmarks: the lots and their history through the real apply
// (a few dozen lots snapshots), and the bulk, the live observations with
// their ledger rows, straight into the tables in key order, which takes
// minutes where applying a year of live snapshots would take hours.
//
// The content is realistic: the sample lots (the real 2019 rows and
// synthetic ones modelled on them), a lots history with renames, capacity
// changes, removals and additions, and a live figure every 5 minutes from
// about 30% of the lots (the rest report -9), following a daily pattern.
package scaledb

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/parking-newtaipei/parking-newtaipei/internal/feedtest"
	"github.com/parking-newtaipei/parking-newtaipei/shared/clock"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
)

// Config describes the database to write.
type Config struct {
	// Path of the new database; an existing file is refused.
	Path string
	// Lots is how many lots the feeds carry (at most the sample's 1,419).
	Lots int
	// Days of history ending at End.
	Days int
	End  time.Time
	// Every is the live feed's period (5 minutes).
	Every time.Duration
	// LiveShare is the share of lots that report live figures (0.3).
	LiveShare float64
	Seed      uint64
	Logger    *slog.Logger
}

// Defaults are a year as the loader would have it: 1,400 lots, a snapshot
// every 5 minutes, 30% of the lots live (about 44 M observations).
func Defaults() Config {
	return Config{Lots: 1400, Days: 365, End: time.Date(2026, 11, 26, 18, 0, 0, 0, time.FixedZone("Asia/Taipei", 8*3600)),
		Every: 5 * time.Minute, LiveShare: 0.3, Seed: 1}
}

// Summary says what was written.
type Summary struct {
	Lots, LotsSnapshots, LiveSnapshots int
	Observations                       int64
	Bytes                              int64
	Took                               time.Duration
}

// Generate writes the database.
func Generate(ctx context.Context, cfg Config) (Summary, error) {
	start := time.Now()
	var sum Summary
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Lots <= 0 || cfg.Days <= 0 || cfg.Every < time.Second || cfg.LiveShare < 0 || cfg.LiveShare > 1 {
		return sum, fmt.Errorf("scale database %s: bad config %+v", cfg.Path, cfg)
	}
	if _, err := os.Stat(cfg.Path); err == nil {
		return sum, fmt.Errorf("scale database %s: exists; remove it first", cfg.Path)
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5ca1e))
	pool := distinct(feedtest.SampleLots())
	if cfg.Lots > len(pool) {
		return sum, fmt.Errorf("scale database %s: at most %d lots", cfg.Path, len(pool))
	}
	begin := cfg.End.Add(-time.Duration(cfg.Days) * 24 * time.Hour)

	// 1. The lots history, through the apply: it derives parking_lots and
	// lot_versions exactly as the loader does.
	db, err := sqlite.Open(ctx, cfg.Path, sqlite.Options{Locking: sqlite.LockingExclusive, Logger: cfg.Logger})
	if err != nil {
		return sum, err
	}
	history := lotsHistory(rng, pool, cfg.Lots, begin, cfg.End)
	for _, in := range history {
		if _, err := db.Apply(ctx, in); err != nil {
			db.Close()
			return sum, fmt.Errorf("scale database %s: %w", cfg.Path, err)
		}
	}
	sum.LotsSnapshots = len(history)
	if err := db.Close(); err != nil {
		return sum, err
	}

	// 2. The observations and their ledger rows, straight into the tables.
	raw, err := sql.Open("sqlite", cfg.Path)
	if err != nil {
		return sum, err
	}
	defer raw.Close()
	raw.SetMaxOpenConns(1)
	for _, p := range []string{"PRAGMA locking_mode = EXCLUSIVE", "PRAGMA journal_mode = OFF", "PRAGMA synchronous = OFF", "PRAGMA cache_size = -200000"} {
		if _, err := raw.ExecContext(ctx, p); err != nil {
			return sum, fmt.Errorf("scale database %s: %s: %w", cfg.Path, p, err)
		}
	}
	ids := map[string]bool{}
	for _, in := range history {
		for _, l := range in.Lots {
			ids[l.ID] = true
		}
	}
	sum.Lots = len(ids)
	lots, err := ordinals(ctx, raw, pool, ids)
	if err != nil {
		return sum, fmt.Errorf("scale database %s: %w", cfg.Path, err)
	}
	n, snaps, err := observations(ctx, raw, rng, cfg, lots, begin)
	if err != nil {
		return sum, fmt.Errorf("scale database %s: %w", cfg.Path, err)
	}
	sum.Observations, sum.LiveSnapshots = n, snaps
	if err := raw.Close(); err != nil {
		return sum, err
	}
	if st, err := os.Stat(cfg.Path); err == nil {
		sum.Bytes = st.Size()
	}
	sum.Took = time.Since(start)
	return sum, nil
}

func distinct(rows []feed.LotRow) []feed.LotRow {
	seen := map[string]bool{}
	var out []feed.LotRow
	for _, r := range rows {
		if !seen[r.ID] {
			seen[r.ID] = true
			out = append(out, r)
		}
	}
	return out
}

// lotsHistory: the first n lots at begin, then a lots snapshot on the days
// something changed (about one a week): a few renames and capacity changes,
// now and then a lot removed or added. Unchanged days have no snapshot, as
// the extractor's content-hash skip stores none.
func lotsHistory(rng *rand.Rand, pool []feed.LotRow, n int, begin, end time.Time) []snapshot.Input {
	current := append([]feed.LotRow{}, pool[:n]...)
	next := n
	var out []snapshot.Input
	add := func(at time.Time) {
		rows := append([]feed.LotRow{}, current...)
		out = append(out, snapshot.Input{Key: key(feed.Lots, at), Dataset: feed.Lots, FetchedAt: at, Lots: rows})
	}
	add(begin.Add(-time.Hour))
	for day := begin.Add(2 * time.Hour); day.Before(end); day = day.Add(24 * time.Hour) {
		if rng.IntN(7) != 0 {
			continue
		}
		for range 1 + rng.IntN(4) {
			i := rng.IntN(len(current))
			l := current[i]
			if rng.IntN(2) == 0 {
				l.Name = strings.SplitN(l.Name, "（", 2)[0] + fmt.Sprintf("（%s起）", day.Format("2006/01"))
			} else {
				total, _ := strconv.Atoi(l.TotalCar)
				l.TotalCar = strconv.Itoa(max(0, total+rng.IntN(21)-10))
			}
			current[i] = l
		}
		if rng.IntN(3) == 0 && len(current) > n-20 {
			i := rng.IntN(len(current))
			current = append(current[:i], current[i+1:]...)
		}
		if rng.IntN(3) == 0 && next < len(pool) {
			current = append(current, pool[next])
			next++
		}
		add(day)
	}
	return out
}

// key is a store key of the right shape for a generated snapshot.
func key(d feed.Dataset, at time.Time) string {
	h := sha256.Sum256([]byte(string(d) + at.UTC().Format(time.RFC3339Nano)))
	return snapshot.Key(d, at, hex.EncodeToString(h[:]))
}

// genLot is a lot as the observations need it.
type genLot struct {
	id       string
	n        int64
	capacity int64
	live     bool
	phase    float64
}

// ordinals gives every lot ID its lot_ids row, as the live apply would.
func ordinals(ctx context.Context, raw *sql.DB, pool []feed.LotRow, ids map[string]bool) ([]genLot, error) {
	var out []genLot
	for _, l := range pool {
		if !ids[l.ID] {
			continue
		}
		var n int64
		if err := raw.QueryRowContext(ctx, "INSERT INTO lot_ids (id) VALUES (?) ON CONFLICT (id) DO UPDATE SET id = excluded.id RETURNING n", l.ID).Scan(&n); err != nil {
			return nil, fmt.Errorf("lot ordinal %s: %w", l.ID, err)
		}
		capacity, err := strconv.ParseInt(l.TotalCar, 10, 64)
		if err != nil || capacity <= 0 {
			capacity = 50
		}
		out = append(out, genLot{id: l.ID, n: n, capacity: capacity})
	}
	return out, nil
}

// observations writes a live snapshot every cfg.Every from begin to
// cfg.End: its valid values, its ledger row, and at the end the latest
// values of every lot and the summaries an apply keeps (obs_months,
// obs_month_lots, ledger_counts). The rows are made on one goroutine and
// written on another, so that the two cores share the work.
func observations(ctx context.Context, raw *sql.DB, rng *rand.Rand, cfg Config, lots []genLot, begin time.Time) (int64, int, error) {
	for i := range lots {
		lots[i].live = rng.Float64() < cfg.LiveShare
		lots[i].phase = rng.Float64() * 2 * math.Pi / 8
	}
	batches := make(chan *batch, 4)
	var total int64
	snaps := 0
	sums := newSummaries()
	var lastValues map[int]int64
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(batches)
		b := &batch{}
		day := -1
		for at := begin; !at.After(cfg.End); at = at.Add(cfg.Every) {
			hour := float64(at.In(cfg.End.Location()).Hour()) + float64(at.Minute())/60
			values := map[int]int64{}
			t := at.Unix()
			for i, l := range lots {
				if !l.live || rng.IntN(50) == 0 { // live lots miss a figure now and then
					continue
				}
				// Fuller in office hours, emptier at night, with noise.
				free := 0.55 + 0.4*math.Cos(2*math.Pi*(hour-3)/24+l.phase) + (rng.Float64()-0.5)*0.1
				v := int64(math.Round(math.Max(0, math.Min(1, free)) * float64(l.capacity)))
				values[i] = v
				b.obs = append(b.obs, t<<16|l.n, v)
				sums.observe(t, l.n)
			}
			total += int64(len(values))
			k := key(feed.Availability, at)
			q, _ := json.Marshal(snapshot.Quality{Rows: len(lots), Availability: &snapshot.AvailabilityQuality{
				Valid: len(values), Unknown: len(lots) - len(values), NoFigure: len(lots) - len(values),
				UnknownShare: float64(len(lots)-len(values)) / float64(len(lots))}})
			appliedAt := at.Add(3 * time.Second).In(cfg.End.Location()).Format("2006-01-02T15:04:05-07:00")
			b.ledger = append(b.ledger, k, k[len(k)-24:len(k)-8], at.In(cfg.End.Location()).Format("2006-01-02T15:04:05.000-07:00"),
				at.UnixMilli(), appliedAt, len(lots), len(values)+len(lots), string(q))
			sums.applied(appliedAt)
			snaps++
			lastValues = values
			if len(b.obs) >= 2*obsChunk*8 {
				select {
				case batches <- b:
				case <-gctx.Done():
					return gctx.Err()
				}
				b = &batch{}
			}
			if d := int(at.Sub(begin) / (24 * time.Hour)); d != day {
				day = d
				if d%30 == 0 {
					cfg.Logger.Info("generating", "day", d, "of", cfg.Days, "observations", total)
				}
			}
		}
		select {
		case batches <- b:
			return nil
		case <-gctx.Done():
			return gctx.Err()
		}
	})
	g.Go(func() error { return write(gctx, raw, batches) })
	if err := g.Wait(); err != nil {
		return 0, 0, err
	}

	tx, err := raw.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, err
	}
	defer tx.Rollback()
	last := cfg.End.Add(-time.Duration(cfg.End.Sub(begin) % cfg.Every))
	lastText := last.In(cfg.End.Location()).Format("2006-01-02T15:04:05-07:00")
	for i, l := range lots {
		v, ok := lastValues[i]
		var av any
		rawText := "-9"
		if ok {
			av, rawText = v, strconv.FormatInt(v, 10)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO availability_latest (parking_id, available_car, raw, observed_at, observed_unix)
			VALUES (?, ?, ?, ?, ?)`, l.id, av, rawText, lastText, last.Unix()); err != nil {
			return 0, 0, err
		}
	}
	if err := sums.write(ctx, tx, snaps); err != nil {
		return 0, 0, err
	}
	return total, snaps, tx.Commit()
}

// obsChunk is how many observations one INSERT statement carries.
const obsChunk = 400

// batch is a run of observations (k, v pairs) and ledger rows (8 values each).
type batch struct {
	obs, ledger []any
}

// write inserts the batches in one transaction, in key order.
func write(ctx context.Context, raw *sql.DB, batches <-chan *batch) error {
	tx, err := raw.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	obsStmt, err := tx.PrepareContext(ctx, "INSERT INTO availability_obs (k, v) VALUES "+strings.TrimSuffix(strings.Repeat("(?,?),", obsChunk), ","))
	if err != nil {
		return err
	}
	ledger, err := tx.PrepareContext(ctx, `INSERT INTO snapshots (key, dataset, sha256, fetched_at, fetched_ms, applied_at, rows, changed, outcome, quality)
		VALUES (?, 'availability', ?, ?, ?, ?, ?, ?, 'applied', ?)`)
	if err != nil {
		return err
	}
	for b := range batches {
		obs := b.obs
		for ; len(obs) >= 2*obsChunk; obs = obs[2*obsChunk:] {
			if _, err := obsStmt.ExecContext(ctx, obs[:2*obsChunk]...); err != nil {
				return err
			}
		}
		for i := 0; i < len(obs); i += 2 {
			if _, err := tx.ExecContext(ctx, "INSERT INTO availability_obs (k, v) VALUES (?, ?)", obs[i], obs[i+1]); err != nil {
				return err
			}
		}
		for i := 0; i < len(b.ledger); i += 8 {
			if _, err := ledger.ExecContext(ctx, b.ledger[i:i+8]...); err != nil {
				return err
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return tx.Commit()
}

// summaries are what the apply keeps in obs_months, obs_month_lots and
// ledger_counts (migration 0003), gathered while generating.
type summaries struct {
	months []*monthSummary
	last   string // newest applied_at
}

type monthSummary struct {
	month       string
	n           int64
	first, last int64
	lots        map[int64]bool
}

func newSummaries() *summaries { return &summaries{} }

// observe counts an observation of lot at fetch second t (in time order).
func (s *summaries) observe(t, lot int64) {
	m := time.Unix(t, 0).In(clock.Taipei).Format("2006-01")
	if len(s.months) == 0 || s.months[len(s.months)-1].month != m {
		s.months = append(s.months, &monthSummary{month: m, first: t, lots: map[int64]bool{}})
	}
	cur := s.months[len(s.months)-1]
	cur.n++
	cur.last = t
	cur.lots[lot] = true
}

func (s *summaries) applied(at string) { s.last = max(s.last, at) }

func (s *summaries) write(ctx context.Context, tx *sql.Tx, snaps int) error {
	for _, m := range s.months {
		if _, err := tx.ExecContext(ctx, "INSERT INTO obs_months (month, observations, lots, first_unix, last_unix) VALUES (?, ?, ?, ?, ?)",
			m.month, m.n, len(m.lots), m.first, m.last); err != nil {
			return fmt.Errorf("summarise %s: %w", m.month, err)
		}
		for lot := range m.lots {
			if _, err := tx.ExecContext(ctx, "INSERT INTO obs_month_lots (month, lot) VALUES (?, ?)", m.month, lot); err != nil {
				return fmt.Errorf("summarise %s: %w", m.month, err)
			}
		}
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO ledger_counts (dataset, outcome, snapshots, last_applied_at) VALUES ('availability', 'applied', ?, ?)
		ON CONFLICT (dataset, outcome) DO UPDATE SET snapshots = snapshots + excluded.snapshots,
			last_applied_at = max(last_applied_at, excluded.last_applied_at)`, snaps, s.last)
	return err
}
