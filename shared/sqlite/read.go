package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"time"
)

// openReaders opens the pool of read-only connections of shared mode. They
// cannot write (mode=ro, query_only), so a bug in a read path can never
// change data, and in WAL mode they never wait for the writer nor make it wait.
func openReaders(path string, busy time.Duration) (*sql.DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("readers: %w", err)
	}
	u := url.URL{Scheme: "file", Path: abs}
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	q.Add("_pragma", "query_only(1)")
	// A small page cache each: the hot pages are in the OS cache anyway.
	q.Add("_pragma", "cache_size(-4000)")
	u.RawQuery = q.Encode()
	readers, err := sql.Open("sqlite", u.String())
	if err != nil {
		return nil, fmt.Errorf("readers: %w", err)
	}
	readers.SetMaxOpenConns(readerConns)
	readers.SetMaxIdleConns(readerConns)
	readers.SetConnMaxIdleTime(5 * time.Minute)
	if err := readers.Ping(); err != nil {
		readers.Close()
		return nil, fmt.Errorf("readers: %w", err)
	}
	return readers, nil
}

// Read runs fn with a DB to read from, as one consistent snapshot of the
// database. In shared mode that is a read-only connection of its own, inside
// a read transaction, so the loader's writes go on meanwhile; in exclusive
// mode it is db itself, so fn's queries take turns with the applies and must
// each be short. fn must not write (in shared mode it cannot).
func (db *DB) Read(ctx context.Context, fn func(r *DB) error) (err error) {
	if db.readers == nil {
		return fn(db)
	}
	conn, err := db.readers.Conn(ctx)
	if err != nil {
		return fmt.Errorf("read %s: %w", db.path, err)
	}
	defer conn.Close()
	// A plain BEGIN reads one snapshot for all of fn's statements.
	if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
		return fmt.Errorf("read %s: begin: %w", db.path, err)
	}
	defer func() {
		if _, rerr := conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK"); rerr != nil && err == nil {
			err = fmt.Errorf("read %s: end: %w", db.path, rerr)
		}
	}()
	view := &DB{path: db.path, conn: conn, logger: db.logger, now: db.now, locking: db.locking}
	return fn(view)
}

// ErrNotFound: no lot has that ID.
var ErrNotFound = errors.New("not found")

// Lot is one parking lot as the read API and the exports show it: the
// original's columns, its position, and its newest live value.
type Lot struct {
	ID, Area, Name, Type, Summary, Address, Tel, PayEx, ServiceTime string
	TotalCar, TotalMotor, TotalBike                                 int64
	// HasPosition is false when geo could not place the lot; CoordNote says why.
	HasPosition bool
	Lon, Lat    float64
	CoordNote   string
	CreatedAt   string
	UpdatedAt   string
	// DeletedAt is "" while the lot is listed.
	DeletedAt string
	// HasAvailable is false when the lot's newest live value is unknown or it
	// was never in the live feed; Raw is that value as the feed wrote it
	// (e.g. "-9"), ObservedAt its time ("" when never seen).
	HasAvailable bool
	AvailableCar int64
	Raw          string
	ObservedAt   string
}

const readLotColumns = `p.id, p.area, p.name, p.type, p.summary, p.address, p.tel, p.pay_ex, p.service_time,
	p.total_car, p.total_motor, p.total_bike, p.lon, p.lat, p.coord_note, p.created_at, p.updated_at, p.deleted_at,
	a.available_car, a.raw, a.observed_at
	FROM parking_lots p LEFT JOIN availability_latest a ON a.parking_id = p.id`

// LiveValue is the lot's newest live value and its time, nil when unknown
// (-9) or, for the time, when the lot was never in the live feed: the
// nullable fields of the exports and the read API.
func (l Lot) LiveValue() (availableCar *int64, observedAt *string) {
	if l.HasAvailable {
		v := l.AvailableCar
		availableCar = &v
	}
	if l.ObservedAt != "" {
		at := l.ObservedAt
		observedAt = &at
	}
	return availableCar, observedAt
}

func scanLot(sc interface{ Scan(...any) error }) (Lot, error) {
	var l Lot
	var lon, lat sql.NullFloat64
	var deleted, raw, observed sql.NullString
	var avail sql.NullInt64
	err := sc.Scan(&l.ID, &l.Area, &l.Name, &l.Type, &l.Summary, &l.Address, &l.Tel, &l.PayEx, &l.ServiceTime,
		&l.TotalCar, &l.TotalMotor, &l.TotalBike, &lon, &lat, &l.CoordNote, &l.CreatedAt, &l.UpdatedAt, &deleted,
		&avail, &raw, &observed)
	l.HasPosition = lon.Valid && lat.Valid
	l.Lon, l.Lat = lon.Float64, lat.Float64
	l.DeletedAt = deleted.String
	l.HasAvailable, l.AvailableCar = avail.Valid, avail.Int64
	l.Raw, l.ObservedAt = raw.String, observed.String
	return l, err
}

// MapLots returns the active lots that have a position, by ID, with their
// newest live values: the markers of the map. Bounded by the lots table
// (about 1,400 rows).
func (db *DB) MapLots(ctx context.Context) ([]Lot, error) {
	return db.lots(ctx, "map lots", "p.deleted_at IS NULL AND p.lon IS NOT NULL AND p.lat IS NOT NULL")
}

// lots returns the lots that where selects, by ID, with their newest live
// values; what names the read in errors.
func (db *DB) lots(ctx context.Context, what, where string) ([]Lot, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	rows, err := db.conn.QueryContext(ctx, "SELECT "+readLotColumns+" WHERE "+where+" ORDER BY p.id")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out []Lot
	for rows.Next() {
		l, err := scanLot(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// Lot returns one lot, deleted or not, with or without a position;
// ErrNotFound when no lot has that ID.
func (db *DB) Lot(ctx context.Context, id string) (Lot, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	l, err := scanLot(db.conn.QueryRowContext(ctx, "SELECT "+readLotColumns+" WHERE p.id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return l, fmt.Errorf("lot %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return l, fmt.Errorf("lot %q: %w", id, err)
	}
	return l, nil
}

// HistoryPoint is one stored live value of a lot, as History answers it.
type HistoryPoint struct {
	At           time.Time
	AvailableCar int64
}

// MaxHistory is the longest range History answers: a month of one lot is a
// few thousand rows, quick on any connection.
const MaxHistory = 31 * 24 * time.Hour

// maxHistorySteps bounds the work of one History answer whatever the fetch
// rate: distinct observation times in the range (a fetch every minute for
// 31 days is 44,640; the schedule's every 5 minutes, 8,928).
const maxHistorySteps = 50000

// ErrRange: a History range that is empty, reversed or too long.
var ErrRange = errors.New("bad time range")

// History returns a lot's valid observations with from <= time < to, oldest
// first. Unknown values (-9) are not stored, so they are absent here too.
// ErrNotFound when the ID is neither a lot nor was ever in the live feed.
func (db *DB) History(ctx context.Context, id string, from, to time.Time) ([]HistoryPoint, error) {
	if !from.Before(to) || to.Sub(from) > MaxHistory {
		return nil, fmt.Errorf("history of %q from %s to %s: %w: want from before to, at most %d days apart",
			id, formatTime(from), formatTime(to), ErrRange, MaxHistory/(24*time.Hour))
	}
	n, known, err := db.historyLot(ctx, id)
	if err != nil || !known {
		return []HistoryPoint{}, err
	}
	// In day-long slices, each its own short query: in exclusive mode the
	// connection is the writer's, and an apply waits for one slice at most
	// (a day of one lot, a few milliseconds), never for a whole month.
	out := []HistoryPoint{}
	steps := int64(0)
	lo, hi := ceilSecond(from), ceilSecond(to)
	for start := lo; start < hi; start += historySlice {
		end := min(start+historySlice, hi)
		if out, steps, err = db.historySlice(ctx, id, n, start, end, out, steps); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// historySlice is one day of History.
const historySlice = 24 * 3600

// historyLot returns the lot_ids ordinal of id; known is false (with no
// error) for a lot never seen in the live feed, ErrNotFound for no lot.
func (db *DB) historyLot(ctx context.Context, id string) (n int64, known bool, err error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	err = db.conn.QueryRowContext(ctx, "SELECT n FROM lot_ids WHERE id = ?", id).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		var one int
		err = db.conn.QueryRowContext(ctx, "SELECT 1 FROM parking_lots WHERE id = ?", id).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, false, fmt.Errorf("history of %q: %w", id, ErrNotFound)
		}
		if err != nil {
			return 0, false, fmt.Errorf("history of %q: %w", id, err)
		}
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("history of %q: %w", id, err)
	}
	return n, true, nil
}

// historySlice appends lot n's observations with lo <= t < hi (unix
// seconds) to out; steps counts the fetch times visited so far.
func (db *DB) historySlice(ctx context.Context, id string, n, lo, hi int64, out []HistoryPoint, steps int64) ([]HistoryPoint, int64, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	query := historyPacked
	if n > maxPackedLot {
		query = historyOverflow
	}
	rows, err := db.conn.QueryContext(ctx, query, lo, hi, n, steps, maxHistorySteps)
	if err != nil {
		return nil, 0, fmt.Errorf("history of %q: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var t int64
		var v sql.NullInt64
		if err := rows.Scan(&t, &steps, &v); err != nil {
			return nil, 0, fmt.Errorf("history of %q: %w", id, err)
		}
		if steps >= maxHistorySteps {
			return nil, 0, fmt.Errorf("history of %q: %w: more than %d distinct observation times; ask for a shorter range", id, ErrRange, maxHistorySteps)
		}
		if v.Valid {
			out = append(out, HistoryPoint{At: time.Unix(t, 0).In(taipei), AvailableCar: v.Int64})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("history of %q: %w", id, err)
	}
	return out, steps, nil
}

// The two queries of historySlice: ?1, ?2 the range [lo, hi) in unix
// seconds, ?3 the lot's ordinal, ?4 the steps taken so far, ?5 the cap.
//
// Packed keys are t << 16 | lot, so one lot's rows are every ~1,400th row
// of a time range: scanning 7 days visits ~850,000 rows (~200 ms). Instead
// the query hops from each fetch time to the next (a seek past
// t << 16 | 65535) and looks the lot up at each (a seek to t << 16 | lot):
// two seeks per fetch time, ~2,000 for 7 days, and no index to pay for on
// every apply. The step cap bounds data with a time per row (legacy imports).
//
// A lot whose ordinal is past the 16 bits (migration 0002) has its rows in
// availability_obs_overflow, keyed (t, lot): the same hops over that
// table's own fetch times.
const (
	historyPacked = `WITH RECURSIVE ticks(t, step) AS (
			SELECT (SELECT k >> 16 FROM availability_obs WHERE k >= ?1 << 16 ORDER BY k LIMIT 1), ?4 + 1
			UNION ALL
			SELECT (SELECT k >> 16 FROM availability_obs WHERE k > ((t << 16) | 65535) ORDER BY k LIMIT 1), step + 1
			FROM ticks WHERE t < ?2 AND step < ?5
		)
		SELECT t, step, o.v FROM ticks LEFT JOIN availability_obs o ON o.k = ((t << 16) | ?3)
		WHERE t < ?2 ORDER BY t`
	historyOverflow = `WITH RECURSIVE ticks(t, step) AS (
			SELECT (SELECT w.t FROM availability_obs_overflow w WHERE w.t >= ?1 ORDER BY w.t LIMIT 1), ?4 + 1
			UNION ALL
			SELECT (SELECT w.t FROM availability_obs_overflow w WHERE w.t > ticks.t ORDER BY w.t LIMIT 1), step + 1
			FROM ticks WHERE ticks.t < ?2 AND step < ?5
		)
		SELECT ticks.t, step, w.v FROM ticks LEFT JOIN availability_obs_overflow w ON w.t = ticks.t AND w.lot = ?3
		WHERE ticks.t < ?2 ORDER BY ticks.t`
)

// ceilSecond is t rounded up to a whole second: observation times are whole
// seconds, and [from, to) must keep its meaning for fractional bounds.
func ceilSecond(t time.Time) int64 {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return s
}

// FormatTime renders t as the database writes times: ISO 8601 to the second
// with the +08:00 offset.
func FormatTime(t time.Time) string { return formatTime(t) }

// OpenReadOnly opens the database for reading beside a running loader in
// shared mode (`loader stats`, `loader export`): one read-only connection, no
// writer lock, no migration. A database of another schema version is
// refused, and a loader in exclusive mode keeps it out (ErrLocked).
func OpenReadOnly(ctx context.Context, path string) (_ *DB, err error) {
	if err := checkFile(path); err != nil {
		return nil, err
	}
	readers, err := openReaders(path, DefaultLockTimeout)
	if isBusy(err) {
		return nil, fmt.Errorf("open database %s read-only: %w (%v)", path, ErrLocked, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open database %s read-only: %w", path, err)
	}
	readers.SetMaxOpenConns(1)
	db := &DB{path: path, sql: readers, logger: slog.New(slog.DiscardHandler), now: time.Now}
	defer func() {
		if err != nil {
			db.Close()
		}
	}()
	if db.conn, err = readers.Conn(ctx); err != nil {
		return nil, fmt.Errorf("open database %s read-only: %w", path, err)
	}
	var version int
	err = db.conn.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version)
	if isBusy(err) {
		return nil, fmt.Errorf("open database %s read-only: %w (%v)", path, ErrLocked, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open database %s read-only: %w", path, err)
	}
	if version != SchemaVersion() {
		return nil, fmt.Errorf("open database %s read-only: schema version %d, this build reads %d", path, version, SchemaVersion())
	}
	return db, nil
}
