package deploy

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/parking-newtaipei/parking-newtaipei/internal/clitest"
)

// child returns the value of key in a YAML mapping node (nil if absent).
func child(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// Every stateful resource says what happens to its data when the stack is deleted or the resource
// replaced (cfn-lint I3011), instead of leaving it to the default.
func TestStatefulResourcesHaveExplicitDeletionPolicies(t *testing.T) {
	stateful := map[string]bool{"AWS::S3::Bucket": true, "AWS::EFS::FileSystem": true, "AWS::SQS::Queue": true, "AWS::Logs::LogGroup": true}
	res := rawTemplate(t)["Resources"]
	n := 0
	for _, name := range keys(res) {
		body := child(res, name)
		if !stateful[child(body, "Type").Value] {
			continue
		}
		n++
		for _, p := range []string{"DeletionPolicy", "UpdateReplacePolicy"} {
			v := child(body, p)
			if v == nil || !slices.Contains([]string{"Delete", "Retain", "Snapshot", "RetainExceptOnCreate"}, v.Value) {
				t.Errorf("%s (%s) has no explicit %s", name, child(body, "Type").Value, p)
			}
		}
	}
	if n != 9 {
		t.Errorf("%d stateful resources, want 9 (1 bucket, 1 file system, 3 queues, 4 log groups)", n)
	}
	// The data itself stays.
	for _, name := range []string{"SnapshotBucket", "FileSystem"} {
		if v := child(child(res, name), "DeletionPolicy"); v == nil || v.Value != "Retain" {
			t.Errorf("%s must be retained", name)
		}
	}
}

// The snapshots are the source of truth: versioning is on unless the operator says otherwise, and the
// publication, which replaces its files all day, keeps replaced versions one day only.
func TestVersioningOnByDefaultWithLifecycles(t *testing.T) {
	if got := paramDefault(t, "EnableBucketVersioning"); got != "true" {
		t.Errorf("EnableBucketVersioning defaults to %q, want true", got)
	}
	b, err := template(t).GetS3BucketWithName("SnapshotBucket")
	if err != nil {
		t.Fatal(err)
	}
	cond, yes, no, ok := ifOf(b.VersioningConfiguration.Status)
	if !ok || cond != "VersioningOn" || yes != "Enabled" || no != "Suspended" {
		t.Errorf("versioning status %q, want !If [VersioningOn, Enabled, Suspended]", b.VersioningConfiguration.Status)
	}
	rules := map[string]string{} // rule id -> what it does
	for _, r := range b.LifecycleConfiguration.Rules {
		var does []string
		if r.NoncurrentVersionExpiration != nil {
			does = append(does, fmt.Sprintf("noncurrent %d", r.NoncurrentVersionExpiration.NoncurrentDays))
		}
		if r.ExpirationInDays != nil {
			does = append(does, fmt.Sprintf("expire %d", *r.ExpirationInDays))
		}
		// Rules with the same prefix add up (the publication's incomplete uploads have a rule of their own).
		if prefix := subString(deref(r.Prefix)); len(does) > 0 && rules[prefix] != "" {
			rules[prefix] += ", " + strings.Join(does, ", ")
		} else if len(does) > 0 {
			rules[prefix] = strings.Join(does, ", ")
		}
	}
	want := map[string]string{
		"${PublishPrefix}/":       "noncurrent 1",
		"${AthenaResultsPrefix}/": "noncurrent 1, expire 7",
	}
	for prefix, does := range want {
		if rules[prefix] != does {
			t.Errorf("lifecycle for %s: %q, want %q (rules: %v)", prefix, rules[prefix], does, rules)
		}
	}
	// The dated daily database copies expire after PublishedDbCopyDays.
	var daily bool
	for _, r := range b.LifecycleConfiguration.Rules {
		if subString(deref(r.Prefix)) == "${PublishPrefix}/db/" && r.ExpirationInDays != nil && r.Status == "Enabled" {
			daily = true
		}
	}
	if !daily || paramDefault(t, "PublishedDbCopyDays") != "30" {
		t.Error("no expiry of the daily database copies under <PublishPrefix>/db/ (PublishedDbCopyDays, default 30)")
	}
}

// The two subnets are checked before anything is created: two zones, one VPC.
func TestSubnetsAreCheckedBeforeAnythingIsCreated(t *testing.T) {
	rules := rawTemplate(t)["Rules"]
	if rules == nil {
		t.Fatal("no Rules section")
	}
	var text strings.Builder
	enc := yaml.NewEncoder(&text)
	if err := enc.Encode(child(rules, "SubnetsInTwoZonesOfTheVpc")); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(strings.Fields(text.String()), " ")
	for _, want := range []string{
		"Fn::Not: - Fn::Equals: - Fn::ValueOf: [SubnetA, AvailabilityZone] - Fn::ValueOf: [SubnetB, AvailabilityZone]",
		`Fn::EachMemberEquals: - Fn::ValueOfAll: ["AWS::EC2::Subnet::Id", VpcId] - Ref: VpcId`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("rule SubnetsInTwoZonesOfTheVpc lacks %q:\n%s", want, got)
		}
	}
	tp := template(t)
	for _, p := range []string{"SubnetA", "SubnetB"} {
		if tp.Parameters[p].Type != "AWS::EC2::Subnet::Id" {
			t.Errorf("%s is %q, want one AWS::EC2::Subnet::Id", p, tp.Parameters[p].Type)
		}
	}
	a, _ := tp.GetEFSMountTargetWithName("MountTargetA")
	b, _ := tp.GetEFSMountTargetWithName("MountTargetB")
	if a == nil || b == nil || !isRef(a.SubnetId, "SubnetA") || !isRef(b.SubnetId, "SubnetB") {
		t.Error("the mount targets are not in SubnetA and SubnetB")
	}
	s, _ := tp.GetECSServiceWithName("LoaderService")
	subnets := s.NetworkConfiguration.AwsvpcConfiguration.Subnets
	if len(subnets) != 2 || !isRef(subnets[0], "SubnetA") || !isRef(subnets[1], "SubnetB") {
		t.Errorf("the loader runs in %v, want [SubnetA SubnetB]", subnets)
	}
	for name, sc := range tp.GetAllSchedulerScheduleResources() {
		subnets := sc.Target.EcsParameters.NetworkConfiguration.AwsvpcConfiguration.Subnets
		if len(subnets) != 2 || !isRef(subnets[0], "SubnetA") || !isRef(subnets[1], "SubnetB") {
			t.Errorf("%s runs the extractor in %v, want [SubnetA SubnetB]", name, subnets)
		}
	}
	// The publication never overlaps the snapshots or the query results.
	prefixes := strings.Join(strings.Fields(yamlText(t, child(rules, "PrefixesApart"))), " ")
	for _, pair := range [][2]string{{"SnapshotPrefix", "PublishPrefix"}, {"SnapshotPrefix", "AthenaResultsPrefix"}, {"PublishPrefix", "AthenaResultsPrefix"}} {
		if !strings.Contains(prefixes, fmt.Sprintf("Fn::Not: - Fn::Equals: [{Ref: %s}, {Ref: %s}]", pair[0], pair[1])) {
			t.Errorf("no rule keeps %s and %s apart:\n%s", pair[0], pair[1], prefixes)
		}
	}
}

func yamlText(t *testing.T, n *yaml.Node) string {
	t.Helper()
	var b strings.Builder
	if err := yaml.NewEncoder(&b).Encode(n); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// What the loader task is told: reconcile on, publication, backups, and the extractor's pings.
func TestTaskEnvironmentOfTheStack(t *testing.T) {
	_, loader := containerOf(t, "LoaderTaskDefinition")
	e := env(loader)
	if !isRef(e["PARKING_RECONCILE"], "ReconcileWindow") {
		t.Errorf("PARKING_RECONCILE %q, want the ReconcileWindow parameter", e["PARKING_RECONCILE"])
	}
	if d := paramDefault(t, "ReconcileWindow"); d == "0" || d == "" {
		t.Errorf("reconcile is off by default (%q): a snapshot whose message was lost is never applied", d)
	}
	if sub := subString(e["PARKING_PUBLISH"]); sub != "s3://${SnapshotBucket}/${PublishPrefix}" {
		t.Errorf("PARKING_PUBLISH %q, want s3://${SnapshotBucket}/${PublishPrefix}", sub)
	}
	if !isRef(e["PARKING_BACKUP_KEEP"], "BackupKeep") || paramDefault(t, "BackupKeep") != "7" {
		t.Errorf("PARKING_BACKUP_KEEP %q, want the BackupKeep parameter (default 7)", e["PARKING_BACKUP_KEEP"])
	}
	fs, _ := template(t).GetEFSFileSystemWithName("FileSystem")
	if c, yes, no, ok := ifOf(fs.BackupPolicy.Status); !ok || c != "EfsBackupOn" || yes != "ENABLED" || no != "DISABLED" || paramDefault(t, "EfsAwsBackup") != "true" {
		t.Errorf("EFS backup policy %q, want !If [EfsBackupOn, ENABLED, DISABLED], on by default", fs.BackupPolicy.Status)
	}
	if !isRef(e["PARKING_PUBLISH_DB_EVERY"], "PublishDbEvery") {
		t.Errorf("PARKING_PUBLISH_DB_EVERY %q", e["PARKING_PUBLISH_DB_EVERY"])
	}
	out := template(t).Outputs["BackupDir"]
	if e["PARKING_BACKUP_DIR"] == "" || fmt.Sprint(out.Value) != e["PARKING_BACKUP_DIR"] {
		t.Errorf("PARKING_BACKUP_DIR %q and the BackupDir output %v differ", e["PARKING_BACKUP_DIR"], out.Value)
	}
	_, ex := containerOf(t, "ExtractorTaskDefinition")
	e = env(ex)
	if !isRef(e["HEALTHCHECK_PARKING_URL"], "HealthcheckLotsUrl") || !isRef(e["HEALTHCHECK_AVAILABILITY_URL"], "HealthcheckAvailabilityUrl") {
		t.Errorf("the extractor's healthcheck pings are not the parameters: %v", e)
	}
	for _, p := range []string{"HealthcheckLotsUrl", "HealthcheckAvailabilityUrl"} {
		if paramDefault(t, p) != "" {
			t.Errorf("%s defaults to %q, want empty (no ping)", p, paramDefault(t, p))
		}
	}
	q, _ := template(t).GetSQSQueueWithName("SnapshotQueue")
	if deref(q.VisibilityTimeout) != 120 {
		t.Errorf("queue visibility %d s, want 120, what the loader sets on each receive (-visibility 2m)", deref(q.VisibilityTimeout))
	}
}

// The stack runs the binaries as they are: every command it gives a container exists with the flags
// it uses, and every variable it sets is one the program reads.
func TestTheStackRunsTheBinariesAsTheyAre(t *testing.T) {
	progs := clitest.Build(t, moduleRoot(t))
	source := clitest.SourceEnv(t, moduleRoot(t), "extractor", "loader", "shared")
	checkArgs := func(where, prog string, args []string) {
		t.Helper()
		p := progs[prog]
		if len(args) == 0 {
			t.Errorf("%s: no command", where)
			return
		}
		c, ok := p.Commands[args[0]]
		if !ok {
			t.Errorf("%s: %s has no command %q", where, prog, args[0])
			return
		}
		for i := 1; i < len(args); i++ {
			name, _, hasValue := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
			if !strings.HasPrefix(args[i], "-") {
				continue
			}
			f, ok := c.Flags[name]
			if !ok {
				t.Errorf("%s: %s %s has no flag -%s", where, prog, c.Name, name)
				continue
			}
			if !f.Bool && !hasValue {
				i++
			}
		}
	}
	checkEnv := func(where string, c *ecsContainer, known map[string]bool) {
		t.Helper()
		for name := range env(c) {
			if !strings.HasPrefix(name, "PARKING_") && !strings.HasPrefix(name, "HEALTHCHECK_") {
				continue // LOG_LEVEL is a flag's variable too, checked below; AWS_REGION, GOMEMLIMIT are the runtime's
			}
			if !known[name] {
				t.Errorf("%s sets %s, which the program does not read", where, name)
			}
		}
		if e := env(c); e["LOG_LEVEL"] != "" && !known["LOG_LEVEL"] {
			t.Errorf("%s sets LOG_LEVEL, which the program does not read", where)
		}
	}

	_, loader := containerOf(t, "LoaderTaskDefinition")
	checkArgs("loader container command", "loader", loader.Command)
	if hc := loader.HealthCheck.Command; len(hc) < 3 || hc[1] != "/loader" {
		t.Errorf("health check %v does not run /loader", hc)
	} else {
		checkArgs("loader health check", "loader", hc[2:])
	}
	serve := map[string]bool{}
	for _, f := range progs["loader"].Commands["serve"].Flags {
		if f.Env != "" {
			serve[f.Env] = true
		}
	}
	checkEnv("the loader task definition", loader, serve)

	_, ex := containerOf(t, "ExtractorTaskDefinition")
	checkArgs("extractor container command", "extractor", ex.Command)
	exEnv := progs["extractor"].Env()
	for _, name := range source {
		if strings.HasPrefix(name, "HEALTHCHECK_") { // read without a flag, by fetch
			exEnv[name] = true
		}
	}
	checkEnv("the extractor task definition", ex, exEnv)
	for name, s := range template(t).GetAllSchedulerScheduleResources() {
		var in struct {
			ContainerOverrides []struct {
				Command []string `json:"command"`
			} `json:"containerOverrides"`
		}
		if err := json.Unmarshal([]byte(deref(s.Target.Input)), &in); err != nil || len(in.ContainerOverrides) != 1 {
			t.Fatalf("%s input: %v", name, err)
		}
		checkArgs(name, "extractor", in.ContainerOverrides[0].Command)
	}
}
