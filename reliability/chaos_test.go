package reliability

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/internal/dbtest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/feedtest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/logtest"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue/sqlitequeue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
)

func seed(t testing.TB) uint64 {
	s := *chaosSeed
	if s == 0 {
		s = uint64(time.Now().UnixNano())
	}
	t.Logf("chaos seed %d (replay with -chaos.seed=%d)", s, s)
	return s
}

// history is a generated run of the feeds: lots versions with additions,
// removals, renames and capacity changes, and availability snapshots with
// varied values (unknowns included), at spread-out fetch times.
type history struct {
	snaps []*snapshot.Snapshot
	rows  []int
}

func genHistory(rng *rand.Rand, lotsVersions, availability int) history {
	var pool []feed.LotRow
	seen := map[string]bool{}
	for _, l := range feedtest.SampleLots() {
		if !seen[l.ID] {
			seen[l.ID] = true
			pool = append(pool, l)
		}
	}
	current := map[string]feed.LotRow{}
	next := 0
	for ; next < 50; next++ {
		current[pool[next].ID] = pool[next]
	}
	var h history
	start := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	span := time.Duration(availability) * 3 * time.Minute
	ids := func() []string {
		var out []string
		for id := range current {
			out = append(out, id)
		}
		// Map order is random; sort for a deterministic history per seed.
		sortStrings(out)
		return out
	}
	for v := range lotsVersions {
		if v > 0 {
			// At most ~10% changes a version, under the mass-delete guard.
			for range rng.IntN(3) {
				ids := ids()
				delete(current, ids[rng.IntN(len(ids))])
			}
			for range rng.IntN(3) {
				l := pool[next%len(pool)]
				next++
				current[l.ID] = l
			}
			for range rng.IntN(4) {
				ids := ids()
				l := current[ids[rng.IntN(len(ids))]]
				l.Name = fmt.Sprintf("%s (v%d)", strings.SplitN(l.Name, " (v", 2)[0], v)
				l.TotalCar = fmt.Sprint(rng.IntN(500))
				current[l.ID] = l
			}
		}
		at := start.Add(time.Duration(v) * span / time.Duration(lotsVersions)).Add(time.Duration(rng.IntN(60)) * time.Second)
		var rows []feed.LotRow
		for _, id := range ids() {
			rows = append(rows, current[id])
		}
		h.snaps = append(h.snaps, lotsSnapshot(at, rows))
		h.rows = append(h.rows, len(rows))
		// Availability until the next lots version, over the lots of this one.
		per := availability / lotsVersions
		if v == lotsVersions-1 {
			per = availability - per*(lotsVersions-1)
		}
		for i := range per {
			at := at.Add(time.Duration(i+1)*3*time.Minute + time.Duration(rng.IntN(50))*time.Second)
			var av []feed.AvailabilityRow
			for _, id := range ids() {
				val := fmt.Sprint(rng.IntN(300))
				switch p := rng.Float64(); {
				case p < 0.5:
					val = "-9"
				case p < 0.55:
					val = []string{"-3", "-6", "", "n/a"}[rng.IntN(4)]
				}
				av = append(av, feed.AvailabilityRow{ID: id, AvailableCar: val})
			}
			h.snaps = append(h.snaps, availabilitySnapshot(at, av))
			h.rows = append(h.rows, len(av))
		}
	}
	return h
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// publishAll stores every snapshot and returns their messages in fetch order.
func publishAll(t testing.TB, st store.Store, h history) [][]byte {
	t.Helper()
	bodies := make([][]byte, len(h.snaps))
	for i, s := range h.snaps {
		bodies[i] = publish(t, st, s, h.rows[i])
	}
	return bodies
}

// cleanDump applies the messages once each, in order, into a fresh database.
func cleanDump(t testing.TB, st store.Store, bodies [][]byte) string {
	t.Helper()
	dir := t.TempDir()
	q, err := sqlitequeue.Open(context.Background(), filepath.Join(dir, "clean-queue.db"), sqlitequeue.Options{MaxReceive: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	send(t, q, bodies...)
	db := filepath.Join(dir, "clean.db")
	drainInto(t, db, "", q, st, &logtest.Buffer{}, nil)
	return dbtest.Dump(t, db)
}

// deliveries returns every body one to three times, shuffled: old lots
// snapshots arrive after newer ones, and copies arrive far apart.
func deliveries(rng *rand.Rand, bodies [][]byte) (out [][]byte, extra int) {
	for _, b := range bodies {
		n := 1 + rng.IntN(3)
		extra += n - 1
		for range n {
			out = append(out, b)
		}
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out, extra
}

// TestChaosDuplicatesAndReorder: every message delivered one to three times
// in random order; the database equals a single clean in-order run.
func TestChaosDuplicatesAndReorder(t *testing.T) {
	forEachLocking(t, testChaosDuplicatesAndReorder)
}

func testChaosDuplicatesAndReorder(t *testing.T, mode sqlite.Locking) {
	rng := rand.New(rand.NewPCG(seed(t), 2))
	w := newWorld(t)
	h := genHistory(rng, 40, 260)
	bodies := publishAll(t, w.store, h)
	want := cleanDump(t, w.store, bodies)
	total, extras, superseded, lost := 0, 0, 0, 0
	for it := range *chaosIterations {
		w2 := newWorld(t)
		w2.store = w.store
		w2.locking = mode
		shuffled, extra := deliveries(rng, bodies)
		send(t, w2.queue, shuffled...)
		w2.drain(nil)
		w2.queueEmpty()
		got := dbtest.Dump(t, w2.db)
		if got != want {
			t.Fatalf("iteration %d: the database differs from the clean run\n%s", it, diff(want, got))
		}
		lost += lostRows(want, got)
		if n := dbtest.Count(t, w2.db, "snapshots", ""); n != len(bodies) {
			t.Fatalf("iteration %d: ledger holds %d snapshots, want %d", it, n, len(bodies))
		}
		if n := dbtest.Count(t, w2.db, "rejections", ""); n != 0 {
			t.Fatalf("iteration %d: %d rejections", it, n)
		}
		// Every delivery is a first apply, a copy acknowledged as already
		// applied, or a refusal: a lots snapshot judged on arrival (the
		// mass-delete guard) may be refused while its predecessor in time has
		// not arrived yet, and a later copy then applies.
		logs := w2.logs.String()
		acks := strings.Count(logs, "already applied; acknowledging") + strings.Count(logs, `"already_applied":true`)
		refusals := strings.Count(logs, `"msg":"snapshot refused"`)
		fresh := dbtest.Count(t, w2.db, "snapshots", "outcome <> 'refused'")
		if fresh+acks+refusals != len(shuffled) || acks > extra {
			t.Errorf("iteration %d: %d deliveries, but %d first applies + %d acknowledged copies + %d refusals (%d copies delivered)",
				it, len(shuffled), fresh, acks, refusals, extra)
		}
		total += len(shuffled)
		extras += extra
		superseded += dbtest.Count(t, w2.db, "snapshots", "outcome = 'superseded'")
	}
	report(t, "duplicates (%s): iterations=%d snapshots=%d deliveries=%d duplicate_deliveries=%d superseded_lots=%d rows_lost=%d",
		mode, *chaosIterations, len(bodies), total, extras, superseded, lost)
}

// diff shows the first differing lines of two dumps.
func diff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	n := 0
	for i := 0; i < max(len(wl), len(gl)) && n < 10; i++ {
		var a, c string
		if i < len(wl) {
			a = wl[i]
		}
		if i < len(gl) {
			c = gl[i]
		}
		if a != c {
			fmt.Fprintf(&b, "line %d\n  clean: %.300s\n  chaos: %.300s\n", i, a, c)
			n++
		}
	}
	return b.String()
}

// loaderEnv is the environment of a loader subprocess on the given backends.
func loaderEnv(dir, storeURL, queueURL string, extra ...string) []string {
	return baseEnv(append([]string{
		"PARKING_STORE=" + storeURL,
		"PARKING_QUEUE=" + queueURL,
		"PARKING_DB=" + filepath.Join(dir, "parking.db"),
		"PARKING_LATEST_JSON=" + filepath.Join(dir, "availability.json"),
		"PARKING_GEOJSON=" + filepath.Join(dir, "lots.geojson"),
		// A killed loader's messages come back 2s later (the minimum). A
		// drain stops as soon as nothing is visible: killUntilDrained waits
		// for them before the next run.
		"PARKING_VISIBILITY=2s",
		"PARKING_POLL_WAIT=3s",
	}, extra...)...)
}

type killStats struct {
	runs, kills, applied int
	redriven             int
}

// killUntilDrained runs `loader serve -drain` again and again, SIGKILLing
// it after a random number of applied snapshots, until at least minKills
// kills happened and a run ends by itself with exit 0 with the queue settled.
// settled reports whether the queue is empty, in flight included; it may
// first redrive messages that the queue's redrive policy moved aside after
// too many receives by killed loaders (what an operator would do), and
// returns how many. A drain stops as soon as nothing is visible, so when a
// killed run's messages are still in flight, settled may wait for them to
// come back before the next run (untilVisible); otherwise the next runs
// find nothing until they do.
func killUntilDrained(t *testing.T, rng *rand.Rand, env []string, minKills, maxPerRun int, settled func() (int, bool)) (killStats, []string) {
	var st killStats
	var logs []string
	for st.runs = 1; st.runs < 500; st.runs++ {
		p := start(t, env, "loader", "serve", "-drain")
		if _, ok := p.next(t, "loader started"); !ok {
			t.Fatalf("run %d: the loader ended before it started (exit %d); log:\n%s", st.runs, p.exit(t), p.log())
		}
		killAfter := -1
		if st.kills < minKills {
			killAfter = rng.IntN(maxPerRun + 1)
		}
		ended := false
		for n := 0; killAfter < 0 || n < killAfter; n++ {
			if _, ok := p.next(t, `"msg":"snapshot `); !ok {
				ended = true
				break
			}
			st.applied++
		}
		if !ended && p.cmd.Process.Kill() == nil {
			st.kills++
			p.exit(t)
			logs = append(logs, p.log())
			continue
		}
		if code := p.exit(t); code != 0 {
			t.Fatalf("run %d: the loader exited %d; log:\n%s", st.runs, code, p.log())
		}
		logs = append(logs, p.log())
		if strings.Contains(p.log(), `"level":"ERROR"`) {
			t.Fatalf("run %d logged an error:\n%s", st.runs, p.log())
		}
		n, empty := settled()
		st.redriven += n
		if st.kills >= minKills && empty {
			return st, logs
		}
	}
	t.Fatalf("not drained after %d runs", st.runs)
	return st, logs
}

// TestChaosKillLoader: SIGKILL the real loader at random moments while it
// applies a few hundred snapshots, restart it each time; the database equals
// a single clean run.
func TestChaosKillLoader(t *testing.T) {
	forEachLocking(t, testChaosKillLoader)
}

func testChaosKillLoader(t *testing.T, mode sqlite.Locking) {
	rng := rand.New(rand.NewPCG(seed(t), 1))
	w := newWorld(t)
	h := genHistory(rng, 30, 220)
	bodies := publishAll(t, w.store, h)
	want := cleanDump(t, w.store, bodies)
	var total killStats
	lost := 0
	for it := range *chaosIterations {
		dir := t.TempDir()
		qpath := filepath.Join(dir, "queue.db")
		q, err := sqlitequeue.Open(context.Background(), qpath, sqlitequeue.Options{MaxReceive: -1})
		if err != nil {
			t.Fatal(err)
		}
		// Arrival order is shuffled too: kills then also land among late lots.
		shuffled := append([][]byte{}, bodies...)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		send(t, q, shuffled...)
		env := loaderEnv(dir, "file://"+w.store.Dir(), "sqlite://"+qpath, "PARKING_DB_LOCKING="+string(mode))
		st, logs := killUntilDrained(t, rng, env, 20, 12, func() (int, bool) {
			n, err := q.Redrive(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			counts := func() (int, int) {
				v, f, err := q.Len(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				return v, f
			}
			v, f := counts()
			untilVisible(t, v, f, counts)
			return n, n == 0 && v+f == 0
		})
		q.Close()
		checkLocking(t, logs[0], mode)
		db := filepath.Join(dir, "parking.db")
		got := dbtest.Dump(t, db)
		if got != want {
			t.Fatalf("iteration %d: after %d kills the database differs from the clean run\n%s", it, st.kills, diff(want, got))
		}
		lost += lostRows(want, got)
		if n := dbtest.Count(t, db, "snapshots", ""); n != len(bodies) {
			t.Fatalf("iteration %d: ledger holds %d snapshots, want %d", it, n, len(bodies))
		}
		total.runs += st.runs
		total.kills += st.kills
		total.redriven += st.redriven
	}
	report(t, "kill (%s): iterations=%d snapshots=%d runs=%d sigkills=%d redriven=%d rows_lost=%d",
		mode, *chaosIterations, len(bodies), total.runs, total.kills, total.redriven, lost)
}

var _ queue.Queue = (*sqlitequeue.Queue)(nil)

// untilVisible returns once messages that a killed loader left in flight
// are visible again (their visibility timeout ran out) or gone, so that the
// next drain finds them; visible and inFlight are the queue's counts now,
// counts reads them again. The queue's state changes with time alone (no
// event tells when), so it is polled, with a deadline.
func untilVisible(t testing.TB, visible, inFlight int, counts func() (visible, inFlight int)) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for visible == 0 && inFlight > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d messages still in flight after %s", inFlight, guard)
		}
		time.Sleep(50 * time.Millisecond)
		visible, inFlight = counts()
	}
}
