package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/internal/awstest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/clitest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/dbtest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/feedtest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/snapshottest"
	"github.com/parking-newtaipei/parking-newtaipei/shared/clock"
	"github.com/parking-newtaipei/parking-newtaipei/shared/extract"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/load/consume"
	"github.com/parking-newtaipei/parking-newtaipei/shared/ops/metrics"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue/sqsqueue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store/s3store"
)

// stackEnv is the loader task definition's environment as the stack sets it, resolved for a test:
// references to the bucket and the queue become the test's, other parameters their defaults, paths on
// EFS (/mnt/efs) a directory of the test's. A variable the test cannot resolve fails it: the stack
// would run the binary with something this test has not seen.
func stackEnv(t *testing.T, efs, bucket, queueURL string) []string {
	t.Helper()
	_, loader := containerOf(t, "LoaderTaskDefinition")
	refs := map[string]string{"SnapshotBucket": bucket, "SnapshotQueue": queueURL, "AWS::Region": awstest.Region}
	resolve := func(name string) string {
		if v, ok := refs[name]; ok {
			return v
		}
		return paramDefault(t, name)
	}
	var out []string
	for name, raw := range env(loader) {
		v := raw
		if f, arg, ok := fn(raw); ok {
			switch f {
			case "Ref":
				v = resolve(arg.(string))
			case "Fn::Sub":
				v = subVar.ReplaceAllStringFunc(subString(raw), func(m string) string { return resolve(m[2 : len(m)-1]) })
			default:
				t.Fatalf("loader environment %s: %s is not resolved by this test", name, f)
			}
		}
		switch {
		case strings.HasPrefix(v, "/mnt/efs"):
			v = efs + strings.TrimPrefix(v, "/mnt/efs")
		case name == "PARKING_HTTP_ADDR":
			v = "127.0.0.1:0" // the task's own loopback port; any free one here
		}
		out = append(out, name+"="+v)
	}
	// The test servers' endpoints and keys, as the task role and the region's endpoints would be;
	// a short long poll so that -drain ends quickly.
	return append(append(out, awstest.Env(t)...), "PARKING_POLL_WAIT=1s", "PATH="+os.Getenv("PATH"))
}

// runbookCommand returns the container command of the one-off task in section heading of the runbook
// file, from its `--overrides '{"containerOverrides":[...]}'`, and the task definition it runs.
func runbookCommand(t *testing.T, file, heading string) (taskDef string, command []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(moduleRoot(t), "docs", file))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	start := strings.Index(text, "\n## "+heading+"\n")
	if start < 0 {
		t.Fatalf("%s has no section %q", file, heading)
	}
	section := text[start+1:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	m := regexp.MustCompile(`--task-definition \$\(out (\w+)\)[\s\S]*?--overrides '([^']*)'`).FindStringSubmatch(section)
	if m == nil {
		t.Fatalf("%s, %q: no run-task with --overrides", file, heading)
	}
	var o struct {
		ContainerOverrides []struct {
			Name    string   `json:"name"`
			Command []string `json:"command"`
		} `json:"containerOverrides"`
	}
	if err := json.Unmarshal([]byte(m[2]), &o); err != nil || len(o.ContainerOverrides) != 1 || o.ContainerOverrides[0].Name != "loader" {
		t.Fatalf("%s, %q: overrides %s: %v", file, heading, m[2], err)
	}
	return m[1], o.ContainerOverrides[0].Command
}

func run(t *testing.T, bin string, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Dir = t.TempDir()
	return clitest.Run(t, cmd)
}

// emfReaches reports whether an EMF line in logs reaches the stack's alarm: the alarm's namespace and
// metric, its whole dimension set (CloudWatch matches a metric by all of its dimensions) with its
// values, its unit if it names one, and a value that crosses its threshold. The alarm's statistic
// must make one such line enough (Sum or Maximum over its period).
func emfReaches(t *testing.T, alarmName, logs string) bool {
	t.Helper()
	alarm, err := template(t).GetCloudWatchAlarmWithName(alarmName)
	if err != nil {
		t.Fatal(err)
	}
	if st := deref(alarm.Statistic); st != "Sum" && st != "Maximum" {
		t.Fatalf("%s: statistic %s: one line crossing the threshold would not be enough", alarmName, st)
	}
	crosses := func(v float64) bool {
		switch th := deref(alarm.Threshold); alarm.ComparisonOperator {
		case "GreaterThanOrEqualToThreshold":
			return v >= th
		case "GreaterThanThreshold":
			return v > th
		}
		t.Fatalf("%s: comparison %s: not an alarm on something happening", alarmName, alarm.ComparisonOperator)
		return false
	}
	var alarmDims []string
	want := map[string]string{}
	for _, d := range alarm.Dimensions {
		alarmDims = append(alarmDims, d.Name)
		want[d.Name] = d.Value
	}
	slices.Sort(alarmDims)
	for _, line := range strings.Split(logs, "\n") {
		var doc map[string]any
		if json.Unmarshal([]byte(line), &doc) != nil || doc["_aws"] == nil {
			continue
		}
		var meta struct {
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
				Metrics    []struct{ Name, Unit string }
			}
		}
		raw, _ := json.Marshal(doc["_aws"])
		if err := json.Unmarshal(raw, &meta); err != nil {
			t.Fatalf("EMF line %s: %v", line, err)
		}
		for _, d := range meta.CloudWatchMetrics {
			for _, dims := range d.Dimensions {
				dims = slices.Sorted(slices.Values(dims))
				if d.Namespace != deref(alarm.Namespace) || !slices.Equal(dims, alarmDims) {
					continue
				}
				for _, m := range d.Metrics {
					v, isNumber := doc[m.Name].(float64)
					ok := isNumber && m.Name == deref(alarm.MetricName) && (alarm.Unit == nil || *alarm.Unit == m.Unit) && crosses(v)
					for name, value := range want {
						ok = ok && doc[name] == value
					}
					if ok {
						return true
					}
				}
			}
		}
	}
	return false
}

// onTheStack is the loader as the stack runs it: the task definition's environment (stackEnv), the test
// servers' S3 and SQS, the EFS directory a temp dir. Snapshots are stored and announced as the extractor
// would.
type onTheStack struct {
	env    []string
	loader string
	db     string
	store  *s3store.Store
	queue  *sqsqueue.Queue
}

func newOnTheStack(t *testing.T) *onTheStack {
	t.Helper()
	s3c, bucket := awstest.S3(t)
	q := awstest.NewQueue(t, awstest.QueueOptions{VisibilityTimeout: 2 * time.Minute})
	awstest.Setenv(t)
	efs := t.TempDir()
	sq, err := sqsqueue.Open(context.Background(), q.URL, sqsqueue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sq.Close() })
	return &onTheStack{
		env: stackEnv(t, efs, bucket, q.URL), loader: clitest.Build(t, moduleRoot(t))["loader"].Path,
		db: filepath.Join(efs, "parking.db"), store: s3store.New(s3c, bucket, paramDefault(t, "SnapshotPrefix")), queue: sq,
	}
}

// send stores each snapshot and enqueues its message.
func (s *onTheStack) send(t *testing.T, snaps ...*snapshot.Snapshot) {
	t.Helper()
	ctx := context.Background()
	for _, snap := range snaps {
		res, loc, err := snapshottest.Put(ctx, s.store, snap)
		if err != nil {
			t.Fatal(err)
		}
		body, err := queue.EncodeMessage(extract.Message(res, loc))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.queue.Send(ctx, body); err != nil {
			t.Fatal(err)
		}
	}
}

// runbookOverride runs the command of the runbooks' section (English heading, Traditional Chinese
// heading), which must be the same in both and run the loader's task definition, as the stack runs it.
func (s *onTheStack) runbookOverride(t *testing.T, heading, zhHeading string) (args []string, stdout, stderr string) {
	t.Helper()
	taskDef, en := runbookCommand(t, "OPERATIONS.md", heading)
	zhTaskDef, zh := runbookCommand(t, "OPERATIONS.zh-TW.md", zhHeading)
	if taskDef != "LoaderTaskDefinitionArn" || zhTaskDef != taskDef || !slices.Equal(en, zh) {
		t.Fatalf("the runbooks differ or do not run the loader's task definition: %s %q, %s %q", taskDef, en, zhTaskDef, zh)
	}
	code, stdout, stderr := run(t, s.loader, s.env, en...)
	if code != 0 {
		t.Fatalf("loader %s: exit %d\n%s\n%s", strings.Join(en, " "), code, stdout, stderr)
	}
	return en, stdout, stderr
}

// TestRefusedLotsSnapshotOnTheStack (issue 13, item 11) runs the loader as the stack runs it (the task
// definition's environment, S3 and SQS) on a lots snapshot that removes nearly every lot, fetched when
// the 02:00 schedule's task really fetches (a minute and more after 02:00: the Fargate task starts
// first). The refusal must be what the stack's alarm watches, exactly; `loader stats` must show the
// fetch time the runbook asks for; and the runbook's override, as written in both languages, must
// then apply the snapshot.
func TestRefusedLotsSnapshotOnTheStack(t *testing.T) {
	stack := newOnTheStack(t)
	lots := feedtest.SampleLots()
	// The runbook's example day, so that its command is run exactly as written.
	day := time.Date(2026, 11, 26, 0, 0, 0, 0, clock.Taipei)
	stack.send(t, snapshottest.Lots(day.Add(-22*time.Hour+65*time.Second), lots), snapshottest.Lots(day.Add(2*time.Hour+80*time.Second), lots[:1]))

	code, _, stderr := run(t, stack.loader, stack.env, "serve", "-drain")
	db := stack.db
	if code != 0 || dbtest.Count(t, db, "snapshots", "outcome = 'refused'") != 1 {
		t.Fatalf("loader serve -drain: exit %d, want 0 with one refused snapshot\n%s", code, stderr)
	}
	active := dbtest.Count(t, db, "parking_lots", "deleted_at IS NULL")
	if active != len(lots)-countDuplicates(lots) {
		t.Fatalf("%d active lots after the refusal, want every lot of the first list", active)
	}

	// The alarm watches exactly what the loader wrote.
	if !emfReaches(t, "LotsSnapshotRefusedAlarm", stderr) {
		t.Fatalf("no EMF line reaches the alarm LotsSnapshotRefusedAlarm:\n%s", stderr)
	}

	// `loader stats` on the stack (the service stopped) shows the fetch time in Taipei time.
	code, stdout, stderr := run(t, stack.loader, stack.env, "stats")
	if code != 0 || !strings.Contains(stdout, "Refused snapshots: 1 (lots 1)") || !strings.Contains(stdout, "fetched 2026-11-26T02:01:20.000+08:00") {
		t.Fatalf("loader stats: exit %d\n%s\n%s", code, stdout, stderr)
	}

	// The runbook's override, as written, in both languages.
	en, stdout, stderr := stack.runbookOverride(t, "A refused lots snapshot", "停車場清單快照被拒絕")
	if got := dbtest.Count(t, db, "snapshots", "outcome = 'applied'"); got != 2 {
		t.Fatalf("after the runbook's override (loader %s): %d applied snapshots, want 2 (the refused one applied)\n%s\n%s",
			strings.Join(en, " "), got, stdout, stderr)
	}
	if got := dbtest.Count(t, db, "parking_lots", "deleted_at IS NULL"); got != 1 {
		t.Fatalf("%d active lots after the override, want 1", got)
	}
}

// countDuplicates counts rows whose ID appeared before (the last row of an ID wins).
func countDuplicates(rows []feed.LotRow) int {
	seen := map[string]bool{}
	n := 0
	for _, r := range rows {
		if seen[r.ID] {
			n++
		}
		seen[r.ID] = true
	}
	return n
}

// TestRefusedAvailabilitySnapshotsOnTheStack runs the loader as the stack runs it on the three kinds of
// availability refusal: a flood of lot IDs neither feed had, a snapshot without a single value, and one
// fetched a year after S3 wrote it. Each must reach the stack's availability alarm (and not the lots
// one), `loader stats` must list them with the fetch time the runbook asks for, and the runbook's
// override, as written in both languages, must apply the flood and nothing else: the other two have no
// override.
func TestRefusedAvailabilitySnapshotsOnTheStack(t *testing.T) {
	stack := newOnTheStack(t)
	live := feedtest.SampleAvailability(1)
	flood := slices.Clone(live)
	for i := range snapshot.MaxNewLotIDs + 1 {
		flood = append(flood, feed.AvailabilityRow{ID: fmt.Sprintf("X%06d", i), AvailableCar: "3"})
	}
	empty := slices.Clone(live)
	for i := range empty {
		empty[i].AvailableCar = ""
	}
	// The runbook's example day, so that its command is run exactly as written.
	day := time.Date(2026, 11, 26, 0, 0, 0, 0, clock.Taipei)
	page := func(at time.Time, rows []feed.AvailabilityRow) *snapshot.Snapshot {
		return snapshottest.Snapshot(feed.Availability, at, feedtest.AvailabilityJSONPages(rows, feedtest.PageCap))
	}
	stack.send(t, page(day.Add(10*time.Hour), live), page(day.Add(10*time.Hour+5*time.Minute), flood),
		page(day.Add(10*time.Hour+10*time.Minute), empty),
		page(time.Now().AddDate(1, 0, 0).Truncate(time.Second), live)) // stored now: fetched a year ahead of S3's write time

	code, _, stderr := run(t, stack.loader, stack.env, "serve", "-drain")
	db := stack.db
	if code != 0 || dbtest.Count(t, db, "snapshots", "outcome = 'refused' AND dataset = 'availability'") != 3 ||
		dbtest.Count(t, db, "snapshots", "outcome = 'applied'") != 1 {
		t.Fatalf("loader serve -drain: exit %d, want 0 with one applied and three refused snapshots\n%s", code, stderr)
	}
	if !emfReaches(t, "AvailabilitySnapshotRefusedAlarm", stderr) {
		t.Fatalf("no EMF line reaches the alarm AvailabilitySnapshotRefusedAlarm:\n%s", stderr)
	}
	if emfReaches(t, "LotsSnapshotRefusedAlarm", stderr) {
		t.Fatalf("availability refusals reach the lots alarm:\n%s", stderr)
	}

	code, stdout, stderr := run(t, stack.loader, stack.env, "stats")
	for _, want := range []string{"Refused snapshots: 3 (availability 3)", "fetched 2026-11-26T10:05:00.000+08:00",
		"would add 5001 lot IDs", "no row has a value for AVAILABLECAR", "after the store wrote it"} {
		if code != 0 || !strings.Contains(stdout, want) {
			t.Fatalf("loader stats: exit %d, no %q\n%s\n%s", code, want, stdout, stderr)
		}
	}

	// The runbook's override, as written, in both languages: the flood is applied, the other two stay refused.
	en, stdout, stderr := stack.runbookOverride(t, "A refused availability snapshot", "即時車位快照被拒絕")
	if got := dbtest.Count(t, db, "snapshots", "outcome = 'applied'"); got != 2 {
		t.Fatalf("after the runbook's override (loader %s): %d applied snapshots, want 2 (the flood applied)\n%s\n%s",
			strings.Join(en, " "), got, stdout, stderr)
	}
	if got := dbtest.Count(t, db, "snapshots", "outcome = 'refused'"); got != 2 {
		t.Fatalf("after the override: %d refused snapshots, want 2 (no override for no values or a future fetch time)", got)
	}
}

// TestDatabaseFailingAlarmWatchesTheLoadersMetric: the stack's alarm on a failing database watches the
// line the loader's metrics write every minute (shared/ops/metrics, fed by the consume loop's events;
// reliability/outage_test.go drives them with a real full disk): reached while the database fails, not
// while it works.
func TestDatabaseFailingAlarmWatchesTheLoadersMetric(t *testing.T) {
	reg := metrics.New(nil)
	var healthy, failing bytes.Buffer
	if err := reg.WriteEMF(&healthy, true); err != nil {
		t.Fatal(err)
	}
	reg.Observe(consume.Event{Kind: consume.DatabaseFailing, N: 10, Err: errors.New("database or disk is full")})
	if err := reg.WriteEMF(&failing, true); err != nil {
		t.Fatal(err)
	}
	if emfReaches(t, "DatabaseFailingAlarm", healthy.String()) {
		t.Errorf("a working database reaches the alarm:\n%s", healthy.String())
	}
	if !emfReaches(t, "DatabaseFailingAlarm", failing.String()) {
		t.Errorf("a failing database does not reach the alarm:\n%s", failing.String())
	}
	alarm, err := template(t).GetCloudWatchAlarmWithName("DatabaseFailingAlarm")
	if err != nil {
		t.Fatal(err)
	}
	// A loader that writes nothing is the "loader not running" alarm's, not this one's.
	if deref(alarm.Statistic) != "Maximum" || deref(alarm.Period) != 60 || deref(alarm.TreatMissingData) != "notBreaching" {
		t.Errorf("alarm: %s over %d s, missing data %s; want the Maximum of the minute's line, missing data not breaching",
			deref(alarm.Statistic), deref(alarm.Period), deref(alarm.TreatMissingData))
	}
}
