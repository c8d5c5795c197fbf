package sqlite

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed/geo"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
)

// attrs are a lot's raw attribute strings, in lot_versions column order.
type attrs [13]string

const attrColumns = "area, name, type, summary, address, tel, pay_ex, service_time, tw97x, tw97y, total_car, total_motor, total_bike"

func attrsOf(r feed.LotRow) attrs {
	return attrs{r.Area, r.Name, r.Type, r.Summary, r.Address, r.Tel, r.PayEx, r.ServiceTime,
		r.TW97X, r.TW97Y, r.TotalCar, r.TotalMotor, r.TotalBike}
}

// lotState is a lot's state at one snapshot: present with attributes, or absent.
// Absent states always carry zero attributes so that == compares states.
type lotState struct {
	present bool
	a       attrs
}

var absent = lotState{}

// applyLots inserts a lots snapshot into the lot history at its fetch time and
// re-derives parking_lots for the lots whose history changed.
//
// lot_versions is the run-length encoding of each lot's state over the applied
// lots snapshots in fetch-time order. Inserting a snapshot at t only touches
// rows at t and at the next applied snapshot time: the state at t may now differ
// from t's predecessor (row at t), and the next snapshot's state must be compared
// with t's instead of with the predecessor (row at next). The result is the same
// whatever order the snapshots arrive in. At one second the greatest key wins.
func (a *applier) applyLots(ctx context.Context, x snapshot.Input, r *snapshot.Result) error {
	snap := map[string]attrs{}
	q := snapshot.Quality{Rows: len(x.Lots)}
	lq := &snapshot.LotsQuality{WithoutPositionByReason: map[string]int{}}
	q.Lots = lq
	for _, row := range x.Lots {
		id := strings.TrimSpace(row.ID)
		if id == "" {
			q.EmptyIDs++
			continue
		}
		if _, dup := snap[id]; dup {
			q.DuplicateIDs++
		}
		snap[id] = attrsOf(row) // The last row of an ID wins.
	}
	for _, at := range snap {
		if p := geo.Locate(at[8], at[9]); !p.OK {
			lq.LotsWithoutPosition++
			lq.WithoutPositionByReason[p.Note]++
		}
	}
	if len(lq.WithoutPositionByReason) == 0 {
		lq.WithoutPositionByReason = nil
	}
	lq.Active = len(snap)
	r.Quality = q
	if reason := shapeRefusal(feed.Lots, len(snap), feed.MissingLotColumns(x.Lots)); reason != "" {
		r.Outcome, r.Reason = snapshot.Refused, reason
		return nil
	}

	t := x.FetchedAt.UnixMilli()
	ts := formatMilli(t)
	nb, err := a.lotsNeighbours(ctx, t)
	if err != nil {
		return err
	}

	prev, err := a.statesBefore(ctx, ts)
	if err != nil {
		return err
	}
	activePrev := 0
	for id, s := range prev {
		if !s.present {
			continue
		}
		activePrev++
		now, ok := snap[id]
		if !ok {
			lq.Disappeared++
		} else if blanked(s.a, now) {
			lq.Blanked++
		}
	}
	for id := range snap {
		if !prev[id].present {
			lq.Appeared++
		}
	}
	r.Quality = q

	if nb.sameKey.Valid && nb.sameKey.String > x.Key {
		r.Outcome = snapshot.Superseded
		r.Reason = fmt.Sprintf("lots snapshot %s fetched in the same millisecond takes precedence", nb.sameKey.String)
		return nil
	}
	// The guard compares with the lots active at this snapshot's fetch time
	// (its predecessor in the history), as known when it arrives. A snapshot
	// accepted earlier is not re-judged if an older one arrives later and
	// would have made it look like a mass delete: refusal is a judgement on
	// arrival, and the invariance holds over the snapshots actually applied.
	if !x.AllowMassDelete && lq.Disappeared*2 > activePrev {
		r.Outcome = snapshot.Refused
		r.Reason = fmt.Sprintf("would remove %d of %d active lots (more than half); allow mass delete if this is real",
			lq.Disappeared, activePrev)
		return nil
	}
	if !x.AllowMassDelete && lq.Blanked*2 > activePrev {
		r.Outcome = snapshot.Refused
		r.Reason = fmt.Sprintf("would blank the name, district, address, coordinates or capacity of %d of %d active lots (more than half); "+
			"-allow-mass-delete applies it if it is real", lq.Blanked, activePrev)
		return nil
	}
	r.Outcome = snapshot.Applied
	if nb.newest.Valid && t < nb.newest.Int64 {
		r.Outcome = snapshot.Superseded
		r.Reason = "older than the newest applied lots snapshot (" + formatMilli(nb.newest.Int64) + "); history refined"
	}

	atT, err := a.statesAt(ctx, ts)
	if err != nil {
		return err
	}
	var nextTS string
	var atNext map[string]lotState
	if nb.next.Valid {
		nextTS = formatMilli(nb.next.Int64)
		if atNext, err = a.statesAt(ctx, nextTS); err != nil {
			return err
		}
	}

	candidates := map[string]bool{}
	for id := range snap {
		candidates[id] = true
	}
	for id, s := range prev {
		if s.present {
			candidates[id] = true
		}
	}
	for id := range atT {
		candidates[id] = true
	}
	for id := range atNext {
		candidates[id] = true
	}
	ids := make([]string, 0, len(candidates))
	for id := range candidates {
		ids = append(ids, id)
	}
	sort.Strings(ids)

	var affected []string
	for _, id := range ids {
		sPrev := prev[id]
		sT := absent
		if at, ok := snap[id]; ok {
			sT = lotState{present: true, a: at}
		}
		oldT, hadT := atT[id]
		if !hadT {
			oldT = sPrev
		}
		changed := 0
		n, err := a.setVersion(ctx, id, ts, sT, hadT, sT != sPrev, oldT)
		if err != nil {
			return err
		}
		changed += n
		if nb.next.Valid {
			sNext, hadNext := atNext[id]
			if !hadNext {
				sNext = oldT
			}
			n, err := a.setVersion(ctx, id, nextTS, sNext, hadNext, sNext != sT, sNext)
			if err != nil {
				return err
			}
			changed += n
		}
		if changed > 0 {
			r.Changed += changed
			affected = append(affected, id)
		}
	}
	n, err := a.deriveLots(ctx, affected)
	if err != nil {
		return err
	}
	r.Changed += n
	if len(affected) > 0 {
		a.knownLots = nil
	}
	return nil
}

// blankable are the attributes (indexes into attrs) whose loss a user sees at
// once: name, district, address, coordinates, car capacity.
var blankable = [...]int{1, 0, 4, 8, 9, 10}

// blanked reports whether a lot that had any of the blankable attributes
// has it empty now: what a feed answering the wrong columns does to every lot.
func blanked(before, now attrs) bool {
	for _, i := range blankable {
		if strings.TrimSpace(before[i]) != "" && strings.TrimSpace(now[i]) == "" {
			return true
		}
	}
	return false
}

// setVersion makes lot_versions hold a row (id, at) with state want iff
// wantRow, given whether a row existed and what it held. It returns the number
// of rows to be written or deleted; the writes are buffered and reach the
// table in multi-row statements at the next flushVersions, which every read
// of lot_versions in this package does first.
func (a *applier) setVersion(ctx context.Context, id, at string, want lotState, had, wantRow bool, old lotState) (int, error) {
	switch {
	case wantRow && (!had || old != want):
		a.versionRows = append(a.versionRows, id, at, want.present)
		for _, v := range want.a {
			a.versionRows = append(a.versionRows, v)
		}
		return 1, nil
	case !wantRow && had:
		a.versionDeletes = append(a.versionDeletes, id, at)
		return 1, nil
	}
	return 0, nil
}

// flushVersions writes the buffered lot_versions changes. A snapshot writes a
// given (lot, time) at most once, so the order of writes and deletes does not matter.
func (a *applier) flushVersions(ctx context.Context) error {
	if len(a.versionRows) > 0 {
		if _, err := a.execChunked(ctx, "INSERT OR REPLACE INTO lot_versions (parking_id, effective_at, present, "+attrColumns+") VALUES ",
			"", 3+len(attrs{}), a.versionRows); err != nil {
			return fmt.Errorf("write lot versions: %w", err)
		}
		a.versionRows = a.versionRows[:0]
	}
	if len(a.versionDeletes) > 0 {
		if _, err := a.execChunked(ctx, "DELETE FROM lot_versions WHERE (parking_id, effective_at) IN (VALUES ",
			")", 2, a.versionDeletes); err != nil {
			return fmt.Errorf("delete lot versions: %w", err)
		}
		a.versionDeletes = a.versionDeletes[:0]
	}
	return nil
}

// statesBefore returns every lot's state just before time ts: its latest
// version row before ts.
func (a *applier) statesBefore(ctx context.Context, ts string) (map[string]lotState, error) {
	// One primary-key seek per lot (every lot with versions has a parking_lots
	// row), so the cost does not grow with the length of the history.
	return a.queryStates(ctx, `SELECT v.parking_id, v.present, `+prefixed("v.", attrColumns)+`
		FROM parking_lots p
		JOIN lot_versions v ON v.parking_id = p.id AND v.effective_at =
		  (SELECT max(effective_at) FROM lot_versions WHERE parking_id = p.id AND effective_at < ?1)`, ts)
}

// statesAt returns the version rows at exactly ts.
func (a *applier) statesAt(ctx context.Context, ts string) (map[string]lotState, error) {
	return a.queryStates(ctx, `SELECT parking_id, present, `+attrColumns+` FROM lot_versions WHERE effective_at = ?1`, ts)
}

func (a *applier) queryStates(ctx context.Context, query string, args ...any) (map[string]lotState, error) {
	if err := a.flushVersions(ctx); err != nil {
		return nil, err
	}
	s, err := a.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	rows, err := s.QueryContext(ctx, args...)
	if err != nil {
		return nil, fmt.Errorf("read lot versions: %w", err)
	}
	defer rows.Close()
	out := map[string]lotState{}
	for rows.Next() {
		var id string
		var st lotState
		dest := []any{&id, &st.present}
		for i := range st.a {
			dest = append(dest, &st.a[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("read lot versions: %w", err)
		}
		if !st.present {
			st = absent
		}
		out[id] = st
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read lot versions: %w", err)
	}
	return out, nil
}

func prefixed(prefix, columns string) string {
	cols := strings.Split(columns, ", ")
	for i := range cols {
		cols[i] = prefix + cols[i]
	}
	return strings.Join(cols, ", ")
}

// lotColumns are parking_lots' columns after id, in upsert order.
var lotColumns = []string{"area", "name", "type", "summary", "address", "tel", "pay_ex", "service_time",
	"tw97x", "tw97y", "total_car", "total_motor", "total_bike", "created_at", "updated_at", "deleted_at",
	"lon", "lat", "coord_note"}

// upsertLotSQL returns the head and the tail of the parking_lots upsert, to
// go around execChunked's VALUES tuples. Unchanged rows are not rewritten,
// so the changed count is honest.
func upsertLotSQL() (head, tail string) {
	var set, differ []string
	for _, c := range lotColumns {
		set = append(set, c+" = excluded."+c)
		differ = append(differ, c+" IS NOT excluded."+c)
	}
	return "INSERT INTO parking_lots (id, " + strings.Join(lotColumns, ", ") + ") VALUES ",
		" ON CONFLICT (id) DO UPDATE SET " + strings.Join(set, ", ") + " WHERE " + strings.Join(differ, " OR ")
}

// deriveLot recomputes one lot's parking_lots row (see deriveLots).
func (a *applier) deriveLot(ctx context.Context, id string) (int, error) {
	return a.deriveLots(ctx, []string{id})
}

// deriveLots recomputes the parking_lots rows of ids from their history and
// returns how many rows changed. A row is a function of lot_versions alone:
// created_at is the first version (always a present one: nothing is written
// for a lot before it first appears), the attributes and updated_at come from
// the latest present version, deleted_at from the latest version if absent.
// Each lookup is a primary-key seek, independent of the history's length, and
// both the reads and the upserts go chunkRows lots at a time.
func (a *applier) deriveLots(ctx context.Context, ids []string) (int, error) {
	if err := a.flushVersions(ctx); err != nil {
		return 0, err
	}
	if a.upsertLot == "" {
		a.upsertLot, a.upsertLotTail = upsertLotSQL()
	}
	changed := 0
	for start := 0; start < len(ids); start += chunkRows {
		chunk := ids[start:min(start+chunkRows, len(ids))]
		rows, err := a.lotRows(ctx, chunk)
		if err != nil {
			return changed, err
		}
		var args []any
		var gone []any
		for _, id := range chunk {
			row, ok := rows[id]
			if !ok {
				// No versions left (not reachable through applyLots, kept for safety).
				gone = append(gone, id)
				continue
			}
			args = append(args, row...)
		}
		n, err := a.execChunked(ctx, a.upsertLot, a.upsertLotTail, 1+len(lotColumns), args)
		if err != nil {
			return changed, fmt.Errorf("derive lots: %w", err)
		}
		changed += n
		if len(gone) > 0 {
			n, err := a.execChunked(ctx, "DELETE FROM parking_lots WHERE id IN (VALUES ", ")", 1, gone)
			if err != nil {
				return changed, fmt.Errorf("derive lots: %w", err)
			}
			changed += n
		}
	}
	return changed, nil
}

// lotRows reads what parking_lots should hold for each of ids that has a
// history: the upsert's arguments, id first.
func (a *applier) lotRows(ctx context.Context, ids []string) (map[string][]any, error) {
	var q strings.Builder
	q.WriteString("WITH ids(id) AS (VALUES ")
	args := make([]any, len(ids))
	for i, id := range ids {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString("(?)")
		args[i] = id
	}
	q.WriteString(`)
		SELECT ids.id, (SELECT min(effective_at) FROM lot_versions WHERE parking_id = ids.id),
			l.effective_at, l.present, p.effective_at, ` + prefixed("p.", attrColumns) + `
		FROM ids
		JOIN lot_versions l ON l.parking_id = ids.id AND l.effective_at =
			(SELECT max(effective_at) FROM lot_versions WHERE parking_id = ids.id)
		JOIN lot_versions p ON p.parking_id = ids.id AND p.effective_at =
			(SELECT max(effective_at) FROM lot_versions WHERE parking_id = ids.id AND present = 1)`)
	s, err := a.stmt(ctx, q.String())
	if err != nil {
		return nil, err
	}
	rs, err := s.QueryContext(ctx, args...)
	if err != nil {
		return nil, fmt.Errorf("derive lots: %w", err)
	}
	defer rs.Close()
	out := make(map[string][]any, len(ids))
	for rs.Next() {
		var id, created, lastAt, updated string
		var lastPresent bool
		var latest attrs
		dest := []any{&id, &created, &lastAt, &lastPresent, &updated}
		for i := range latest {
			dest = append(dest, &latest[i])
		}
		if err := rs.Scan(dest...); err != nil {
			return nil, fmt.Errorf("derive lots: %w", err)
		}
		var deleted any
		if !lastPresent {
			deleted = lastAt
		}
		pos := geo.Locate(latest[8], latest[9])
		var lon, lat any
		if pos.OK {
			lon, lat = pos.Lon, pos.Lat
		}
		out[id] = []any{id,
			latest[0], latest[1], latest[2], latest[3], latest[4], latest[5], latest[6], latest[7],
			parseReal(latest[8]), parseReal(latest[9]),
			parseCount(latest[10]), parseCount(latest[11]), parseCount(latest[12]),
			created, updated, deleted, lon, lat, pos.Note}
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("derive lots: %w", err)
	}
	return out, nil
}

// parseReal returns the raw coordinate as a number, or NULL.
func parseReal(s string) any {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return nil
	}
	return f
}

// parseCount follows the original project: empty or not a number counts as 0.
func parseCount(s string) int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0
	}
	return n
}
