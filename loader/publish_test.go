package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/parking-newtaipei/parking-newtaipei/internal/awstest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/dbtest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/duckdbtest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/feedtest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/snapshottest"
	"github.com/parking-newtaipei/parking-newtaipei/reliability"
	"github.com/parking-newtaipei/parking-newtaipei/shared/clock"
	"github.com/parking-newtaipei/parking-newtaipei/shared/export/publish"
	"github.com/parking-newtaipei/parking-newtaipei/shared/extract"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue/sqlitequeue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store/filestore"
	"github.com/parking-newtaipei/parking-newtaipei/shared/web/livemap"
)

// published is a pipeline whose loader publishes to a prefix of a bucket on
// the S3 test server.
type published struct {
	*pipeline
	s3     *s3.Client
	bucket string
}

const publishPrefix = "public/"

func newPublished(t *testing.T) *published {
	t.Helper()
	client, bucket := awstest.S3(t)
	p := newPipeline(t)
	p.extra = append(awstest.Env(t), "PARKING_PUBLISH=s3://"+bucket+"/"+strings.TrimSuffix(publishPrefix, "/"))
	return &published{pipeline: p, s3: client, bucket: bucket}
}

// months are the fetch times of the test's snapshots: two closed months and
// the current one (Taipei, by the real clock the loader reads).
func months() (closed2, closed1, current time.Time) {
	now := time.Now().In(clock.Taipei)
	start := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, clock.Taipei)
	return start.AddDate(0, -2, 9), start.AddDate(0, -1, 20), start
}

// enqueue stores snapshots in the pipeline's store and enqueues them.
func (p *pipeline) enqueue(snaps ...*snapshot.Snapshot) {
	p.t.Helper()
	ctx := context.Background()
	st, err := filestore.Open(filepath.Join(p.dir, "snapshots"))
	if err != nil {
		p.t.Fatal(err)
	}
	q, err := sqlitequeue.Open(ctx, filepath.Join(p.dir, "queue.db"), sqlitequeue.Options{})
	if err != nil {
		p.t.Fatal(err)
	}
	defer q.Close()
	for _, s := range snaps {
		res, loc, err := snapshottest.Put(ctx, st, s)
		if err != nil {
			p.t.Fatal(err)
		}
		body, err := queue.EncodeMessage(extract.Message(res, loc))
		if err != nil {
			p.t.Fatal(err)
		}
		if err := q.Send(ctx, body); err != nil {
			p.t.Fatal(err)
		}
	}
}

// fill enqueues lots and availability over three months.
func (p *pipeline) fill() {
	c2, c1, cur := months()
	snaps := []*snapshot.Snapshot{snapshottest.Lots(c2.Add(-time.Hour), feedtest.SampleLots())}
	for _, t := range []time.Time{c2, c2.Add(5 * time.Minute), c1, c1.Add(5 * time.Minute), cur} {
		snaps = append(snaps, snapshottest.Availability(t))
	}
	p.enqueue(snaps...)
}

// object is what S3 answers about a published object.
type object struct {
	contentType, cacheControl, etag string
	modified                        time.Time
}

func (p *published) head(key string) (object, error) {
	out, err := p.s3.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(p.bucket), Key: aws.String(publishPrefix + key)})
	if err != nil {
		return object{}, err
	}
	return object{aws.ToString(out.ContentType), aws.ToString(out.CacheControl), aws.ToString(out.ETag), aws.ToTime(out.LastModified)}, nil
}

// keys lists the published keys (relative to the prefix).
func (p *published) keys() []string {
	p.t.Helper()
	var keys []string
	pg := s3.NewListObjectsV2Paginator(p.s3, &s3.ListObjectsV2Input{Bucket: aws.String(p.bucket), Prefix: aws.String(publishPrefix)})
	for pg.HasMorePages() {
		page, err := pg.NextPage(context.Background())
		if err != nil {
			p.t.Fatal(err)
		}
		for _, o := range page.Contents {
			keys = append(keys, strings.TrimPrefix(aws.ToString(o.Key), publishPrefix))
		}
	}
	return keys
}

// download copies the published objects under prefix into dir, by key.
func (p *published) download(dir, prefix string) {
	p.t.Helper()
	for _, k := range p.keys() {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		out, err := p.s3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(p.bucket), Key: aws.String(publishPrefix + k)})
		if err != nil {
			p.t.Fatal(err)
		}
		path := filepath.Join(dir, filepath.FromSlash(k))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			p.t.Fatal(err)
		}
		f, err := os.Create(path)
		if err != nil {
			p.t.Fatal(err)
		}
		_, err = io.Copy(f, out.Body)
		out.Body.Close()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			p.t.Fatal(err)
		}
	}
}

func monthOf(t time.Time) string { return t.In(clock.Taipei).Format("2006-01") }

// checkParquet reads the published Parquet files with DuckDB and compares
// them, month by month and lot by lot, with the loader's database.
func (p *published) checkParquet() {
	t := p.t
	t.Helper()
	dir := t.TempDir()
	p.download(dir, "parquet/")
	av := fmt.Sprintf("read_parquet('%s/parquet/availability/*/*.parquet', hive_partitioning = true, hive_types = {'month': VARCHAR})", dir)
	lots := fmt.Sprintf("read_parquet('%s/parquet/lots/lots.parquet')", dir)
	res := duckdbtest.Query(t,
		"SELECT month, count(*) AS n, sum(available_car) AS s, min(epoch(observed_at)) AS lo, max(epoch(observed_at)) AS hi FROM "+av+" GROUP BY month ORDER BY month",
		"SELECT month, parking_id, count(*) AS n, sum(available_car) AS s FROM "+av+" GROUP BY ALL ORDER BY ALL",
		"SELECT column_name, column_type FROM (DESCRIBE SELECT parking_id, observed_at, available_car FROM "+av+")",
		"SELECT count(*) AS n, count(deleted_at) AS deleted, count(lon) AS placed, sum(total_car) AS cars FROM "+lots,
	)
	var duckMonths, duckLots [][]string
	for _, r := range res[0] {
		m := fmt.Sprint(r["month"])
		duckMonths = append(duckMonths, []string{m, fmt.Sprint(r["n"]), fmt.Sprint(r["s"])})
		// Each file holds its Taipei month's observations, nothing else.
		lo, hi := r["lo"].(float64), r["hi"].(float64)
		if monthOf(time.Unix(int64(lo), 0)) != m || monthOf(time.Unix(int64(hi), 0)) != m {
			t.Errorf("partition %s holds observations from %v to %v", m, time.Unix(int64(lo), 0), time.Unix(int64(hi), 0))
		}
	}
	for _, r := range res[1] {
		duckLots = append(duckLots, []string{fmt.Sprint(r["month"]), fmt.Sprint(r["parking_id"]), fmt.Sprint(r["n"]), fmt.Sprint(r["s"])})
	}
	sqlMonths := dbtest.Query(t, p.db(), "SELECT substr(recorded_at, 1, 7) AS m, count(*), sum(available_car) FROM availability GROUP BY m ORDER BY m")
	sqlLots := dbtest.Query(t, p.db(), "SELECT substr(recorded_at, 1, 7) AS m, parking_id, count(*), sum(available_car) FROM availability GROUP BY m, parking_id ORDER BY m, parking_id")
	if len(sqlMonths) < 3 {
		t.Fatalf("the database has %d months, want at least 3", len(sqlMonths))
	}
	if !slices.EqualFunc(duckMonths, sqlMonths, slices.Equal) {
		t.Errorf("DuckDB per month (month, count, sum) %v\nSQLite availability view %v", duckMonths, sqlMonths)
	}
	if !slices.EqualFunc(duckLots, sqlLots, slices.Equal) {
		t.Errorf("DuckDB and SQLite differ per month and lot: %d and %d groups", len(duckLots), len(sqlLots))
	}
	types := map[string]string{}
	for _, r := range res[2] {
		types[fmt.Sprint(r["column_name"])] = fmt.Sprint(r["column_type"])
	}
	if want := map[string]string{"parking_id": "VARCHAR", "observed_at": "TIMESTAMP WITH TIME ZONE", "available_car": "INTEGER"}; !equalMaps(types, want) {
		t.Errorf("DuckDB reads the columns as %v, want %v", types, want)
	}
	l := res[3][0]
	got := fmt.Sprint(l["n"], " ", l["deleted"], " ", l["placed"], " ", l["cars"])
	want := dbtest.Query(t, p.db(), "SELECT count(*) || ' ' || count(deleted_at) || ' ' || count(lon) || ' ' || sum(total_car) FROM parking_lots")[0][0]
	if got != want {
		t.Errorf("lots.parquet (lots, deleted, placed, cars) = %s, parking_lots = %s", got, want)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// After a drain with publication on, every object of the contract is there
// with its headers, the database copy is complete, DuckDB reads what SQLite
// holds, and a late snapshot for a closed month rewrites that month only.
func TestPublishAfterDrain(t *testing.T) {
	p := newPublished(t)
	p.fill()
	dayBefore := time.Now().In(clock.Taipei).Format("2006-01-02")
	p.mustRun(0, "loader", "serve", "-drain")
	day := time.Now().In(clock.Taipei).Format("2006-01-02")

	c2, c1, cur := months()
	daily := publish.DailyKey(day)
	if !slices.Contains(p.keys(), daily) {
		daily = publish.DailyKey(dayBefore) // the run crossed midnight
	}
	want := map[string][2]string{
		"availability.json":            {"application/json", "public, max-age=60"},
		"lots.geojson":                 {"application/geo+json", "public, max-age=60"},
		"parquet/lots/lots.parquet":    {"application/vnd.apache.parquet", "public, max-age=300"},
		publish.MonthKey(monthOf(c2)):  {"application/vnd.apache.parquet", "public, max-age=86400"},
		publish.MonthKey(monthOf(c1)):  {"application/vnd.apache.parquet", "public, max-age=86400"},
		publish.MonthKey(monthOf(cur)): {"application/vnd.apache.parquet", "public, max-age=300"},
		"parking.db":                   {"application/vnd.sqlite3", "public, max-age=300"},
		daily:                          {"application/vnd.sqlite3", "public, max-age=31536000, immutable"},
	}
	for key, h := range want {
		o, err := p.head(key)
		if err != nil {
			t.Errorf("%s: %v", key, err)
			continue
		}
		if o.contentType != h[0] || o.cacheControl != h[1] {
			t.Errorf("%s: Content-Type %q, Cache-Control %q; want %q, %q", key, o.contentType, o.cacheControl, h[0], h[1])
		}
	}
	// The map page, as a static site beside the data it reads.
	site := livemap.Names()
	for _, name := range site {
		o, err := p.head(name)
		if err != nil {
			t.Errorf("map page file %s: %v", name, err)
			continue
		}
		if o.contentType == "" || o.cacheControl != publish.CacheSite {
			t.Errorf("%s: Content-Type %q, Cache-Control %q; want a type and %q", name, o.contentType, o.cacheControl, publish.CacheSite)
		}
	}
	if o, err := p.head("index.html"); err != nil || o.contentType != "text/html; charset=utf-8" {
		t.Errorf("index.html: %+v, %v; want text/html; charset=utf-8", o, err)
	}
	if keys := p.keys(); len(keys) != len(want)+len(site) {
		t.Errorf("published %v, want the %d objects of the contract and the %d files of the map page", keys, len(want), len(site))
	}

	// The published database is a complete, consistent copy.
	dir := t.TempDir()
	p.download(dir, "parking.db")
	copyDB := filepath.Join(dir, "parking.db")
	for _, table := range []string{"parking_lots", "lot_versions", "availability", "availability_latest", "snapshots"} {
		if got, want := dbtest.Count(t, copyDB, table, ""), dbtest.Count(t, p.db(), table, ""); got != want {
			t.Errorf("published parking.db: %d rows in %s, the loader's database %d", got, table, want)
		}
	}
	if got := dbtest.Query(t, copyDB, "PRAGMA integrity_check"); len(got) != 1 || got[0][0] != "ok" {
		t.Errorf("integrity_check of the published copy: %v", got)
	}
	p.checkParquet()

	// A late snapshot for the oldest closed month.
	before := map[string]object{}
	for _, m := range []time.Time{c2, c1, cur} {
		o, err := p.head(publish.MonthKey(monthOf(m)))
		if err != nil {
			t.Fatal(err)
		}
		before[monthOf(m)] = o
	}
	p.enqueue(snapshottest.Availability(c2.Add(3 * 24 * time.Hour)))
	r := p.mustRun(0, "loader", "serve", "-drain")
	for m, o := range before {
		after, err := p.head(publish.MonthKey(m))
		if err != nil {
			t.Fatal(err)
		}
		rewritten := strings.Contains(r.stderr, `"key":"`+publish.MonthKey(m)+`"`)
		if m == monthOf(c2) {
			if after.etag == o.etag || !rewritten {
				t.Errorf("month %s: ETag %s -> %s, published again %v; want a new file", m, o.etag, after.etag, rewritten)
			}
			continue
		}
		if after.etag != o.etag || !after.modified.Equal(o.modified) || rewritten {
			t.Errorf("month %s was touched by a late snapshot of %s (ETag %s -> %s, modified %v -> %v, log %v)",
				m, monthOf(c2), o.etag, after.etag, o.modified, after.modified, rewritten)
		}
	}
	p.checkParquet()
}

// A destination that refuses every connection neither stops nor fails
// applies: they commit and their messages are deleted while publication
// fails; once the destination is back, publication catches up, in the
// running loader and after a restart.
func TestPublishFailingDestination(t *testing.T) {
	p := newPublished(t)
	proxy, err := reliability.NewProxy(awstest.S3Endpoint(t).Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	p.extra = append(p.extra, "AWS_ENDPOINT_URL_S3="+proxy.URL)
	proxy.Inject(reliability.Reset, 1<<30, nil) // refuse everything

	p.fill()
	r := p.mustRun(0, "loader", "serve", "-drain")
	applied := dbtest.Count(t, p.db(), "snapshots", "outcome = 'applied'")
	if applied != 6 {
		t.Errorf("%d snapshots applied while the destination refused, want 6", applied)
	}
	q, err := sqlitequeue.Open(context.Background(), filepath.Join(p.dir, "queue.db"), sqlitequeue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	visible, inFlight, err := q.Len(context.Background())
	q.Close()
	if err != nil || visible+inFlight != 0 {
		t.Errorf("queue holds %d visible and %d in-flight messages (err %v): applied messages were not deleted", visible, inFlight, err)
	}
	if !strings.Contains(r.stderr, "publication failed; retrying later") || !strings.Contains(r.stderr, "publication incomplete at stop") {
		t.Errorf("the failing publication was not logged:\n%.3000s", r.stderr)
	}
	if proxy.Injected()[reliability.Reset] == 0 {
		t.Fatal("no request reached the refusing destination")
	}
	if keys := p.keys(); len(keys) != 0 {
		t.Fatalf("objects published through a refusing destination: %v", keys)
	}

	// The running loader catches up once the destination is back.
	proc := p.start("loader", "serve")
	proc.waitFor(t, "publication failed; retrying later")
	proxy.Clear()
	// Both workers retry after their backoff, in either order.
	proc.waitForAll(t, `"key":"availability.json"`, `"msg":"month published"`)
	proc.cmd.Process.Signal(syscall.SIGTERM)
	if code := proc.wait(); code != 0 {
		t.Fatalf("loader exited %d after SIGTERM", code)
	}
	for _, key := range []string{"availability.json", "lots.geojson", "parquet/lots/lots.parquet", "parking.db"} {
		if _, err := p.head(key); err != nil {
			t.Errorf("%s after the destination came back: %v", key, err)
		}
	}
	// And a restart publishes whatever the stop left (here: nothing stale).
	p.mustRun(0, "loader", "serve", "-drain")
	p.checkParquet()
}

// waitForAll reads log lines until each of subs has appeared in one, in any
// order; it fails if the process ends first. The deadline only guards
// against a hung test.
func (pr *proc) waitForAll(t *testing.T, subs ...string) {
	t.Helper()
	left := slices.Clone(subs)
	timeout := time.After(60 * time.Second)
	for len(left) > 0 {
		select {
		case line, ok := <-pr.lines:
			if !ok {
				t.Fatalf("process ended before logging %q", left)
			}
			left = slices.DeleteFunc(left, func(s string) bool { return strings.Contains(line, s) })
		case <-timeout:
			t.Fatalf("no log lines with %q within 60s", left)
		}
	}
}

// loader local publishes to a directory the same way: the same code path as
// serve, another destination.
func TestLocalPublishesToADirectory(t *testing.T) {
	p := newPipeline(t)
	public := filepath.Join(p.dir, "public")
	p.extra = append(p.extra, "PARKING_PUBLISH=file://"+public)
	pr := p.start("loader", "local")
	pr.waitForAll(t, `"key":"availability.json"`, `"msg":"month published"`)
	if err := pr.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := pr.wait(); code != 0 {
		t.Fatalf("loader local exited %d after SIGTERM, want 0", code)
	}
	// The published availability.json is the export file, byte for byte.
	got, err := os.ReadFile(filepath.Join(public, "availability.json"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(p.dir, "availability.json"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("published availability.json differs from the export:\n%.300s\n%.300s", got, want)
	}
	month := monthOf(time.Now())
	for _, key := range []string{"lots.geojson", "parquet/lots/lots.parquet", publish.MonthKey(month), "parking.db"} {
		if _, err := os.Stat(filepath.Join(public, filepath.FromSlash(key))); err != nil {
			t.Errorf("%s: %v", key, err)
		}
	}
	if got, want := dbtest.Count(t, filepath.Join(public, "parking.db"), "availability", ""), dbtest.Count(t, p.db(), "availability", ""); got != want {
		t.Errorf("published parking.db holds %d observations, the database %d", got, want)
	}
}

func TestPublishFlagsAreChecked(t *testing.T) {
	p := newPipeline(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-publish", "s3://b/snapshots/public", "-store", "s3://b/snapshots"}, "overlap"},
		{[]string{"-publish", "file://" + filepath.Join(p.dir, "snapshots")}, "overlap"},
		{[]string{"-publish", "ftp://host/dir"}, "unknown scheme"},
		{[]string{"-publish", "s3://b/public", "-publish-db-every", "10s"}, "-publish-db-every 10s"},
	} {
		r := p.run("loader", append([]string{"serve", "-drain"}, c.args...)...)
		if r.code != 1 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("serve %v: exit %d, stderr %q; want 1 and %q", c.args, r.code, r.stderr, c.want)
		}
	}
}
