package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/internal/dbtest"
	"github.com/parking-newtaipei/parking-newtaipei/shared/clock"
	"github.com/parking-newtaipei/parking-newtaipei/shared/extract"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/load/consume"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
)

const hostileDir = "testdata/hostile"

// Times of the hostile cases: the base state is applied at t0, a case's
// snapshot is fetched later so it is the newest of its dataset.
var (
	t0         = time.Date(2026, 9, 20, 2, 0, 0, 0, time.UTC)
	tCase      = t0.Add(10 * time.Minute)
	tTemplate  = t0.Add(20 * time.Minute)
	tObjectKey = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) // the fetch time inside the object-* files
)

// repeatDirective lets a corpus file say "a megabyte of this" without
// holding a megabyte: {{repeat:N:S}} expands to S repeated N times.
var repeatDirective = regexp.MustCompile(`\{\{repeat:(\d+):([^}]*)\}\}`)

// randomDirective: {{random:N:ALPHABET}} expands to N characters drawn
// deterministically from ALPHABET, text that does not compress away.
var randomDirective = regexp.MustCompile(`\{\{random:(\d+):([^}]*)\}\}`)

// numberedDirective: {{numbered:N:TEXT}} expands to TEXT N times, each '#'
// in it replaced by the copy's zero-padded number: N distinct rows.
var numberedDirective = regexp.MustCompile(`\{\{numbered:(\d+):(.*?)\}\}`)

func readCase(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(hostileDir, name))
	if err != nil {
		t.Fatalf("read corpus case: %v", err)
	}
	b = numberedDirective.ReplaceAllFunc(b, func(m []byte) []byte {
		sub := numberedDirective.FindSubmatch(m)
		n, _ := strconv.Atoi(string(sub[1]))
		var sb strings.Builder
		for i := range n {
			sb.WriteString(strings.ReplaceAll(string(sub[2]), "#", fmt.Sprintf("%0*d", len(sub[1]), i)))
		}
		return []byte(sb.String())
	})
	b = repeatDirective.ReplaceAllFunc(b, func(m []byte) []byte {
		sub := repeatDirective.FindSubmatch(m)
		n, _ := strconv.Atoi(string(sub[1]))
		return []byte(strings.Repeat(string(sub[2]), n))
	})
	return randomDirective.ReplaceAllFunc(b, func(m []byte) []byte {
		sub := randomDirective.FindSubmatch(m)
		n, _ := strconv.Atoi(string(sub[1]))
		alphabet := []rune(string(sub[2]))
		rng := rand.New(rand.NewPCG(uint64(n), uint64(len(alphabet))))
		var sb strings.Builder
		for range n {
			sb.WriteRune(alphabet[rng.IntN(len(alphabet))])
		}
		return []byte(sb.String())
	})
}

func baseLots(t testing.TB) []feed.LotRow {
	t.Helper()
	rows, err := feed.ParseLots(feed.JSON, readCase(t, "base-lots.json"))
	if err != nil {
		t.Fatalf("base lots: %v", err)
	}
	return rows
}

func baseAvailability(t testing.TB) []feed.AvailabilityRow {
	t.Helper()
	rows, err := feed.ParseAvailability(feed.JSON, readCase(t, "base-availability.json"))
	if err != nil {
		t.Fatalf("base availability: %v", err)
	}
	return rows
}

// outcome is everything a hostile case may be judged by.
type outcome struct {
	w             *world
	key           string   // the case's snapshot key, when it has one
	deadLetters   []string // reasons, from the queue's dead-letter table
	rejections    []string // reasons, from the database's rejections table
	ledger        [][]string
	before, after string
}

type hostileCase struct {
	file string
	// kind: how the file enters the pipeline.
	//   lots, availability: a response body inside a well-formed snapshot
	//   object: the stored object's bytes, announced with a correct checksum
	//   message: the queue message (a template filled from a stored snapshot)
	//   misnamed: an availability body inside a well-formed snapshot, stored
	//     under the key rename gives it, announced with the snapshot's own
	//     checksum, size and fetch time
	//   future: an availability body inside a well-formed snapshot fetched a
	//     year after the store writes it (the store's write time is the
	//     real clock's)
	kind string
	// rename is the key a misnamed snapshot is stored under, given the
	// snapshot's own fetch time and SHA-256.
	rename func(fetchedAt time.Time, sum string) string
	// maxObject overrides the loader's object size cap.
	maxObject int64
	// deadLetter: the message must be dead-lettered with a reason containing
	// each of these; the database's rejections table must say the same.
	deadLetter []string
	// refused: the ledger must hold the key as refused with this reason.
	refused string
	// rejected: the refusal is also in the rejections table, once (the
	// message itself is handled, not dead-lettered).
	rejected bool
	// unchanged: the user-facing tables must be byte-identical afterwards.
	unchanged bool
	// check asserts the applied data.
	check func(t *testing.T, o *outcome)
}

func hostileCases() []hostileCase {
	return []hostileCase{
		{file: "lots-waf-page-200.html", kind: "lots", deadLetter: []string{"unparseable", "Request Rejected"}, unchanged: true},
		{file: "lots-empty-array.json", kind: "lots", refused: "no lots rows", unchanged: true},
		{file: "lots-drop-90-percent.json", kind: "lots", refused: "would remove 18 of 20 active lots", unchanged: true},
		{file: "lots-truncated-json.json", kind: "lots", deadLetter: []string{"unparseable"}, unchanged: true},
		{file: "lots-not-an-array.json", kind: "lots", deadLetter: []string{"unparseable"}, unchanged: true},
		// The parser refuses the whole body rather than store a mangled name.
		{file: "lots-invalid-utf8.json", kind: "lots", deadLetter: []string{"unparseable", "value of NAME: invalid UTF-8"}, unchanged: true},
		{file: "lots-duplicate-ids-conflicting.json", kind: "lots", check: checkDuplicateLots},
		{file: "lots-sql-metacharacters.json", kind: "lots", check: checkSQLMetacharacters},
		{file: "lots-megabyte-strings.json", kind: "lots", check: checkMegabyteStrings},
		// A megabyte of one repeated character compresses ~1000x; under
		// snapshot.RatioFloor that is no bomb, and the lot is stored whole
		// (found by this corpus: it used to be dead-lettered as a bomb).
		{file: "lots-megabyte-repeated-string.json", kind: "lots", check: checkRepeatedString},
		{file: "lots-negative-and-nonnumeric-counts.json", kind: "lots", check: checkCounts},
		{file: "lots-coordinate-garbage.json", kind: "lots", check: checkCoordinates},
		{file: "availability-negative-and-nonnumeric.json", kind: "availability", check: checkAvailabilityValues},
		{file: "availability-megabyte-id.json", kind: "availability", deadLetter: []string{"unparseable", "ID"}, unchanged: true},
		{file: "availability-empty-array.json", kind: "availability", refused: "no availability rows", unchanged: true},
		{file: "availability-duplicate-ids-conflicting.json", kind: "availability", check: checkDuplicateAvailability},
		{file: "availability-unknown-lot-ids.json", kind: "availability", check: checkUnknownLotIDs},
		{file: "availability-sql-metacharacters-id.json", kind: "availability", deadLetter: []string{"unparseable"}, unchanged: true},
		{file: "object-decompression-bomb.gz", kind: "object", deadLetter: []string{"corrupt snapshot", "decompression bomb"}, unchanged: true},
		{file: "object-truncated-gzip.gz", kind: "object", deadLetter: []string{"corrupt snapshot", "unexpected EOF"}, unchanged: true},
		{file: "object-not-gzip.json", kind: "object", deadLetter: []string{"corrupt snapshot", "not gzip"}, unchanged: true},
		{file: "object-snapshot-version-from-future.gz", kind: "object", deadLetter: []string{"snapshot version 7 is not supported"}, unchanged: true},
		{file: "object-snapshot-unknown-dataset.gz", kind: "object", deadLetter: []string{"corrupt snapshot", `"parking"`}, unchanged: true},
		{file: "object-snapshot-wrong-format.gz", kind: "object", deadLetter: []string{"corrupt snapshot", "someone-else/snapshot"}, unchanged: true},
		{file: "object-trailing-document.gz", kind: "object", deadLetter: []string{"corrupt snapshot", "trailing data"}, unchanged: true},
		{file: "object-truncated-gzip.gz", kind: "object", maxObject: 64, deadLetter: []string{"object too large"}, unchanged: true},
		{file: "message-version-from-future.json", kind: "message", deadLetter: []string{"invalid message", "version 2 is newer than this loader understands"}, unchanged: true},
		{file: "message-unknown-dataset.json", kind: "message", deadLetter: []string{"invalid message", `"parking"`}, unchanged: true},
		{file: "message-checksum-mismatch.json", kind: "message", deadLetter: []string{"checksum mismatch"}, unchanged: true},
		{file: "message-key-outside-prefix.json", kind: "message", deadLetter: []string{"location outside the configured store"}, unchanged: true},
		{file: "message-path-traversal-key.json", kind: "message", deadLetter: []string{"location outside the configured store"}, unchanged: true},
		{file: "message-another-bucket.json", kind: "message", deadLetter: []string{"location outside the configured store", "someone-elses-bucket"}, unchanged: true},
		{file: "message-oversized-size.json", kind: "message", deadLetter: []string{"invalid message", "size 33554433 is outside"}, unchanged: true},
		{file: "message-unknown-field.json", kind: "message", deadLetter: []string{"invalid message", `unknown field "admin"`}, unchanged: true},
		{file: "message-dataset-mismatch.json", kind: "message", deadLetter: []string{"message says dataset lots but key"}, unchanged: true},
		{file: "message-fetched-at-mismatch.json", kind: "message", deadLetter: []string{"message says 2020-01-01T00:00:00Z"}, unchanged: true},
		{file: "message-not-json.txt", kind: "message", deadLetter: []string{"invalid message", "not a JSON object"}, unchanged: true},
		{file: "message-trailing-data.json", kind: "message", deadLetter: []string{"invalid message", "after top-level value"}, unchanged: true},
		// A key that does not match its content would hide the snapshot from
		// every time-range listing (backfill, replay): refused (issue 13, item 9).
		{file: "key-time-not-the-fetch-time.json", kind: "misnamed", rename: func(at time.Time, sum string) string {
			return snapshot.Key(feed.Availability, at.Add(-time.Hour), sum)
		}, deadLetter: []string{"says fetched at 2026-09-20T01:10:00Z", "message says 2026-09-20T02:10:00Z"}, unchanged: true},
		{file: "key-hash-not-the-checksum.json", kind: "misnamed", rename: func(at time.Time, sum string) string {
			return snapshot.Key(feed.Availability, at, strings.Repeat("0", 64))
		}, deadLetter: []string{"checksum mismatch", "carries 0000000000000000"}, unchanged: true},
		// Issue 13, item 1: a fetch time a year ahead used to be applied and
		// freeze the latest values until that date.
		{file: "availability-fetched-a-year-ahead.json", kind: "future", refused: "after the store wrote it", rejected: true,
			unchanged: true, check: checkRealSnapshotsStillApply},
		// Issue 13, item 2: the wrong content at the lots URL used to blank every lot.
		{file: "lots-availability-rows.json", kind: "lots", refused: "no row has a value for NAME, AREA, ADDRESS, TW97X, TW97Y, TOTALCAR: not the lots feed", unchanged: true},
		{file: "lots-without-names-and-coordinates.json", kind: "lots", refused: "no row has a value for NAME, TW97X, TW97Y", unchanged: true},
		{file: "lots-blank-majority.json", kind: "lots", refused: "would blank the name, district, address, coordinates or capacity of 11 of 20 active lots", unchanged: true},
		{file: "availability-empty-values.json", kind: "availability", refused: "no row has a value for AVAILABLECAR", unchanged: true},
		// Issue 13, item 3: 65,500 invented IDs used to fill the 16-bit lot
		// ordinal, and every later snapshot with a new lot failed for ever.
		{file: "availability-lot-id-flood.json", kind: "availability", refused: "would add 65500 lot IDs seen in neither feed before",
			unchanged: true, check: checkNewLotsStillApply},
	}
}

// TestHostileCorpus feeds every corpus case through the real consume loop,
// store, queue and database, on top of an applied base state, and asserts
// the specific outcome of each.
func TestHostileCorpus(t *testing.T) {
	cases := hostileCases()
	seen := map[string]bool{}
	for _, c := range cases {
		seen[c.file] = true
	}
	entries, err := os.ReadDir(hostileDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !seen[e.Name()] && !strings.HasPrefix(e.Name(), "base-") {
			t.Errorf("corpus file %s has no case in the table", e.Name())
		}
	}
	for _, c := range cases {
		name := strings.TrimSuffix(c.file, filepath.Ext(c.file))
		if c.maxObject > 0 {
			name += "-over-size-cap"
		}
		t.Run(name, func(t *testing.T) { runHostile(t, c) })
	}
}

func runHostile(t *testing.T, c hostileCase) {
	w := newWorld(t)
	ctx := context.Background()
	send(t, w.queue,
		publish(t, w.store, lotsSnapshot(t0, baseLots(t)), 20),
		publish(t, w.store, availabilitySnapshot(t0.Add(time.Minute), baseAvailability(t)), 20))
	w.drain(nil)
	o := &outcome{w: w, before: dbtest.Dump(t, w.db)}

	raw := readCase(t, c.file)
	var body []byte
	switch c.kind {
	case "lots", "availability":
		d := feed.Dataset(c.kind)
		body = publish(t, w.store, bodySnapshot(d, tCase, raw), 0)
		m, err := queue.DecodeMessage(body)
		if err != nil {
			t.Fatal(err)
		}
		o.key = m.Key
	case "object":
		sum := sha256hex(raw)
		o.key = snapshot.Key(feed.Availability, tObjectKey, sum)
		loc, err := w.store.Put(ctx, o.key, raw, store.Meta{Dataset: "availability", FetchedAt: tObjectKey, SHA256: sum, FormatVersion: 1})
		if err != nil {
			t.Fatalf("store the object: %v", err)
		}
		body, err = json.Marshal(queue.Message{Version: 1, Dataset: feed.Availability, Key: loc.Key, SHA256: sum,
			Size: int64(len(raw)), FetchedAt: tObjectKey, Rows: 1})
		if err != nil {
			t.Fatal(err)
		}
	case "misnamed":
		res, data, err := extract.Prepare(bodySnapshot(feed.Availability, tCase, raw), 2)
		if err != nil {
			t.Fatal(err)
		}
		o.key = c.rename(res.FetchedAt, res.SHA256)
		loc, err := w.store.Put(ctx, o.key, data, store.Meta{Dataset: "availability", FetchedAt: res.FetchedAt, SHA256: res.SHA256, FormatVersion: 1})
		if err != nil {
			t.Fatalf("store the object: %v", err)
		}
		if body, err = queue.EncodeMessage(extract.Message(res, loc)); err != nil {
			t.Fatal(err)
		}
	case "future":
		body = publish(t, w.store, bodySnapshot(feed.Availability, time.Now().AddDate(1, 0, 0), raw), 0)
		m, err := queue.DecodeMessage(body)
		if err != nil {
			t.Fatal(err)
		}
		o.key = m.Key
	case "message":
		valid := publish(t, w.store, availabilitySnapshot(tTemplate, baseAvailability(t)), 20)
		m, err := queue.DecodeMessage(valid)
		if err != nil {
			t.Fatal(err)
		}
		o.key = m.Key
		body = []byte(strings.NewReplacer("{{DATASET}}", string(m.Dataset), "{{KEY}}", m.Key, "{{SHA}}", m.SHA256,
			"{{SIZE}}", strconv.FormatInt(m.Size, 10), "{{FETCHED}}", m.FetchedAt.Format(time.RFC3339Nano)).Replace(string(raw)))
	default:
		t.Fatalf("unknown kind %q", c.kind)
	}
	send(t, w.queue, body)
	w.drain(func(cfg *consume.Config) {
		if c.maxObject > 0 {
			cfg.MaxObjectBytes = c.maxObject
		}
	})
	w.queueEmpty()

	dls, err := w.queue.DeadLetters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dls {
		o.deadLetters = append(o.deadLetters, d.Reason)
	}
	for _, r := range dbtest.Query(t, w.db, "SELECT reason FROM rejections ORDER BY rowid") {
		o.rejections = append(o.rejections, r[0])
	}
	o.ledger = dbtest.Query(t, w.db, "SELECT outcome, reason, quality FROM snapshots WHERE key = ?", o.key)
	o.after = dbtest.Dump(t, w.db)

	if c.deadLetter != nil {
		if len(o.deadLetters) != 1 || len(o.rejections) != 1 {
			t.Fatalf("dead letters %q, rejections %q; want one of each\nlogs:\n%s", o.deadLetters, o.rejections, w.logs)
		}
		for _, s := range c.deadLetter {
			if !strings.Contains(o.deadLetters[0], s) {
				t.Errorf("dead-letter reason %q does not say %q", o.deadLetters[0], s)
			}
			if !strings.Contains(o.rejections[0], s) {
				t.Errorf("recorded rejection %q does not say %q", o.rejections[0], s)
			}
		}
		if len(o.ledger) != 0 {
			t.Errorf("a refused message reached the ledger: %v", o.ledger)
		}
	} else if len(o.deadLetters) != 0 || !c.rejected && len(o.rejections) != 0 {
		t.Fatalf("dead-lettered %q (rejections %q); want it handled\nlogs:\n%s", o.deadLetters, o.rejections, w.logs)
	}
	if c.rejected && (len(o.rejections) != 1 || !strings.Contains(o.rejections[0], c.refused)) {
		t.Errorf("rejections %q; want the refusal once, saying %q", o.rejections, c.refused)
	}
	if c.refused != "" {
		if len(o.ledger) != 1 || o.ledger[0][0] != "refused" || !strings.Contains(o.ledger[0][1], c.refused) {
			t.Errorf("ledger row %v; want refused with a reason containing %q", o.ledger, c.refused)
		}
		if !strings.Contains(w.logs.String(), c.refused) {
			t.Errorf("the log does not say %q", c.refused)
		}
	}
	if c.deadLetter == nil && c.refused == "" {
		if len(o.ledger) != 1 || o.ledger[0][0] != "applied" {
			t.Fatalf("ledger row %v; want applied\nlogs:\n%s", o.ledger, w.logs)
		}
	}
	if c.unchanged && o.after != o.before {
		t.Errorf("the user-facing tables changed:\nbefore:\n%.1500s\nafter:\n%.1500s", o.before, o.after)
	}
	// Whatever the input, the schema is intact: every table still answers.
	for _, table := range append(dbtest.Tables, "snapshots", "rejections", "lot_ids") {
		dbtest.Count(t, w.db, table, "")
	}
	if c.check != nil {
		c.check(t, o)
	}
}

// lot returns one parking_lots row as column -> value.
func lot(t *testing.T, o *outcome, id string) map[string]string {
	t.Helper()
	cols := []string{"name", "address", "summary", "pay_ex", "total_car", "total_motor", "tw97x", "tw97y", "lon", "lat", "coord_note", "deleted_at"}
	rows := dbtest.Query(t, o.w.db, "SELECT "+strings.Join(cols, ", ")+" FROM parking_lots WHERE id = ?", id)
	if len(rows) != 1 {
		t.Fatalf("lot %s: %d rows", id, len(rows))
	}
	m := map[string]string{}
	for i, c := range cols {
		m[c] = rows[0][i]
	}
	return m
}

func quality(t *testing.T, o *outcome) map[string]any {
	t.Helper()
	var q map[string]any
	if err := json.Unmarshal([]byte(o.ledger[0][2]), &q); err != nil {
		t.Fatalf("ledger quality %q: %v", o.ledger[0][2], err)
	}
	return q
}

func checkDuplicateLots(t *testing.T, o *outcome) {
	base := baseLots(t)
	l := lot(t, o, base[3].ID)
	if l["name"] != "第二版名稱" || l["total_car"] != "0" {
		t.Errorf("duplicate ID %s stored as %q/%s; want the last row (第二版名稱, 0)", base[3].ID, l["name"], l["total_car"])
	}
	if q := quality(t, o); q["duplicate_ids"] != 1.0 {
		t.Errorf("quality duplicate_ids = %v, want 1", q["duplicate_ids"])
	}
}

func checkSQLMetacharacters(t *testing.T, o *outcome) {
	base := baseLots(t)
	if got := lot(t, o, base[0].ID)["name"]; got != "'); DROP TABLE parking_lots;--" {
		t.Errorf("name stored as %q", got)
	}
	if got := lot(t, o, base[1].ID)["address"]; got != `" OR 1=1; DELETE FROM snapshots WHERE ""="` {
		t.Errorf("address stored as %q", got)
	}
	if got := lot(t, o, base[2].ID)["summary"]; got != `%_\'; ATTACH DATABASE '/tmp/x' AS x;--` {
		t.Errorf("summary stored as %q", got)
	}
	if n := dbtest.Count(t, o.w.db, "parking_lots", "deleted_at IS NULL"); n != 20 {
		t.Errorf("active lots = %d, want 20", n)
	}
	if n := dbtest.Count(t, o.w.db, "snapshots", ""); n != 3 {
		t.Errorf("ledger rows = %d, want 3", n)
	}
}

func checkMegabyteStrings(t *testing.T, o *outcome) {
	base := baseLots(t)
	l0 := dbtest.Query(t, o.w.db, "SELECT length(name) FROM parking_lots WHERE id = ?", base[0].ID)
	l1 := dbtest.Query(t, o.w.db, "SELECT length(pay_ex) FROM parking_lots WHERE id = ?", base[1].ID)
	if l0[0][0] != "1048576" || l1[0][0] != "1048576" {
		t.Errorf("megabyte strings stored with lengths %s and %s characters; want 1048576 each, whole", l0[0][0], l1[0][0])
	}
}

func checkRepeatedString(t *testing.T, o *outcome) {
	base := baseLots(t)
	l := dbtest.Query(t, o.w.db, "SELECT length(name) FROM parking_lots WHERE id = ?", base[0].ID)
	if len(l) != 1 || l[0][0] != "1048576" {
		t.Errorf("a megabyte of one repeated character stored as %v characters; want 1048576, whole", l)
	}
}

func checkCounts(t *testing.T, o *outcome) {
	base := baseLots(t)
	for i, want := range []struct{ col, val string }{
		// A negative capacity is a number and is kept as the feed said it
		// (the schema maps only empty and non-numbers to 0).
		{"total_car", "-5"}, {"total_car", "0"}, {"total_motor", "0"}, {"total_car", "0"}, {"total_car", "0"},
	} {
		if got := lot(t, o, base[i].ID)[want.col]; got != want.val {
			t.Errorf("lot %s %s = %s, want %s", base[i].ID, want.col, got, want.val)
		}
	}
}

// coordinate garbage rows, in the order of lots-coordinate-garbage.json.
var coordinateKinds = []struct {
	kind, note string
	placed     bool
}{
	{"0/0", "zero", false},
	{"swapped X and Y", "swapped", true},
	{"X == Y", "x equals y", false},
	{"22000/22000", "x equals y", false},
	{"WGS84 degrees in both", "wgs84", true},
	{"WGS84 degrees swapped", "wgs84", true},
	{"empty", "empty", false},
	{"not a number", "not a number", false},
	{"degrees in one column, metres in the other", "out of range", false},
	{"far out of range", "out of range", false},
	{"metres with decimals", "ok", true},
}

func checkCoordinates(t *testing.T, o *outcome) {
	base := baseLots(t)
	for i, k := range coordinateKinds {
		l := lot(t, o, base[i].ID)
		if l["coord_note"] != k.note {
			t.Errorf("%s: coord_note %q, want %q", k.kind, l["coord_note"], k.note)
		}
		if !k.placed {
			if l["lon"] != "NULL" || l["lat"] != "NULL" {
				t.Errorf("%s: placed at %s,%s; want no position", k.kind, l["lon"], l["lat"])
			}
			continue
		}
		lon, err1 := strconv.ParseFloat(l["lon"], 64)
		lat, err2 := strconv.ParseFloat(l["lat"], 64)
		if err1 != nil || err2 != nil || lon < 121.2 || lon > 122.1 || lat < 24.5 || lat > 25.4 {
			t.Errorf("%s: position %s,%s outside New Taipei", k.kind, l["lon"], l["lat"])
		}
	}
	q := quality(t, o)
	lq, _ := q["lots"].(map[string]any)
	unplaced := 0
	for _, k := range coordinateKinds {
		if !k.placed {
			unplaced++
		}
	}
	if lq["lots_without_position"] != float64(unplaced) {
		t.Errorf("quality lots_without_position = %v, want %d", lq["lots_without_position"], unplaced)
	}
}

func latest(t *testing.T, o *outcome, id string) []string {
	t.Helper()
	rows := dbtest.Query(t, o.w.db, "SELECT available_car, raw, observed_at FROM availability_latest WHERE parking_id = ?", id)
	if len(rows) != 1 {
		t.Fatalf("latest of %s: %v", id, rows)
	}
	return rows[0]
}

func obsAtCase(t *testing.T, o *outcome) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, r := range dbtest.Query(t, o.w.db, "SELECT parking_id, available_car FROM availability WHERE recorded_at = ?",
		tCase.In(clock.Taipei).Format(time.RFC3339)) {
		m[r[0]] = r[1]
	}
	return m
}

func checkAvailabilityValues(t *testing.T, o *outcome) {
	base := baseLots(t)
	obs := obsAtCase(t, o)
	if len(obs) != 1 || obs[base[5].ID] != "12" {
		t.Errorf("observations at the case's time %v; want only %s = 12 (the -9 rule: unknowns are not observations)", obs, base[5].ID)
	}
	for i, raw := range []string{"-9", "-3", "abc", "1.5", "", "12", "99999999999999999999"} {
		l := latest(t, o, base[i].ID)
		wantV := "NULL"
		if raw == "12" {
			wantV = "12"
		}
		if l[0] != wantV || l[1] != raw {
			t.Errorf("latest of %s = %v; want value %s and raw %q kept", base[i].ID, l, wantV, raw)
		}
	}
}

func checkDuplicateAvailability(t *testing.T, o *outcome) {
	base := baseLots(t)
	obs := obsAtCase(t, o)
	if obs[base[0].ID] != "7" || obs[base[1].ID] != "3" || len(obs) != 2 {
		t.Errorf("observations %v; want %s = 7 (the last duplicate) and %s = 3", obs, base[0].ID, base[1].ID)
	}
	if q := quality(t, o); q["duplicate_ids"] != 1.0 {
		t.Errorf("quality duplicate_ids = %v, want 1", q["duplicate_ids"])
	}
}

func checkUnknownLotIDs(t *testing.T, o *outcome) {
	obs := obsAtCase(t, o)
	if obs["990001"] != "4" {
		t.Errorf("observation of the unknown lot 990001 = %q, want 4 (stored anyway)", obs["990001"])
	}
	q := quality(t, o)
	aq, _ := q["availability"].(map[string]any)
	if aq["unknown_lot_ids"] != 1.0 {
		t.Errorf("quality unknown_lot_ids = %v, want 1", aq["unknown_lot_ids"])
	}
}

// checkRealSnapshotsStillApply: after the refused snapshot from the future,
// a real one is applied and its values are the latest (a future snapshot
// applied would have superseded it until its own date).
func checkRealSnapshotsStillApply(t *testing.T, o *outcome) {
	rows := baseAvailability(t)
	rows[0].AvailableCar = "41"
	send(t, o.w.queue, publish(t, o.w.store, availabilitySnapshot(tCase.Add(time.Minute), rows), len(rows)))
	o.w.drain(nil)
	o.w.queueEmpty()
	if l := latest(t, o, rows[0].ID); l[0] != "41" || l[2] != tCase.Add(time.Minute).In(clock.Taipei).Format(time.RFC3339) {
		t.Errorf("latest of %s after a real snapshot: %v; want 41 at its fetch time", rows[0].ID, l)
	}
}

// checkNewLotsStillApply: after the refused flood, a snapshot with new lots
// applies (it used to fail as transient and be retried for ever once the
// flood had taken the ordinals), and the flood took no ordinal.
func checkNewLotsStillApply(t *testing.T, o *outcome) {
	if n := dbtest.Count(t, o.w.db, "lot_ids", ""); n != 20 {
		t.Errorf("lot_ids holds %d IDs after the refused flood, want the base's 20", n)
	}
	rows := baseAvailability(t)
	for i := range 20 {
		rows = append(rows, feed.AvailabilityRow{ID: fmt.Sprintf("N%05d", i), AvailableCar: "2"})
	}
	send(t, o.w.queue, publish(t, o.w.store, availabilitySnapshot(tCase.Add(time.Minute), rows), len(rows)))
	o.w.drain(nil)
	o.w.queueEmpty()
	if n := dbtest.Count(t, o.w.db, "availability_latest", "parking_id LIKE 'N%'"); n != 20 {
		t.Errorf("%d of the 20 new lots have a latest value, want 20\nlogs:\n%s", n, o.w.logs)
	}
}
