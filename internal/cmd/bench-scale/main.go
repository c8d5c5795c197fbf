// Command bench-scale measures what a database of years of history costs
// (docs/PERFORMANCE.md; scripts/bench-scale runs it): for each size it
// writes a database directly (internal/scaledb), then measures the loader
// binary's start-up to ready, its resident memory under load, `loader
// stats`, exports and a backup, in-process the live apply and each read API
// endpoint, and once, independent of the size, a backfill and reconcile
// listing of a ten-year range on the S3 test server, counting requests.
//
//	bench-scale -loader ./loader -years 1,5 -dir /tmp/bench-scale
//
// Timed runs are repeated (-runs) and reported as medians: the machine is
// shared, and a median is the figure that says what the code costs.
package main

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/parking-newtaipei/parking-newtaipei/internal/scalebench"
	"github.com/parking-newtaipei/parking-newtaipei/internal/scaledb"
	"github.com/parking-newtaipei/parking-newtaipei/internal/snapshottest"
	"github.com/parking-newtaipei/parking-newtaipei/reliability"
	"github.com/parking-newtaipei/parking-newtaipei/shared/clock"
	"github.com/parking-newtaipei/parking-newtaipei/shared/extract"
	"github.com/parking-newtaipei/parking-newtaipei/shared/load/backfill"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue/sqlitequeue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store/filestore"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store/s3store"
)

type bench struct {
	loader, baseLoader string
	dir                string
	runs, n, applies   int
	days               int
	measure            map[string]bool
	keep, reuse        bool
	log                *slog.Logger
	t                  *table
}

func main() {
	var b bench
	years := flag.String("years", "1,5", "sizes to measure, in years of history")
	migrate := flag.String("migrate-years", "1", "sizes at which to measure migration 0003 on a database from before it")
	flag.StringVar(&b.loader, "loader", "", "the loader binary to measure (required)")
	flag.StringVar(&b.baseLoader, "base-loader", "", "a loader from before this work, measured on the pre-migration copy for comparison (optional)")
	flag.StringVar(&b.dir, "dir", filepath.Join(os.TempDir(), "bench-scale"), "work directory (databases of GBs)")
	flag.IntVar(&b.runs, "runs", 5, "repetitions of each timed command")
	flag.IntVar(&b.n, "n", 40, "requests per read endpoint")
	flag.IntVar(&b.applies, "applies", 200, "live applies per locking mode")
	flag.BoolVar(&b.keep, "keep", false, "keep the generated databases")
	flag.BoolVar(&b.reuse, "reuse", false, "measure databases already in -dir instead of writing them")
	measure := flag.String("measure", strings.Join(measurements, ","), "what to measure (re-run a disturbed figure alone): "+strings.Join(measurements, ", "))
	flag.IntVar(&b.days, "days", 0, "write this many days for every size instead (a quick look at the benchmark itself)")
	flag.Parse()
	b.log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	b.measure = map[string]bool{}
	for _, m := range strings.Split(*measure, ",") {
		if !slices.Contains(measurements, m) {
			fmt.Fprintf(os.Stderr, "bench-scale: -measure %q: want some of %s\n", m, strings.Join(measurements, ", "))
			os.Exit(2)
		}
		b.measure[m] = true
	}
	if b.loader == "" {
		fmt.Fprintln(os.Stderr, "bench-scale: -loader is required")
		os.Exit(2)
	}
	ctx := context.Background()
	var sizes []int
	for _, y := range strings.Split(*years, ",") {
		n, err := strconv.Atoi(y)
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "bench-scale: -years %q: want positive numbers\n", *years)
			os.Exit(2)
		}
		sizes = append(sizes, n)
	}
	b.t = newTable(sizes)
	if err := os.MkdirAll(b.dir, 0o755); err != nil {
		fail(err)
	}
	for _, y := range sizes {
		if err := b.size(ctx, y, slices.Contains(strings.Split(*migrate, ","), strconv.Itoa(y))); err != nil {
			fail(fmt.Errorf("%d years: %w", y, err))
		}
	}
	b.t.print(os.Stdout)
	if b.measure["listing"] {
		if err := b.listing(ctx, os.Stdout); err != nil {
			fail(fmt.Errorf("listing: %w", err))
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench-scale:", err)
	os.Exit(1)
}

// size measures one database of y years.
func (b *bench) size(ctx context.Context, y int, migrate bool) error {
	path := filepath.Join(b.dir, fmt.Sprintf("%dy.db", y))
	if !b.reuse {
		removeDB(path)
		cfg := scaledb.Defaults()
		cfg.Path, cfg.Days, cfg.Logger = path, 365*y, b.log
		if b.days > 0 {
			cfg.Days = b.days
		}
		b.log.Info("generating", "years", y, "path", path)
		sum, err := scaledb.Generate(ctx, cfg)
		if err != nil {
			return err
		}
		b.t.set("database: observations", "", y, group(sum.Observations))
		b.t.set("database: live snapshots in the ledger", "", y, group(int64(sum.LiveSnapshots)))
		b.t.set("database: generated in", "", y, sum.Took.Round(time.Second).String())
	}
	if !b.keep {
		defer removeDB(path)
	}
	if fi, err := os.Stat(path); err == nil {
		b.t.set("database: file size", "", y, fmt.Sprintf("%.2f GB", float64(fi.Size())/1e9))
	}
	steps := []struct {
		name string
		run  func() error
	}{
		{"migration", func() error {
			if !migrate {
				return nil
			}
			return b.migration(ctx, y, path)
		}},
		{"startup", func() error {
			for _, mode := range []sqlite.Locking{sqlite.LockingExclusive, sqlite.LockingShared} {
				if err := b.startup(ctx, y, path, mode, ""); err != nil {
					return err
				}
			}
			return nil
		}},
		{"fullcheck", func() error { return b.startup(ctx, y, path, sqlite.LockingExclusive, "full") }},
		{"memory", func() error { return b.memory(ctx, y, path) }},
		{"stats", func() error { return b.stats(ctx, y, path) }},
		{"applies", func() error { return b.inProcess(ctx, y, path, true) }},
		{"reads", func() error { return b.inProcess(ctx, y, path, false) }},
		{"exports", func() error { return b.exports(ctx, y, path) }},
		{"backup", func() error { return b.backup(ctx, y, path) }},
	}
	for _, s := range steps {
		if !b.measure[s.name] {
			continue
		}
		if err := s.run(); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

// measurements are what -measure chooses from, in the order they run.
var measurements = []string{"migration", "startup", "fullcheck", "memory", "stats", "applies", "reads", "exports", "backup", "listing"}

func removeDB(path string) {
	for _, s := range []string{"", "-wal", "-shm", "-journal", ".lock"} {
		os.Remove(path + s)
	}
}

// migration measures migration 0003 on a copy of the database put back to
// schema 2 (its summaries and index dropped): what an upgrade does once.
func (b *bench) migration(ctx context.Context, y int, path string) error {
	old := filepath.Join(b.dir, fmt.Sprintf("%dy-schema2.db", y))
	removeDB(old)
	defer removeDB(old)
	if err := copyFile(path, old); err != nil {
		return err
	}
	raw, err := sql.Open("sqlite", old)
	if err != nil {
		return err
	}
	for _, q := range []string{"DROP TABLE obs_months", "DROP TABLE obs_month_lots", "DROP TABLE ledger_counts",
		"DROP INDEX snapshots_refused", "PRAGMA user_version = 2", "VACUUM"} {
		if _, err := raw.ExecContext(ctx, q); err != nil {
			raw.Close()
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	raw.Close()
	if b.baseLoader != "" {
		// The loader from before, on the database from before: its start-up
		// (quick_check of the whole file) and its stats (a scan).
		d, err := b.timeStartup(ctx, b.baseLoader, old, sqlite.LockingExclusive, "")
		if err != nil {
			return err
		}
		b.t.set("before: loader start-up to ready (exclusive)", "", y, scalebench.Format(d))
		t0 := time.Now()
		if out, err := exec.CommandContext(ctx, b.baseLoader, "stats", "-json", "-db", old).CombinedOutput(); err != nil {
			return fmt.Errorf("base loader stats: %w\n%s", err, out)
		}
		b.t.set("before: `loader stats`", "", y, scalebench.Format(time.Since(t0)))
	}
	t0 := time.Now()
	db, err := sqlite.Open(ctx, old, sqlite.Options{Locking: sqlite.LockingExclusive})
	if err != nil {
		return err
	}
	took := time.Since(t0)
	sum, serr := db.Stats(ctx)
	db.Close()
	if serr != nil {
		return serr
	}
	b.t.set("migration 0003 (fills the summaries), once", "", y, took.Round(100*time.Millisecond).String())
	b.log.Info("migrated", "years", y, "took", took, "observations", sum.Observations)
	return nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// serve is a running `loader serve`.
type serve struct {
	cmd    *exec.Cmd
	addr   string
	stderr *os.File
	exited chan error
}

// startServe starts loader on path with an empty store and queue of its own
// in dir, and returns once it answers /readyz 200, and how long that took
// from the start of the process.
func (b *bench) startServe(ctx context.Context, loader, path, dir string, mode sqlite.Locking, check string) (*serve, time.Duration, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, 0, err
	}
	addr := l.Addr().String()
	l.Close()
	logf, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		return nil, 0, err
	}
	cmd := exec.CommandContext(ctx, loader, "serve")
	cmd.Env = append(os.Environ(), "PARKING_DB="+path, "PARKING_DB_LOCKING="+string(mode),
		"PARKING_STORE=file://"+filepath.Join(dir, "snapshots"), "PARKING_QUEUE=sqlite://"+filepath.Join(dir, "queue.db"),
		"PARKING_HTTP_ADDR="+addr, "PARKING_POLL_WAIT=1s", "PARKING_LATEST_JSON="+filepath.Join(dir, "availability.json"),
		"PARKING_GEOJSON="+filepath.Join(dir, "lots.geojson"))
	if check != "" {
		cmd.Env = append(cmd.Env, "PARKING_DB_CHECK="+check)
	}
	cmd.Stderr = logf
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, 0, err
	}
	s := &serve{cmd: cmd, addr: addr, stderr: logf, exited: make(chan error, 1)}
	go func() { s.exited <- cmd.Wait() }()
	// Polling an external process, with a deadline.
	for deadline := time.Now().Add(30 * time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		select {
		case err := <-s.exited:
			logf.Close()
			log, _ := os.ReadFile(logf.Name())
			return nil, 0, fmt.Errorf("loader serve exited (%v) before ready:\n%s", err, log)
		default:
		}
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s, time.Since(t0), nil
			}
		}
	}
	cmd.Process.Kill()
	<-s.exited
	logf.Close()
	return nil, 0, errors.New("loader serve not ready within 30 minutes")
}

// stop sends SIGTERM and waits for the exit.
func (s *serve) stop() error {
	defer s.stderr.Close()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	return <-s.exited
}

func (b *bench) timeStartup(ctx context.Context, loader, path string, mode sqlite.Locking, check string) (time.Duration, error) {
	dir, err := os.MkdirTemp(b.dir, "serve-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	s, took, err := b.startServe(ctx, loader, path, dir, mode, check)
	if err != nil {
		return 0, err
	}
	return took, s.stop()
}

// startup measures `loader serve` from exec to /readyz 200.
func (b *bench) startup(ctx context.Context, y int, path string, mode sqlite.Locking, check string) error {
	runs := b.runs
	name := fmt.Sprintf("loader start-up to ready (%s)", mode)
	target := "< 2 s"
	if check == "full" {
		runs, name, target = 1, "loader start-up with -db-check full (the check every start used to run)", ""
	}
	var ds []time.Duration
	for range runs {
		d, err := b.timeStartup(ctx, b.loader, path, mode, check)
		if err != nil {
			return err
		}
		ds = append(ds, d)
	}
	b.t.set(name, target, y, medianMax(ds))
	return nil
}

// memory runs `loader serve` under load: live snapshots through the queue,
// every read endpoint, stats; then reads its peak resident set (VmHWM).
func (b *bench) memory(ctx context.Context, y int, path string) error {
	dir, err := os.MkdirTemp(b.dir, "serve-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	db, err := sqlite.Open(ctx, path, sqlite.Options{Locking: sqlite.LockingExclusive})
	if err != nil {
		return err
	}
	data, err := scalebench.Load(ctx, db)
	db.Close()
	if err != nil {
		return err
	}
	st, err := filestore.Open(filepath.Join(dir, "snapshots"))
	if err != nil {
		return err
	}
	q, err := sqlitequeue.Open(ctx, filepath.Join(dir, "queue.db"), sqlitequeue.Options{})
	if err != nil {
		return err
	}
	const live = 60
	for i := range live {
		res, loc, err := snapshottest.Put(ctx, st, snapshottest.Availability(data.Last.Add(time.Duration(24*60+5*i)*time.Minute)))
		if err != nil {
			q.Close()
			return err
		}
		body, err := queue.EncodeMessage(extract.Message(res, loc))
		if err == nil {
			err = q.Send(ctx, body)
		}
		if err != nil {
			q.Close()
			return err
		}
	}
	q.Close()

	s, _, err := b.startServe(ctx, b.loader, path, dir, sqlite.LockingExclusive, "")
	if err != nil {
		return err
	}
	defer s.stop()
	base := "http://" + s.addr
	// Polling an external process, with a deadline.
	for deadline := time.Now().Add(10 * time.Minute); ; {
		n, err := appliedAvailability(base)
		if err != nil {
			return err
		}
		if n >= live {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d live snapshots applied in 10 minutes", n, live)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, e := range data.Endpoints(rand.New(rand.NewPCG(5, 5))) {
		if _, _, err := scalebench.Measure(base, e, 10); err != nil {
			return err
		}
	}
	hwm, rss, err := memoryOf(s.cmd.Process.Pid)
	if err != nil {
		return err
	}
	b.t.set("`loader serve` resident memory, peak (VmHWM), after 60 live snapshots and every endpoint", "< 64 MiB", y, fmt.Sprintf("%.1f MiB", float64(hwm)/(1<<20)))
	b.t.set("`loader serve` resident memory then (VmRSS)", "", y, fmt.Sprintf("%.1f MiB", float64(rss)/(1<<20)))
	return nil
}

// appliedAvailability reads parking_snapshots_total{dataset="availability",outcome="applied"}.
func appliedAvailability(base string) (int, error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), `parking_snapshots_total{dataset="availability",outcome="applied"} `); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, sc.Err()
}

// memoryOf reads VmHWM and VmRSS of a process.
func memoryOf(pid int) (hwm, rss int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		for _, field := range []struct {
			name string
			to   *int64
		}{{"VmHWM:", &hwm}, {"VmRSS:", &rss}} {
			if v, ok := strings.CutPrefix(sc.Text(), field.name); ok {
				kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				if err != nil {
					return 0, 0, err
				}
				*field.to = kb << 10
			}
		}
	}
	return hwm, rss, sc.Err()
}

// stats times `loader stats` (the summaries) and, once, `loader stats -full`
// (the scan it replaced, which also checks the summaries).
func (b *bench) stats(ctx context.Context, y int, path string) error {
	var ds []time.Duration
	for range b.runs {
		d, err := b.run(ctx, "stats", "-json", "-db", path)
		if err != nil {
			return err
		}
		ds = append(ds, d)
	}
	b.t.set("`loader stats` (process start to exit)", "< 200 ms", y, medianMax(ds))
	d, err := b.run(ctx, "stats", "-full", "-db", path)
	if err != nil {
		return fmt.Errorf("the summaries do not agree with the full scan, or it failed: %w", err)
	}
	b.t.set("`loader stats -full` (every row; the summaries agree)", "", y, d.Round(100*time.Millisecond).String())
	return nil
}

// run times one loader command.
func (b *bench) run(ctx context.Context, args ...string) (time.Duration, error) {
	t0 := time.Now()
	out, err := exec.CommandContext(ctx, b.loader, args...).CombinedOutput()
	d := time.Since(t0)
	if err != nil {
		return d, fmt.Errorf("loader %s: %w\n%.2000s", strings.Join(args, " "), err, out)
	}
	return d, nil
}

// inProcess measures live applies, or each read endpoint, in both modes.
func (b *bench) inProcess(ctx context.Context, y int, path string, applies bool) error {
	for _, mode := range []sqlite.Locking{sqlite.LockingExclusive, sqlite.LockingShared} {
		db, err := sqlite.Open(ctx, path, sqlite.Options{Locking: mode})
		if err != nil {
			return err
		}
		if applies {
			err = b.applyLive(ctx, y, db, mode)
		} else {
			err = b.reads(ctx, y, db, mode)
		}
		db.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// applyLive applies live snapshots back to back, a day after the newest one.
func (b *bench) applyLive(ctx context.Context, y int, db *sqlite.DB, mode sqlite.Locking) error {
	data, err := scalebench.Load(ctx, db)
	if err != nil {
		return err
	}
	live := scalebench.Live{Next: data.Last.Add(24 * time.Hour)}
	ds, err := live.Apply(ctx, db, data.Lots, b.applies, nil)
	if err != nil {
		return err
	}
	b.t.set(fmt.Sprintf("apply of a live snapshot (every lot, ~30%% with a value), p50 / p99 (%s)", mode), "p99 < 20 ms", y,
		scalebench.Pct(ds, 50)+" / "+scalebench.Pct(ds, 99))
	b.log.Info("applies", "years", y, "mode", mode, "rows", len(data.Lots), "max", scalebench.Pct(ds, 100))
	return nil
}

// reads requests each read endpoint over HTTP.
func (b *bench) reads(ctx context.Context, y int, db *sqlite.DB, mode sqlite.Locking) error {
	data, err := scalebench.Load(ctx, db)
	if err != nil {
		return err
	}
	srv, err := scalebench.Serve(db)
	if err != nil {
		return err
	}
	defer srv.Shutdown(ctx)
	for _, e := range data.Endpoints(rand.New(rand.NewPCG(1, 1))) {
		ds, _, err := scalebench.Measure("http://"+srv.Addr(), e, b.n)
		if err != nil {
			return err
		}
		target := ""
		switch e.Name {
		case "history, 7 days of one lot":
			target = "< 50 ms"
		case "GET /api/v1/stats":
			target = "< 200 ms"
		}
		b.t.set(fmt.Sprintf("%s, p50 / p99 (%s)", e.Name, mode), target, y, scalebench.Pct(ds, 50)+" / "+scalebench.Pct(ds, 99))
	}
	return nil
}

// exports times `loader export` in each format.
func (b *bench) exports(ctx context.Context, y int, path string) error {
	for _, format := range []string{"json", "geojson", "csv"} {
		out := filepath.Join(b.dir, "export."+format)
		var ds []time.Duration
		for range b.runs {
			d, err := b.run(ctx, "export", "-format", format, "-out", out, "-db", path)
			if err != nil {
				return err
			}
			ds = append(ds, d)
		}
		os.Remove(out)
		b.t.set("`loader export -format "+format+"`", "", y, medianMax(ds))
	}
	return nil
}

// backup times `loader backup` (VACUUM INTO, then the copy checked whole).
func (b *bench) backup(ctx context.Context, y int, path string) error {
	out := filepath.Join(b.dir, "backup.db")
	defer os.Remove(out)
	d, err := b.run(ctx, "backup", "-out", out, "-db", path)
	if err != nil {
		return err
	}
	b.t.set("`loader backup` (VACUUM INTO, the copy checked)", "", y, d.Round(100*time.Millisecond).String())
	return nil
}

// listing lists a ten-year range on the S3 test server through a counting
// proxy: nothing stored in it, then one day stored in its middle, with
// snapshot.List, a backfill and a reconcile.
func (b *bench) listing(ctx context.Context, w io.Writer) error {
	endpoint, key, secret := os.Getenv("PARKING_TEST_S3_ENDPOINT"), os.Getenv("PARKING_TEST_S3_ACCESS_KEY"), os.Getenv("PARKING_TEST_S3_SECRET_KEY")
	if endpoint == "" {
		return errors.New("PARKING_TEST_S3_ENDPOINT is not set (scripts/bench-scale starts the S3 test server)")
	}
	px, err := reliability.NewProxy(endpoint)
	if err != nil {
		return err
	}
	defer px.Close()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: key, SecretAccessKey: secret}, nil
		})))
	if err != nil {
		return err
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) { o.BaseEndpoint = aws.String(px.URL); o.UsePathStyle = true })
	bucket := fmt.Sprintf("bench-scale-%d", time.Now().UnixNano())
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		return err
	}
	st := s3store.New(client, bucket, "snapshots")
	from := time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC)
	to := from.AddDate(10, 0, 0)
	day := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)

	fmt.Fprintln(w, "\n| ten years, 2019-01-01 to 2029-01-01, on S3 | LIST requests | other requests | time | snapshots |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	measure := func(name string, fn func() (int, error)) error {
		before := len(px.Requests())
		t0 := time.Now()
		n, err := fn()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		lists, others := 0, 0
		for _, r := range px.Requests()[before:] {
			if strings.Contains(r.Query, "list-type=2") {
				lists++
			} else {
				others++
			}
		}
		fmt.Fprintf(w, "| %s | %d | %d | %s | %d |\n", name, lists, others, scalebench.Format(time.Since(t0)), n)
		return nil
	}
	list := func() (int, error) {
		n := 0
		return n, snapshot.List(ctx, st, nil, from, to, func(snapshot.Listed) error { n++; return nil })
	}
	dbPath := filepath.Join(b.dir, "listing.db")
	removeDB(dbPath)
	defer removeDB(dbPath)
	db, err := sqlite.Open(ctx, dbPath, sqlite.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	run := func(reconcile bool) func() (int, error) {
		return func() (int, error) {
			bf, err := backfill.New(backfill.Config{Store: st, DB: db})
			if err != nil {
				return 0, err
			}
			var s backfill.Summary
			if reconcile {
				bf, err = backfill.New(backfill.Config{Store: st, DB: db, Clock: clock.NewFake(day.Add(24 * time.Hour))})
				if err != nil {
					return 0, err
				}
				s, err = bf.Reconcile(ctx, 48*time.Hour)
			} else {
				s, err = bf.Run(ctx, from, to)
			}
			return s.Listed, errors.Join(err, s.Err())
		}
	}
	if err := measure("`snapshot.List`, nothing stored (the day-by-day listing: 7,306 requests)", list); err != nil {
		return err
	}
	if err := measure("`loader backfill -dataset all`, nothing stored", run(false)); err != nil {
		return err
	}
	if err := snapshottest.Month(ctx, s3store.New(client, bucket, "snapshots"), day, 288, 5*time.Minute, 4); err != nil {
		return err
	}
	if err := measure("`snapshot.List`, one day stored (288 + 2 snapshots)", list); err != nil {
		return err
	}
	if err := measure("`loader backfill -dataset all`, one day stored (downloads and applies it)", run(false)); err != nil {
		return err
	}
	if err := measure("`loader backfill` again (everything in the ledger: no download)", run(false)); err != nil {
		return err
	}
	return measure("`-reconcile 48h` at the end of that day", run(true))
}

// medianMax renders "median (max)" of ds.
func medianMax(ds []time.Duration) string {
	if len(ds) == 1 {
		return scalebench.Format(ds[0])
	}
	return fmt.Sprintf("%s (max %s)", scalebench.Format(scalebench.Percentile(ds, 50)), scalebench.Format(scalebench.Percentile(ds, 100)))
}

func group(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// table is the figures by row and size, printed as Markdown.
type table struct {
	sizes   []int
	rows    []string
	targets map[string]string
	cells   map[string]map[int]string
}

func newTable(sizes []int) *table {
	return &table{sizes: sizes, targets: map[string]string{}, cells: map[string]map[int]string{}}
}

func (t *table) set(row, target string, size int, value string) {
	if _, ok := t.cells[row]; !ok {
		t.rows = append(t.rows, row)
		t.cells[row] = map[int]string{}
	}
	if target != "" {
		t.targets[row] = target
	}
	t.cells[row][size] = value
	fmt.Fprintf(os.Stderr, "bench-scale: %d years: %s: %s\n", size, row, value)
}

func (t *table) print(w io.Writer) {
	fmt.Fprint(w, "| figure | target (5 years) |")
	for _, s := range t.sizes {
		fmt.Fprintf(w, " %d year%s |", s, map[bool]string{true: "s"}[s > 1])
	}
	fmt.Fprint(w, "\n|---|---|")
	for range t.sizes {
		fmt.Fprint(w, "---|")
	}
	fmt.Fprintln(w)
	for _, r := range t.rows {
		fmt.Fprintf(w, "| %s | %s |", r, t.targets[r])
		for _, s := range t.sizes {
			v := t.cells[r][s]
			if v == "" {
				v = "-"
			}
			fmt.Fprintf(w, " %s |", v)
		}
		fmt.Fprintln(w)
	}
}
