package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/internal/dbtest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/feedtest"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue/sqlitequeue"
)

// binDir holds the extractor and loader built once for the end-to-end tests:
// they run as real processes, so signals and exit codes are the real ones.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "parking-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cmd := exec.Command("go", "build", "-o", dir+string(os.PathSeparator), "../extractor", "../loader")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build the binaries:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// pipeline is one local installation: a data directory and a fixture feed.
type pipeline struct {
	t    *testing.T
	dir  string
	feed *feedtest.Server
	// extra environment, overriding the embedded defaults (later entries win).
	extra []string
}

func newPipeline(t *testing.T, opts ...feedtest.Option) *pipeline {
	return &pipeline{t: t, dir: t.TempDir(), feed: feedtest.NewServer(t, opts...)}
}

func (p *pipeline) db() string { return filepath.Join(p.dir, "parking.db") }

func (p *pipeline) env(extra ...string) []string {
	return append([]string{
		"PATH=" + os.Getenv("PATH"),
		"PARKING_STORE=file://" + filepath.Join(p.dir, "snapshots"),
		"PARKING_QUEUE=sqlite://" + filepath.Join(p.dir, "queue.db"),
		"PARKING_DB=" + p.db(),
		"PARKING_FEED_BASE_URL=" + p.feed.URL,
		"PARKING_LATEST_JSON=" + filepath.Join(p.dir, "availability.json"),
		"PARKING_GEOJSON=" + filepath.Join(p.dir, "lots.geojson"),
		"PARKING_POLL_WAIT=50ms",
		// local listens on 127.0.0.1:8080 by default; tests run side by side.
		"PARKING_HTTP_ADDR=127.0.0.1:0",
	}, append(p.extra, extra...)...)
}

type result struct {
	code           int
	stdout, stderr string
}

// run runs a binary to completion.
func (p *pipeline) run(bin string, args ...string) result {
	p.t.Helper()
	cmd := exec.Command(filepath.Join(binDir, bin), args...)
	cmd.Env = p.env()
	cmd.Dir = p.dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		p.t.Fatalf("%s %v: %v", bin, args, err)
	}
	return result{code, out.String(), errb.String()}
}

func (p *pipeline) mustRun(want int, bin string, args ...string) result {
	p.t.Helper()
	r := p.run(bin, args...)
	if r.code != want {
		p.t.Fatalf("%s %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", bin, strings.Join(args, " "), r.code, want, r.stdout, r.stderr)
	}
	return r
}

// start runs a binary in the background; lines() yields its log lines.
type proc struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan struct{}
}

func (p *pipeline) start(bin string, args ...string) *proc {
	p.t.Helper()
	cmd := exec.Command(filepath.Join(binDir, bin), args...)
	cmd.Env = p.env()
	cmd.Dir = p.dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		p.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	pr := &proc{cmd: cmd, lines: make(chan string, 1000), done: make(chan struct{})}
	go func() {
		defer close(pr.lines)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			pr.lines <- sc.Text()
		}
	}()
	p.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return pr
}

// waitFor reads log lines until one contains s; it fails if the process
// ends first. The deadline only guards against a hung test.
func (pr *proc) waitFor(t *testing.T, s string) string {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case line, ok := <-pr.lines:
			if !ok {
				t.Fatalf("process ended before logging %q", s)
			}
			if strings.Contains(line, s) {
				return line
			}
		case <-timeout:
			t.Fatalf("no log line with %q within 60s", s)
		}
	}
}

// serve starts `loader serve`, checks it chose the locking mode the test
// set (PARKING_DB_LOCKING in p.extra), and returns once it has started,
// holding the database.
func (p *pipeline) serve(t *testing.T, mode string) *proc {
	t.Helper()
	pr := p.start("loader", "serve")
	if line := pr.waitFor(t, "database locking mode"); !strings.Contains(line, `"locking":"`+mode+`"`) {
		t.Fatalf("the loader is not in %s mode: %s", mode, line)
	}
	pr.waitFor(t, "loader started")
	return pr
}

// stop ends a process gracefully (SIGTERM) and fails the test unless it
// exits 0.
func (pr *proc) stop(t *testing.T) {
	t.Helper()
	if err := pr.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := pr.wait(); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0", code)
	}
}

func (pr *proc) wait() int {
	for range pr.lines {
	}
	err := pr.cmd.Wait()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	return 0
}

func TestEndToEndThroughTheEmbeddedBackends(t *testing.T) {
	p := newPipeline(t, feedtest.WithRejectedCSVFile(feed.Availability))

	var fetched struct {
		Key  string `json:"key"`
		Rows int    `json:"rows"`
	}
	r := p.mustRun(0, "extractor", "fetch", "-dataset", "lots")
	if err := json.Unmarshal([]byte(r.stdout), &fetched); err != nil || fetched.Rows != len(feedtest.SampleLots()) {
		t.Fatalf("fetch lots printed %q (%v); want the result with %d rows", r.stdout, err, len(feedtest.SampleLots()))
	}
	if !strings.HasPrefix(fetched.Key, "lots/") {
		t.Fatalf("lots key %q", fetched.Key)
	}
	// Unchanged lots: nothing stored, exit 2, like the original's skip.
	p.mustRun(2, "extractor", "fetch", "-dataset", "lots")
	p.mustRun(0, "extractor", "fetch", "-dataset", "availability")
	// The live feed's csv/file answers the WAF page with 200: an error naming the URL.
	r = p.mustRun(1, "extractor", "fetch", "-dataset", "availability", "-format", "csv")
	if !strings.Contains(r.stderr, "/csv/file") || !strings.Contains(r.stderr, "Request Rejected") {
		t.Errorf("WAF page error does not name the URL and the body:\n%s", r.stderr)
	}
	// A dry run stores and enqueues nothing.
	p.mustRun(0, "extractor", "fetch", "-dataset", "availability", "-dry-run")

	p.mustRun(0, "loader", "serve", "-drain")

	lots := map[string]feed.LotRow{}
	for _, l := range feedtest.SampleLots() {
		lots[l.ID] = l // the last duplicate wins
	}
	if got := dbtest.Count(t, p.db(), "parking_lots", "deleted_at IS NULL"); got != len(lots) {
		t.Errorf("active lots = %d, want %d", got, len(lots))
	}
	row := dbtest.Query(t, p.db(), "SELECT name, total_car, lon, lat FROM parking_lots WHERE id = '010056'")
	if len(row) != 1 || row[0][0] != lots["010056"].Name || row[0][1] != lots["010056"].TotalCar {
		t.Errorf("lot 010056 = %v, want name %q and total_car %s", row, lots["010056"].Name, lots["010056"].TotalCar)
	} else {
		lon, _ := strconv.ParseFloat(row[0][2], 64)
		lat, _ := strconv.ParseFloat(row[0][3], 64)
		// The published conversion of 296882/2767068 (the feed reference, pyproj).
		if abs(lon-121.4644919) > 1e-5 || abs(lat-25.0109252) > 1e-5 {
			t.Errorf("lot 010056 at %v,%v; want 121.4644919,25.0109252", lon, lat)
		}
	}
	last := map[string]string{}
	for _, a := range feedtest.SampleAvailability(1) {
		last[a.ID] = a.AvailableCar
	}
	valid := 0
	for _, v := range last {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			valid++
		}
	}
	if got := dbtest.Count(t, p.db(), "availability", ""); got != valid {
		t.Errorf("observations = %d, want %d (the -9 rule: only values >= 0)", got, valid)
	}
	if got := dbtest.Count(t, p.db(), "availability_latest", ""); got != len(last) {
		t.Errorf("latest rows = %d, want one per lot in the feed (%d)", got, len(last))
	}

	r = p.mustRun(0, "loader", "stats", "-json")
	var st struct {
		Lots struct{ Total, Active, Deleted int } `json:"lots"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("stats -json: %v\n%s", err, r.stdout)
	}
	if st.Lots.Active != len(lots) || st.Lots.Deleted != 0 {
		t.Errorf("stats: %+v, want %d active and none deleted", st.Lots, len(lots))
	}

	// -full computes the figures from every row and checks the summaries.
	r = p.mustRun(0, "loader", "stats", "-full", "-json")
	var full struct {
		Observations int `json:"observations"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &full); err != nil || full.Observations != valid {
		t.Errorf("stats -full: %d observations (%v), want %d\n%s", full.Observations, err, valid, r.stdout)
	}
	raw, err := sql.Open("sqlite", p.db())
	if err != nil {
		t.Fatal(err)
	}
	_, err = raw.Exec("UPDATE obs_months SET observations = observations + 1")
	raw.Close()
	if err != nil {
		t.Fatal(err)
	}
	if r := p.run("loader", "stats", "-full"); r.code != 1 || !strings.Contains(r.stderr, "the summaries differ from the tables") {
		t.Errorf("stats -full over a wrong summary: exit %d, want 1 naming the difference\n%s", r.code, r.stderr)
	}
}

// An older lots snapshot delivered after a newer one never rolls the current
// state back, and the result equals applying them in order.
func TestOldLotsSnapshotAfterNewOne(t *testing.T) {
	p := newPipeline(t)
	v1 := feedtest.SampleLots()
	p.mustRun(0, "extractor", "fetch", "-dataset", "lots")

	q, err := sqlitequeue.Open(context.Background(), filepath.Join(p.dir, "queue.db"), sqlitequeue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	held, err := q.Receive(context.Background(), 10, 0, time.Hour) // hold v1's message back
	if err != nil || len(held) != 1 {
		t.Fatalf("receive v1: %v (%d)", err, len(held))
	}

	v2 := append([]feed.LotRow{}, v1[1:]...) // v1[0] disappears
	v2[0].Name = "renamed in v2"
	p.feed.SetLots(v2)
	p.mustRun(0, "extractor", "fetch", "-dataset", "lots")
	second, err := q.Receive(context.Background(), 10, 0, time.Hour)
	if err != nil || len(second) != 1 {
		t.Fatalf("receive v2: %v (%d)", err, len(second))
	}
	bodies := [][]byte{held[0].Body, second[0].Body}

	// v2 first, then v1 late.
	if err := q.ChangeVisibility(context.Background(), 0, second...); err != nil {
		t.Fatal(err)
	}
	p.mustRun(0, "loader", "serve", "-drain")
	if err := q.ChangeVisibility(context.Background(), 0, held...); err != nil {
		t.Fatal(err)
	}
	p.mustRun(0, "loader", "serve", "-drain")

	gone := dbtest.Query(t, p.db(), "SELECT deleted_at FROM parking_lots WHERE id = ?", v1[0].ID)
	if len(gone) != 1 || gone[0][0] == "NULL" {
		t.Errorf("lot %s missing from v2 is not soft-deleted: %v", v1[0].ID, gone)
	}
	renamed := dbtest.Query(t, p.db(), "SELECT name FROM parking_lots WHERE id = ?", v2[0].ID)
	if len(renamed) != 1 || renamed[0][0] != "renamed in v2" {
		t.Errorf("lot %s = %v; the late v1 rolled its name back", v2[0].ID, renamed)
	}
	if got := dbtest.Count(t, p.db(), "snapshots", "dataset = 'lots' AND outcome = 'superseded'"); got != 1 {
		t.Errorf("superseded lots snapshots = %d, want 1", got)
	}
	if got := dbtest.Count(t, p.db(), "lot_versions", "parking_id = ?", v2[0].ID); got != 2 {
		t.Errorf("history of the renamed lot has %d versions, want 2", got)
	}

	// The same two snapshots in order, into a fresh database: the same tables.
	inOrder := filepath.Join(p.dir, "in-order.db")
	q2path := filepath.Join(p.dir, "queue2.db")
	q2, err := sqlitequeue.Open(context.Background(), q2path, sqlitequeue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := q2.Send(context.Background(), bodies...); err != nil {
		t.Fatal(err)
	}
	q2.Close()
	p.mustRun(0, "loader", "serve", "-drain", "-db", inOrder, "-queue", "sqlite://"+q2path)
	if got, want := dbtest.Dump(t, p.db()), dbtest.Dump(t, inOrder); got != want {
		t.Errorf("late delivery gave other tables than in-order delivery:\nlate:\n%.2000s\nin order:\n%.2000s", got, want)
	}
}

// One writer: a second loader on the same database fails fast with a clear
// error, and SIGTERM stops the first one cleanly.
func TestSecondLoaderIsRefusedAndSIGTERMStopsCleanly(t *testing.T) {
	p := newPipeline(t)
	first := p.start("loader", "serve")
	first.waitFor(t, "loader started")

	r := p.mustRun(1, "loader", "serve", "-drain")
	if !strings.Contains(r.stderr, p.db()) || !strings.Contains(r.stderr, "another loader") {
		t.Errorf("second loader's error does not name the file and the holder:\n%s", r.stderr)
	}
	if err := first.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := first.wait(); code != 0 {
		t.Fatalf("loader exited %d after SIGTERM, want 0", code)
	}
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

// Backups go through SQLite: `loader backup` while no loader runs, and a
// running loader's -backup-dir (which takes one at start).
func TestBackups(t *testing.T) {
	p := newPipeline(t)
	p.mustRun(0, "extractor", "fetch", "-dataset", "lots")
	dir := filepath.Join(p.dir, "backups")
	p.mustRun(0, "loader", "serve", "-drain", "-backup-dir", dir)
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("backups after a run with -backup-dir: %v (%v)", entries, err)
	}
	out := filepath.Join(p.dir, "manual.db")
	p.mustRun(0, "loader", "backup", "-out", out)
	if got, want := dbtest.Dump(t, out), dbtest.Dump(t, p.db()); got != want {
		t.Fatal("the backup differs from the database")
	}
	// The backup taken at start predates the apply: it has no lots yet.
	if n := dbtest.Count(t, filepath.Join(dir, entries[0].Name()), "parking_lots", ""); n != 0 {
		t.Errorf("the start-up backup holds %d lots; it should predate the apply", n)
	}
}

// loseMessage takes the one message of the queue and deletes it unapplied,
// as a queue lost with its file, or an extractor that died before sending,
// would leave a stored snapshot that nothing announces.
func (p *pipeline) loseMessage() {
	p.t.Helper()
	q, err := sqlitequeue.Open(context.Background(), filepath.Join(p.dir, "queue.db"), sqlitequeue.Options{})
	if err != nil {
		p.t.Fatal(err)
	}
	defer q.Close()
	lost, err := q.Receive(context.Background(), 10, 0, time.Minute)
	if err != nil || len(lost) != 1 {
		p.t.Fatalf("receive: %v (%d)", err, len(lost))
	}
	if err := q.Delete(context.Background(), lost...); err != nil {
		p.t.Fatal(err)
	}
}

// A snapshot whose message was lost is applied by -reconcile at start.
func TestReconcileAppliesSnapshotsWhoseMessagesWereLost(t *testing.T) {
	p := newPipeline(t)
	p.mustRun(0, "extractor", "fetch", "-dataset", "availability")
	p.loseMessage()
	p.mustRun(0, "loader", "serve", "-drain")
	if n := dbtest.Count(t, p.db(), "snapshots", ""); n != 0 {
		t.Fatalf("without -reconcile %d snapshots were applied; the test needs a lost message", n)
	}
	p.mustRun(0, "loader", "serve", "-drain", "-reconcile", "1h")
	if n := dbtest.Count(t, p.db(), "snapshots", "outcome = 'applied'"); n != 1 {
		t.Fatalf("after -reconcile: %d applied snapshots, want 1", n)
	}
}

// `loader local` is the README's first command: it fetches the lots (the
// database has none) and the live feed at start, applies both, writes the
// latest-availability JSON, serves the map and the API, lets SQL readers and
// `loader stats` in beside it (shared mode on a local disk), and stops
// cleanly on SIGTERM.
func TestLocalRunsTheWholePipeline(t *testing.T) {
	p := newPipeline(t)
	pr := p.start("loader", "local")
	if line := pr.waitFor(t, "database locking mode"); !strings.Contains(line, `"locking":"shared"`) {
		t.Errorf("locking mode on a local disk: %s", line)
	}
	var listening struct {
		Addr string `json:"addr"`
	}
	if err := json.Unmarshal([]byte(pr.waitFor(t, "http server listening")), &listening); err != nil || listening.Addr == "" {
		t.Fatalf("http server address: %v", err)
	}
	applied := map[string]bool{}
	for len(applied) < 2 {
		line := pr.waitFor(t, "snapshot applied")
		var e struct {
			Dataset string `json:"dataset"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		applied[e.Dataset] = true
	}
	// While it runs: SQL from another process, `loader stats`, the API and the map.
	if n := dbtest.Count(t, p.db(), "parking_lots", ""); n == 0 {
		t.Error("a SQL reader beside loader local sees no lots")
	}
	if r := p.run("loader", "stats", "-json"); r.code != 0 || !strings.Contains(r.stdout, `"active"`) {
		t.Errorf("loader stats beside loader local: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if r := p.run("loader", "stats", "-full"); r.code != 0 || !strings.Contains(r.stdout, "Availability observations") {
		t.Errorf("loader stats -full beside loader local: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for path, want := range map[string]string{"/api/v1/lots": `"FeatureCollection"`, "/": "leaflet.js", "/api/v1/availability/latest": `"total_count"`} {
		resp, err := http.Get("http://" + listening.Addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %s %.200s", path, resp.Status, body)
		}
	}
	if err := pr.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := pr.wait(); code != 0 {
		t.Fatalf("loader local exited %d after SIGTERM, want 0", code)
	}
	if !applied["lots"] || !applied["availability"] {
		t.Fatalf("applied at start: %v, want lots and availability", applied)
	}
	var latest struct {
		UpdatedAt  string `json:"updated_at"`
		TotalCount int    `json:"total_count"`
		Data       []struct {
			ParkingID    string `json:"parking_id"`
			AvailableCar int    `json:"available_car"`
		} `json:"data"`
	}
	b, err := os.ReadFile(filepath.Join(p.dir, "availability.json"))
	if err != nil {
		t.Fatalf("latest-availability JSON: %v", err)
	}
	if err := json.Unmarshal(b, &latest); err != nil || latest.TotalCount == 0 || latest.TotalCount != len(latest.Data) {
		t.Fatalf("availability.json = %.300s (%v)", b, err)
	}
	if n := dbtest.Count(t, p.db(), "parking_lots", ""); n == 0 {
		t.Fatal("no lots in the database after loader local")
	}
}

// `loader local -reconcile` applies at start, as serve does, a stored
// snapshot whose message was lost (it used to accept the flag and ignore it).
func TestLocalReconcilesAtStart(t *testing.T) {
	p := newPipeline(t)
	var stored struct {
		Key string `json:"key"`
	}
	r := p.mustRun(0, "extractor", "fetch", "-dataset", "availability")
	if err := json.Unmarshal([]byte(r.stdout), &stored); err != nil || stored.Key == "" {
		t.Fatalf("extractor result %q: %v", r.stdout, err)
	}
	p.loseMessage()
	pr := p.start("loader", "local", "-reconcile", "1h")
	line := pr.waitFor(t, `"msg":"reconciled"`)
	if !strings.Contains(line, `"window":"1h0m0s"`) {
		t.Errorf("reconcile log line: %s", line)
	}
	if err := pr.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := pr.wait(); code != 0 {
		t.Fatalf("loader local exited %d", code)
	}
	if n := dbtest.Count(t, p.db(), "snapshots", "key = ? AND outcome = 'applied'", stored.Key); n != 1 {
		t.Fatalf("the snapshot whose message was lost: %d applied ledger rows, want 1", n)
	}
}

// Ctrl-C on an idle `loader local` ends the long poll at once (issue 14): the
// loop waits 20 s per poll, and a stop used to wait for the poll to run out.
// What is asserted is that the poll was interrupted, not how long it took.
func TestLocalStopsAnIdleLongPollAtOnce(t *testing.T) {
	p := newPipeline(t)
	p.extra = []string{"PARKING_POLL_WAIT=20s", "LOG_LEVEL=debug"}
	pr := p.start("loader", "local")
	for range 2 { // lots and availability, fetched at start
		pr.waitFor(t, "snapshot applied")
	}
	pr.waitFor(t, `"msg":"receiving"`) // idle: the next long poll begins
	if err := pr.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	pr.waitFor(t, "the long poll was interrupted")
	if code := pr.wait(); code != 0 {
		t.Fatalf("loader local exited %d after Ctrl-C, want 0", code)
	}
}

// A database rebuilt beside an existing snapshot directory gets its lots at
// once: the content-hash skip (the lots are unchanged since the last stored
// snapshot) must not keep them out of an empty database.
func TestLocalFetchesLotsIntoAnEmptyDatabaseEvenIfUnchanged(t *testing.T) {
	p := newPipeline(t)
	p.mustRun(0, "extractor", "fetch", "-dataset", "lots") // stored, content hash recorded
	// Its message went to a database that is gone: the new one starts empty.
	p.loseMessage()
	pr := p.start("loader", "local")
	for {
		line := pr.waitFor(t, "snapshot applied")
		if strings.Contains(line, `"dataset":"lots"`) {
			break
		}
	}
	if err := pr.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := pr.wait(); code != 0 {
		t.Fatalf("loader local exited %d", code)
	}
	if n := dbtest.Count(t, p.db(), "parking_lots", ""); n == 0 {
		t.Fatal("no lots in the new database")
	}
}
