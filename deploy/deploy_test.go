// Package deploy holds the CloudFormation template of the AWS deployment and the tests that keep it,
// the Dockerfiles and the built binaries honest without an AWS account or a Docker engine.
package deploy

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/awslabs/goformation/v7"
	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/ecs"
	"github.com/awslabs/goformation/v7/intrinsics"
	"gopkg.in/yaml.v3"
)

const templatePath = "parking.yaml"

type (
	ecsTaskDef   = ecs.TaskDefinition
	ecsContainer = ecs.TaskDefinition_ContainerDefinition
)

var (
	tplOnce sync.Once
	tpl     *cloudformation.Template
	tplErr  error
)

// template parses parking.yaml into goformation's typed resources. goformation decodes every resource
// with DisallowUnknownFields, so a misspelt property fails here rather than at deploy time.
//
// Intrinsics are kept, not resolved: goformation's encoder turns each into a base64 string that fits a
// string field (decode with fn). Two cases need help because the typed field is not a string: a Ref to
// a List parameter where a []string is expected becomes a one-element list, and a Ref to a Number
// parameter where an int is expected becomes the parameter's default.
func template(t *testing.T) *cloudformation.Template {
	t.Helper()
	tplOnce.Do(func() {
		data, err := os.ReadFile(templatePath)
		if err != nil {
			tplErr = err
			return
		}
		handlers := map[string]intrinsics.IntrinsicHandler{}
		for k, v := range cloudformation.EncoderIntrinsics {
			handlers[k] = v
		}
		handlers["Ref"] = typedRef
		tpl, tplErr = goformation.ParseYAMLWithOptions(data, &intrinsics.ProcessorOptions{IntrinsicHandlerOverrides: handlers})
	})
	if tplErr != nil {
		t.Fatalf("parse %s: %v", templatePath, tplErr)
	}
	return tpl
}

func typedRef(_ string, input any, whole any) any {
	name, _ := input.(string)
	if name == "AWS::NoValue" {
		return nil
	}
	params, _ := whole.(map[string]any)["Parameters"].(map[string]any)
	if p, ok := params[name].(map[string]any); ok {
		typ, _ := p["Type"].(string)
		switch {
		case typ == "Number":
			return p["Default"]
		case strings.HasPrefix(typ, "List<") || typ == "CommaDelimitedList":
			return []any{cloudformation.Ref(name)}
		}
	}
	return cloudformation.Ref(name)
}

// fn decodes a goformation-encoded intrinsic: fn(s) = ("Ref", "X") for !Ref X.
func fn(s string) (name string, arg any, ok bool) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return "", nil, false
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil || len(m) != 1 {
		return "", nil, false
	}
	for k, v := range m {
		return k, v, true
	}
	return "", nil, false
}

// isRef reports whether s (a typed string field, or any value from an untyped policy document) is !Ref name.
func isRef(v any, name string) bool {
	if m, ok := v.(map[string]any); ok {
		return m["Ref"] == name
	}
	s, _ := v.(string)
	f, arg, ok := fn(s)
	return ok && f == "Ref" && arg == name
}

// getAttOf returns the logical id an !GetAtt points at ("" if v is not one).
func getAttOf(v any) string {
	var arg any
	if m, ok := v.(map[string]any); ok {
		arg, ok = m["Fn::GetAtt"]
		if !ok {
			return ""
		}
	} else {
		s, _ := v.(string)
		f, a, ok := fn(s)
		if !ok || f != "Fn::GetAtt" {
			return ""
		}
		arg = a
	}
	switch a := arg.(type) {
	case []any:
		if len(a) > 0 {
			s, _ := a[0].(string)
			return s
		}
	case string:
		return strings.SplitN(a, ".", 2)[0]
	}
	return ""
}

// subString returns the template string of an !Sub ("" if v is not one).
func subString(v any) string {
	var arg any
	if m, ok := v.(map[string]any); ok {
		arg = m["Fn::Sub"]
	} else {
		s, _ := v.(string)
		f, a, ok := fn(s)
		if !ok || f != "Fn::Sub" {
			return ""
		}
		arg = a
	}
	switch a := arg.(type) {
	case string:
		return a
	case []any:
		if len(a) > 0 {
			s, _ := a[0].(string)
			return s
		}
	}
	return ""
}

// ifOf returns the condition and the two branches of an !If.
func ifOf(v any) (cond string, yes, no any, ok bool) {
	s, _ := v.(string)
	f, arg, isFn := fn(s)
	if !isFn || f != "Fn::If" {
		return "", nil, nil, false
	}
	a, _ := arg.([]any)
	if len(a) != 3 {
		return "", nil, nil, false
	}
	c, _ := a[0].(string)
	return c, a[1], a[2], true
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// paramDefault is a parameter's default as a string.
func paramDefault(t *testing.T, name string) string {
	t.Helper()
	p, ok := template(t).Parameters[name]
	if !ok {
		t.Fatalf("parameter %s missing", name)
	}
	return fmt.Sprint(p.Default)
}

// ------------------------------------------------------------------ raw YAML: references

var pseudoParameters = map[string]bool{
	"AWS::AccountId": true, "AWS::NotificationARNs": true, "AWS::NoValue": true, "AWS::Partition": true,
	"AWS::Region": true, "AWS::StackId": true, "AWS::StackName": true, "AWS::URLSuffix": true,
}

type reference struct {
	kind, name, where string
}

var subVar = regexp.MustCompile(`\$\{([^}]*)\}`)

// collectRefs walks the raw YAML (short-form tags and long-form keys alike) and records every name a
// Ref, GetAtt, Sub, If, DependsOn or resource Condition uses.
func collectRefs(n *yaml.Node, where string, out *[]reference) {
	add := func(kind, name string) { *out = append(*out, reference{kind, name, where}) }
	subVars := func(s string, local map[string]bool) {
		for _, m := range subVar.FindAllStringSubmatch(s, -1) {
			v := m[1]
			if strings.HasPrefix(v, "!") || local[v] { // ${!Literal} is an escape, not a reference
				continue
			}
			if i := strings.Index(v, "."); i > 0 && !strings.HasPrefix(v, "AWS::") {
				add("GetAtt", v[:i])
			} else {
				add("Ref", v)
			}
		}
	}
	sub := func(n *yaml.Node) {
		switch n.Kind {
		case yaml.ScalarNode:
			subVars(n.Value, nil)
		case yaml.SequenceNode:
			local := map[string]bool{}
			if len(n.Content) == 2 && n.Content[1].Kind == yaml.MappingNode {
				for i := 0; i < len(n.Content[1].Content); i += 2 {
					local[n.Content[1].Content[i].Value] = true
				}
				collectRefs(n.Content[1], where, out)
			}
			if len(n.Content) > 0 {
				subVars(n.Content[0].Value, local)
			}
		}
	}
	getAtt := func(n *yaml.Node) {
		switch n.Kind {
		case yaml.ScalarNode:
			add("GetAtt", strings.SplitN(n.Value, ".", 2)[0])
		case yaml.SequenceNode:
			if len(n.Content) > 0 {
				add("GetAtt", n.Content[0].Value)
			}
		}
	}
	switch n.Tag {
	case "!Ref":
		add("Ref", n.Value)
		return
	case "!GetAtt":
		getAtt(n)
		return
	case "!Sub":
		sub(n)
		return
	case "!If":
		if len(n.Content) > 0 {
			add("Condition", n.Content[0].Value)
		}
	case "!Condition":
		add("Condition", n.Value)
		return
	}
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i].Value, n.Content[i+1]
			switch k {
			case "Ref":
				add("Ref", v.Value)
				continue
			case "Fn::GetAtt":
				getAtt(v)
				continue
			case "Fn::Sub":
				sub(v)
				continue
			case "Fn::If":
				if len(v.Content) > 0 {
					add("Condition", v.Content[0].Value)
				}
			}
			collectRefs(v, where, out)
		}
		return
	}
	for _, c := range n.Content {
		collectRefs(c, where, out)
	}
}

func rawTemplate(t *testing.T) map[string]*yaml.Node {
	t.Helper()
	data, err := os.ReadFile(templatePath)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	sections := map[string]*yaml.Node{}
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		sections[root.Content[i].Value] = root.Content[i+1]
	}
	return sections
}

func keys(n *yaml.Node) []string {
	var ks []string
	if n == nil {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		ks = append(ks, n.Content[i].Value)
	}
	return ks
}

func TestEveryParameterIsUsedAndEveryReferenceResolves(t *testing.T) {
	sec := rawTemplate(t)
	params, resources, conditions := keys(sec["Parameters"]), keys(sec["Resources"]), keys(sec["Conditions"])
	if len(resources) == 0 {
		t.Fatal("no resources")
	}

	var refs []reference
	for _, name := range []string{"Conditions", "Rules", "Resources", "Outputs"} {
		n := sec[name]
		if n == nil {
			continue
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			where := name + "." + n.Content[i].Value
			body := n.Content[i+1]
			// A resource's own Condition and DependsOn keys name conditions and resources.
			for j := 0; j+1 < len(body.Content); j += 2 {
				switch body.Content[j].Value {
				case "Condition":
					refs = append(refs, reference{"Condition", body.Content[j+1].Value, where})
				case "DependsOn":
					dep := body.Content[j+1]
					if dep.Kind == yaml.ScalarNode {
						refs = append(refs, reference{"GetAtt", dep.Value, where})
					}
					for _, d := range dep.Content {
						refs = append(refs, reference{"GetAtt", d.Value, where})
					}
				}
			}
			collectRefs(body, where, &refs)
		}
	}

	used := map[string]bool{}
	for _, r := range refs {
		switch r.kind {
		case "Ref":
			used[r.name] = true
			if !pseudoParameters[r.name] && !slices.Contains(params, r.name) && !slices.Contains(resources, r.name) {
				t.Errorf("%s: Ref %q is neither a parameter, a resource nor a pseudo parameter", r.where, r.name)
			}
		case "GetAtt":
			if !slices.Contains(resources, r.name) {
				t.Errorf("%s: %q is not a resource", r.where, r.name)
			}
		case "Condition":
			if !slices.Contains(conditions, r.name) {
				t.Errorf("%s: condition %q is not defined", r.where, r.name)
			}
			used["condition:"+r.name] = true
		}
	}
	for _, p := range params {
		if !used[p] {
			t.Errorf("parameter %s is never referenced", p)
		}
	}
	for _, c := range conditions {
		if !used["condition:"+c] {
			t.Errorf("condition %s is never used", c)
		}
	}
	if len(refs) < 50 {
		t.Errorf("only %d references found: the walker is probably broken", len(refs))
	}
}

// ------------------------------------------------------------------ typed resources

func TestTemplateParsesIntoTypedResources(t *testing.T) {
	tp := template(t)
	want := map[string]int{
		"AWS::S3::Bucket": 1, "AWS::S3::BucketPolicy": 1, "AWS::SQS::Queue": 3, "AWS::EFS::FileSystem": 1,
		"AWS::EFS::AccessPoint": 1, "AWS::EFS::MountTarget": 2, "AWS::ECS::Cluster": 1, "AWS::ECS::TaskDefinition": 2,
		"AWS::ECS::Service": 1, "AWS::Scheduler::Schedule": 2, "AWS::IAM::Role": 4, "AWS::CloudWatch::Alarm": 10,
		"AWS::Events::Rule": 2, "AWS::SNS::Topic": 1, "AWS::SNS::Subscription": 1, "AWS::Logs::LogGroup": 4,
		"AWS::Logs::ResourcePolicy": 1, "AWS::Glue::Database": 1, "AWS::Glue::Table": 2, "AWS::Athena::WorkGroup": 1,
		"AWS::CloudFront::OriginAccessControl": 1, "AWS::CloudFront::Distribution": 1,
	}
	got := map[string]int{}
	for _, r := range tp.Resources {
		got[r.AWSCloudFormationType()]++
	}
	for typ, n := range want {
		if got[typ] != n {
			t.Errorf("%s: %d resources, want %d", typ, got[typ], n)
		}
	}
	for _, typ := range []string{"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::User"} {
		if got[typ] != 0 {
			t.Errorf("unexpected %s: every permission is inline in a role and checked below", typ)
		}
	}
	for _, p := range []string{"VpcId", "SubnetA", "SubnetB", "ExtractorImageUri", "LoaderImageUri", "AvailabilityScheduleExpression",
		"LotsScheduleExpression", "ScheduleTimezone", "AlarmEmail", "UseFargateSpot", "LogRetentionDays", "SnapshotPrefix",
		"ContainerInsights", "ReconcileWindow", "HealthcheckLotsUrl", "HealthcheckAvailabilityUrl", "PublishPrefix",
		"PublishDbEvery", "PublishedDbCopyDays", "EnableCloudFront", "GlueDatabaseName", "AthenaResultsPrefix",
		"AthenaBytesScannedCutoff", "BackupKeep", "EfsAwsBackup"} {
		if _, ok := tp.Parameters[p]; !ok {
			t.Errorf("parameter %s missing", p)
		}
	}
	if got, want := paramDefault(t, "AvailabilityScheduleExpression"), "rate(5 minutes)"; got != want {
		t.Errorf("availability schedule default %q, want %q", got, want)
	}
	if got, want := paramDefault(t, "LotsScheduleExpression"), "cron(0 2 * * ? *)"; got != want {
		t.Errorf("lots schedule default %q, want %q (02:00 in the schedule's own time zone)", got, want)
	}
	if got, want := paramDefault(t, "ScheduleTimezone"), "Asia/Taipei"; got != want {
		t.Errorf("time zone default %q, want %q", got, want)
	}
	for _, o := range []string{"SnapshotBucketName", "QueueUrl", "DeadLetterQueueUrl", "ClusterName", "LoaderServiceName", "AlarmTopicArn",
		"QueueArn", "DeadLetterQueueArn", "ExtractorFailuresLogGroupName", "BackupDir", "PublishUrl", "PublicBaseUrl",
		"GlueDatabaseName", "AthenaWorkGroupName"} {
		if _, ok := tp.Outputs[o]; !ok {
			t.Errorf("output %s missing", o)
		}
	}
}

func TestSnapshotBucketIsPrivateEncryptedTLSOnlyWithLifecycle(t *testing.T) {
	tp := template(t)
	b, err := tp.GetS3BucketWithName("SnapshotBucket")
	if err != nil {
		t.Fatal(err)
	}
	if b.BucketEncryption == nil || len(b.BucketEncryption.ServerSideEncryptionConfiguration) == 0 ||
		b.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault == nil ||
		b.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault.SSEAlgorithm == "" {
		t.Error("bucket has no default encryption")
	}
	pab := b.PublicAccessBlockConfiguration
	if pab == nil || !deref(pab.BlockPublicAcls) || !deref(pab.BlockPublicPolicy) || !deref(pab.IgnorePublicAcls) || !deref(pab.RestrictPublicBuckets) {
		t.Errorf("public access not fully blocked: %+v", pab)
	}
	if string(b.AWSCloudFormationDeletionPolicy) != "Retain" {
		t.Error("the snapshots are the source of truth: the bucket must be retained when the stack is deleted")
	}
	var toIA, toGlacier bool
	if b.LifecycleConfiguration != nil {
		for _, r := range b.LifecycleConfiguration.Rules {
			if r.Status != "Enabled" {
				continue
			}
			for _, tr := range r.Transitions {
				if tr.StorageClass == "STANDARD_IA" {
					toIA = true
				}
				if tr.StorageClass == "GLACIER_IR" {
					toGlacier = true
				}
			}
			if len(r.Transitions) > 0 && !strings.Contains(subString(deref(r.Prefix)), "${SnapshotPrefix}/") {
				t.Errorf("lifecycle rule %s transitions more than the snapshot prefix", deref(r.Id))
			}
		}
	}
	if !toIA || !toGlacier {
		t.Errorf("lifecycle should move snapshots to STANDARD_IA and GLACIER_IR (IA %v, Glacier IR %v)", toIA, toGlacier)
	}

	bp, err := tp.GetS3BucketPolicyWithName("SnapshotBucketPolicy")
	if err != nil {
		t.Fatal(err)
	}
	if !isRef(bp.Bucket, "SnapshotBucket") {
		t.Errorf("bucket policy is on %q", bp.Bucket)
	}
	var tlsDeny bool
	for _, st := range statements(bp.PolicyDocument) {
		cond, _ := st["Condition"].(map[string]any)
		boolCond, _ := cond["Bool"].(map[string]any)
		if st["Effect"] == "Deny" && st["Principal"] == "*" && fmt.Sprint(boolCond["aws:SecureTransport"]) == "false" &&
			slices.Contains(strs(st["Action"]), "s3:*") {
			var bucket, objects bool
			for _, r := range list(st["Resource"]) {
				bucket = bucket || getAttOf(r) == "SnapshotBucket"
				objects = objects || subString(r) == "${SnapshotBucket.Arn}/*"
			}
			tlsDeny = bucket && objects
		}
	}
	if !tlsDeny {
		t.Error("no statement denies non-TLS access to the bucket and its objects")
	}
}

func TestQueuesEncryptedWithRedriveAndRetention(t *testing.T) {
	tp := template(t)
	q, err := tp.GetSQSQueueWithName("SnapshotQueue")
	if err != nil {
		t.Fatal(err)
	}
	if !deref(q.SqsManagedSseEnabled) && q.KmsMasterKeyId == nil {
		t.Error("queue is not encrypted")
	}
	rp, _ := q.RedrivePolicy.(map[string]any)
	if getAttOf(rp["deadLetterTargetArn"]) != "SnapshotDeadLetterQueue" {
		t.Errorf("redrive target %v, want the dead-letter queue", rp["deadLetterTargetArn"])
	}
	if n, _ := strconv.Atoi(fmt.Sprint(rp["maxReceiveCount"])); n != 5 {
		t.Errorf("maxReceiveCount %v, want 5", rp["maxReceiveCount"])
	}
	// The loader applies a snapshot in seconds and heartbeats; 300 s bounds how long a crashed loader's
	// message stays invisible. Much shorter risks duplicates mid-apply; much longer delays recovery.
	if v := deref(q.VisibilityTimeout); v < 120 || v > 900 {
		t.Errorf("visibility timeout %d s, want between 120 and 900", v)
	}
	if deref(q.ReceiveMessageWaitTimeSeconds) != 20 {
		t.Error("queue should default to 20 s long polling")
	}
	for _, name := range []string{"SnapshotDeadLetterQueue", "SchedulerDeadLetterQueue"} {
		d, err := tp.GetSQSQueueWithName(name)
		if err != nil {
			t.Fatal(err)
		}
		if !deref(d.SqsManagedSseEnabled) && d.KmsMasterKeyId == nil {
			t.Errorf("%s is not encrypted", name)
		}
		if deref(d.MessageRetentionPeriod) != 1209600 {
			t.Errorf("%s retention %d, want 1209600 (14 days)", name, deref(d.MessageRetentionPeriod))
		}
	}
}

func TestEFSEncryptedAccessPointAndNFSOnlyFromLoader(t *testing.T) {
	tp := template(t)
	fs, err := tp.GetEFSFileSystemWithName("FileSystem")
	if err != nil {
		t.Fatal(err)
	}
	if !deref(fs.Encrypted) {
		t.Error("file system not encrypted at rest")
	}
	ap, err := tp.GetEFSAccessPointWithName("AccessPoint")
	if err != nil {
		t.Fatal(err)
	}
	if ap.PosixUser == nil || ap.PosixUser.Uid != "65532" || ap.PosixUser.Gid != "65532" {
		t.Errorf("access point user %+v, want 65532:65532 (the image's nonroot user)", ap.PosixUser)
	}
	if ap.RootDirectory == nil || deref(ap.RootDirectory.Path) != "/parking" || ap.RootDirectory.CreationInfo == nil ||
		ap.RootDirectory.CreationInfo.OwnerUid != "65532" {
		t.Errorf("access point root %+v, want /parking owned by 65532", ap.RootDirectory)
	}
	mts := 0
	for name := range tp.GetAllEFSMountTargetResources() {
		mt, _ := tp.GetEFSMountTargetWithName(name)
		mts++
		if !isRef(mt.FileSystemId, "FileSystem") || len(mt.SecurityGroups) != 1 || !isRef(mt.SecurityGroups[0], "EfsSecurityGroup") {
			t.Errorf("mount target %s: %+v", name, mt)
		}
	}
	if mts < 2 {
		t.Errorf("%d mount targets, want one in each of two zones", mts)
	}
	sg, err := tp.GetEC2SecurityGroupWithName("EfsSecurityGroup")
	if err != nil {
		t.Fatal(err)
	}
	if len(sg.SecurityGroupIngress) != 1 {
		t.Fatalf("EFS security group has %d ingress rules, want exactly NFS from the loader", len(sg.SecurityGroupIngress))
	}
	in := sg.SecurityGroupIngress[0]
	if in.IpProtocol != "tcp" || deref(in.FromPort) != 2049 || deref(in.ToPort) != 2049 ||
		!isRef(deref(in.SourceSecurityGroupId), "LoaderSecurityGroup") || in.CidrIp != nil {
		t.Errorf("EFS ingress %+v, want tcp/2049 from LoaderSecurityGroup only", in)
	}
	for name := range tp.GetAllEC2SecurityGroupIngressResources() {
		t.Errorf("standalone ingress rule %s: keep ingress inline where the test sees it", name)
	}
}

func containerOf(t *testing.T, name string) (*ecsTaskDef, *ecsContainer) {
	t.Helper()
	td, err := template(t).GetECSTaskDefinitionWithName(name)
	if err != nil {
		t.Fatal(err)
	}
	if len(td.ContainerDefinitions) != 1 {
		t.Fatalf("%s: %d containers, want 1", name, len(td.ContainerDefinitions))
	}
	return td, &td.ContainerDefinitions[0]
}

func env(c *ecsContainer) map[string]string {
	m := map[string]string{}
	for _, kv := range c.Environment {
		m[deref(kv.Name)] = deref(kv.Value)
	}
	return m
}

func TestTaskDefinitions(t *testing.T) {
	for _, name := range []string{"ExtractorTaskDefinition", "LoaderTaskDefinition"} {
		td, c := containerOf(t, name)
		if !slices.Equal(td.RequiresCompatibilities, []string{"FARGATE"}) || deref(td.NetworkMode) != "awsvpc" {
			t.Errorf("%s: not a Fargate awsvpc task", name)
		}
		if deref(td.Cpu) != "256" || deref(td.Memory) != "512" {
			t.Errorf("%s: %s CPU / %s MiB, want 256 / 512", name, deref(td.Cpu), deref(td.Memory))
		}
		if td.RuntimePlatform == nil {
			t.Fatalf("%s: no runtime platform", name)
		}
		arch := deref(td.RuntimePlatform.CpuArchitecture)
		if name == "LoaderTaskDefinition" {
			// Fargate Spot has no ARM64 capacity: ARM64 unless Spot is chosen.
			cond, yes, no, ok := ifOf(arch)
			if !ok || cond != "UseSpot" || yes != "X86_64" || no != "ARM64" {
				t.Errorf("%s: architecture %q, want !If [UseSpot, X86_64, ARM64]", name, arch)
			}
		} else if arch != "ARM64" {
			t.Errorf("%s: architecture %q, want ARM64", name, arch)
		}
		if !deref(c.ReadonlyRootFilesystem) {
			t.Errorf("%s: root file system is writable", name)
		}
		// The loader's graceful stop has more to do than the extractor's (TestLoaderStopsWithinItsStopTimeout).
		if want := map[string]int{"ExtractorTaskDefinition": 30, "LoaderTaskDefinition": 120}[name]; deref(c.StopTimeout) != want {
			t.Errorf("%s: stopTimeout %d, want %d", name, deref(c.StopTimeout), want)
		}
		if deref(c.User) != "65532:65532" {
			t.Errorf("%s: user %q, want 65532:65532", name, deref(c.User))
		}
		if td.ExecutionRoleArn == nil || getAttOf(*td.ExecutionRoleArn) != "ExecutionRole" {
			t.Errorf("%s: execution role %v", name, td.ExecutionRoleArn)
		}
		if c.LogConfiguration == nil || c.LogConfiguration.LogDriver != "awslogs" {
			t.Errorf("%s: logs do not go to CloudWatch", name)
		}
		e := env(c)
		if sub := subString(e["PARKING_STORE"]); sub != "s3://${SnapshotBucket}/${SnapshotPrefix}" {
			t.Errorf("%s: PARKING_STORE %q", name, sub)
		}
		if !isRef(e["PARKING_QUEUE"], "SnapshotQueue") {
			t.Errorf("%s: PARKING_QUEUE is not the queue URL", name)
		}
	}

	_, ex := containerOf(t, "ExtractorTaskDefinition")
	if ex.Name != "extractor" {
		t.Errorf("extractor container is named %q; the schedules' overrides name \"extractor\"", ex.Name)
	}

	td, c := containerOf(t, "LoaderTaskDefinition")
	if !slices.Equal(c.Command, []string{"serve"}) {
		t.Errorf("loader command %q, want [serve]", c.Command)
	}
	if c.HealthCheck == nil || !slices.Equal(c.HealthCheck.Command, []string{"CMD", "/loader", "healthcheck"}) {
		t.Errorf("loader health check %+v, want [CMD /loader healthcheck] (no shell in the image)", c.HealthCheck)
	}
	e := env(c)
	if e["PARKING_HTTP_ADDR"] != "127.0.0.1:8080" {
		t.Errorf("PARKING_HTTP_ADDR %q", e["PARKING_HTTP_ADDR"])
	}
	var efsVolume string
	for _, v := range td.Volumes {
		ev := v.EFSVolumeConfiguration
		if ev == nil {
			continue
		}
		efsVolume = deref(v.Name)
		if !isRef(ev.FilesystemId, "FileSystem") {
			t.Errorf("EFS volume on %q", ev.FilesystemId)
		}
		if deref(ev.TransitEncryption) != "ENABLED" {
			t.Error("EFS transit encryption is off")
		}
		if ev.AuthorizationConfig == nil || deref(ev.AuthorizationConfig.IAM) != "ENABLED" ||
			!isRef(deref(ev.AuthorizationConfig.AccessPointId), "AccessPoint") {
			t.Errorf("EFS volume must mount the access point with IAM authorisation: %+v", ev.AuthorizationConfig)
		}
	}
	if efsVolume == "" {
		t.Fatal("loader has no EFS volume")
	}
	var mountPath string
	for _, mp := range c.MountPoints {
		if deref(mp.SourceVolume) == efsVolume {
			mountPath = deref(mp.ContainerPath)
		}
	}
	if mountPath == "" || !strings.HasPrefix(e["PARKING_DB"], mountPath+"/") {
		t.Errorf("PARKING_DB %q is not on the EFS mount %q", e["PARKING_DB"], mountPath)
	}
}

func TestLoaderServiceNeverRunsTwoLoaders(t *testing.T) {
	tp := template(t)
	s, err := tp.GetECSServiceWithName("LoaderService")
	if err != nil {
		t.Fatal(err)
	}
	if deref(s.DesiredCount) != 1 {
		t.Errorf("desired count %d, want 1", deref(s.DesiredCount))
	}
	dc := s.DeploymentConfiguration
	if dc == nil || dc.MinimumHealthyPercent == nil || *dc.MinimumHealthyPercent != 0 || dc.MaximumPercent == nil || *dc.MaximumPercent != 100 {
		t.Fatalf("deployment configuration %+v, want minimum 0 / maximum 100", dc)
	}
	if dc.DeploymentCircuitBreaker == nil || !dc.DeploymentCircuitBreaker.Enable || !dc.DeploymentCircuitBreaker.Rollback {
		t.Error("deployment circuit breaker with rollback is off")
	}
	if s.LaunchType != nil || len(s.CapacityProviderStrategy) != 1 {
		t.Fatalf("want one capacity provider strategy item and no launch type, got %v / %v", s.LaunchType, s.CapacityProviderStrategy)
	}
	cond, yes, no, ok := ifOf(deref(s.CapacityProviderStrategy[0].CapacityProvider))
	if !ok || cond != "UseSpot" || yes != "FARGATE_SPOT" || no != "FARGATE" {
		t.Errorf("capacity provider should be !If [UseSpot, FARGATE_SPOT, FARGATE]")
	}
	if !isRef(deref(s.TaskDefinition), "LoaderTaskDefinition") {
		t.Error("service does not run the loader task definition")
	}
	for _, dep := range []string{"MountTargetA", "MountTargetB"} {
		if !slices.Contains(s.AWSCloudFormationDependsOn, dep) {
			t.Errorf("service must wait for %s", dep)
		}
	}
	cl, err := tp.GetECSClusterWithName("Cluster")
	if err != nil {
		t.Fatal(err)
	}
	// Container Insights is the ContainerInsights parameter; the loader-not-running alarm follows it
	// (TestEveryKindOfAlarmNotifiesTheTopic).
	insights := false
	for _, cs := range cl.ClusterSettings {
		insights = insights || (deref(cs.Name) == "containerInsights" && isRef(deref(cs.Value), "ContainerInsights"))
	}
	if !insights {
		t.Error("the cluster's containerInsights setting is not the ContainerInsights parameter")
	}
	if !slices.Contains(cl.CapacityProviders, "FARGATE") || !slices.Contains(cl.CapacityProviders, "FARGATE_SPOT") {
		t.Errorf("cluster capacity providers %v", cl.CapacityProviders)
	}
}

func TestSchedulesRunTheExtractorInTaipeiTime(t *testing.T) {
	tp := template(t)
	want := map[string]struct{ param, dataset string }{
		"AvailabilitySchedule": {"AvailabilityScheduleExpression", "availability"},
		"LotsSchedule":         {"LotsScheduleExpression", "lots"},
	}
	if n := len(tp.GetAllSchedulerScheduleResources()); n != len(want) {
		t.Errorf("%d schedules, want %d", n, len(want))
	}
	_, ex := containerOf(t, "ExtractorTaskDefinition")
	for name, w := range want {
		s, err := tp.GetSchedulerScheduleWithName(name)
		if err != nil {
			t.Fatal(err)
		}
		if !isRef(s.ScheduleExpression, w.param) {
			t.Errorf("%s: expression is not the %s parameter", name, w.param)
		}
		if !isRef(deref(s.ScheduleExpressionTimezone), "ScheduleTimezone") || paramDefault(t, "ScheduleTimezone") != "Asia/Taipei" {
			t.Errorf("%s: time zone is not the ScheduleTimezone parameter (default Asia/Taipei)", name)
		}
		if s.FlexibleTimeWindow == nil || s.FlexibleTimeWindow.Mode != "OFF" {
			t.Errorf("%s: flexible time window should be OFF", name)
		}
		tg := s.Target
		if tg == nil || tg.EcsParameters == nil {
			t.Fatalf("%s: no ECS target", name)
		}
		if getAttOf(tg.Arn) != "Cluster" || getAttOf(tg.RoleArn) != "SchedulerRole" || !isRef(tg.EcsParameters.TaskDefinitionArn, "ExtractorTaskDefinition") {
			t.Errorf("%s: target must run ExtractorTaskDefinition on Cluster as SchedulerRole", name)
		}
		var in struct {
			ContainerOverrides []struct {
				Name    string   `json:"name"`
				Command []string `json:"command"`
			} `json:"containerOverrides"`
		}
		if err := json.Unmarshal([]byte(deref(tg.Input)), &in); err != nil {
			t.Fatalf("%s: input is not JSON: %v", name, err)
		}
		if len(in.ContainerOverrides) != 1 || in.ContainerOverrides[0].Name != ex.Name ||
			!slices.Equal(in.ContainerOverrides[0].Command, []string{"fetch", "-dataset", w.dataset}) {
			t.Errorf("%s: overrides %+v, want container %q command [fetch -dataset %s]", name, in, ex.Name, w.dataset)
		}
		if tg.RetryPolicy == nil || deref(tg.RetryPolicy.MaximumRetryAttempts) < 1 {
			t.Errorf("%s: no retry policy", name)
		}
		if tg.DeadLetterConfig == nil || getAttOf(deref(tg.DeadLetterConfig.Arn)) != "SchedulerDeadLetterQueue" {
			t.Errorf("%s: failed invocations do not go to the scheduler dead-letter queue", name)
		}
	}
}

// ------------------------------------------------------------------ IAM

// Allow statements whose Resource may be "*", each because AWS offers nothing narrower.
var starResourceAllowed = map[string]string{
	"ExecutionRole/EcrAuthToken": "ecr:GetAuthorizationToken has no resource-level permissions",
}

// Resources with a wildcard inside an ARN that an Allow may name: object keys under the prefix.
var wildcardSubAllowed = map[string]bool{
	"${SnapshotBucket.Arn}/${SnapshotPrefix}/*": true,
	"${SnapshotPrefix}/*":                       true, // the s3:prefix condition value, not a resource
	"${SnapshotBucket.Arn}/${PublishPrefix}/*":  true, // the publication's objects
}

func list(v any) []any {
	switch x := v.(type) {
	case nil:
		return nil
	case []any:
		return x
	default:
		return []any{x}
	}
}

func strs(v any) []string {
	var out []string
	for _, x := range list(v) {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

// statements returns a policy's statements; a conditional one (!If [cond, statement, !Ref AWS::NoValue])
// counts as its statement, so that what it grants is checked like the rest.
func statements(doc any) []map[string]any {
	d, _ := doc.(map[string]any)
	var out []map[string]any
	for _, s := range list(d["Statement"]) {
		if _, yes, _, ok := ifOf(s); ok {
			s = yes
		} else if m, ok := s.(map[string]any); ok {
			if a, ok := m["Fn::If"].([]any); ok && len(a) == 3 {
				s = a[1]
			}
		}
		if m, ok := s.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

type policy struct {
	where string
	doc   any
}

func allPolicies(t *testing.T) []policy {
	tp := template(t)
	var ps []policy
	for name, r := range tp.GetAllIAMRoleResources() {
		if len(r.ManagedPolicyArns) > 0 {
			t.Errorf("%s attaches managed policies %v: their contents are not reviewed here", name, r.ManagedPolicyArns)
		}
		ps = append(ps, policy{name + "(trust)", r.AssumeRolePolicyDocument})
		for _, p := range r.Policies {
			ps = append(ps, policy{name, p.PolicyDocument})
		}
	}
	for name, r := range tp.GetAllS3BucketPolicyResources() {
		ps = append(ps, policy{name, r.PolicyDocument})
	}
	for name, r := range tp.GetAllSNSTopicPolicyResources() {
		ps = append(ps, policy{name, r.PolicyDocument})
	}
	for name, r := range tp.GetAllEFSFileSystemResources() {
		if r.FileSystemPolicy != nil {
			ps = append(ps, policy{name, r.FileSystemPolicy})
		}
	}
	for name, r := range tp.GetAllSQSQueuePolicyResources() {
		ps = append(ps, policy{name, r.PolicyDocument})
	}
	// A log group's resource policy is a JSON string (with ${...} substitutions).
	for name, r := range tp.GetAllLogsResourcePolicyResources() {
		var doc any
		if err := json.Unmarshal([]byte(subString(r.PolicyDocument)), &doc); err != nil {
			t.Errorf("%s: policy document is not JSON: %v", name, err)
		}
		ps = append(ps, policy{name, doc})
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].where < ps[j].where })
	return ps
}

func TestIAMHasNoWildcardActionsAndNoStarResources(t *testing.T) {
	ps := allPolicies(t)
	if len(ps) < 8 {
		t.Fatalf("found only %d policy documents", len(ps))
	}
	usedAllow := map[string]bool{}
	for _, p := range ps {
		for i, st := range statements(p.doc) {
			sid, _ := st["Sid"].(string)
			id := fmt.Sprintf("%s/%s", p.where, sid)
			if sid == "" {
				id = fmt.Sprintf("%s/#%d", p.where, i)
			}
			allow := st["Effect"] == "Allow"
			if _, ok := st["NotAction"]; ok && allow {
				t.Errorf("%s: Allow with NotAction grants everything else", id)
			}
			if _, ok := st["NotResource"]; ok && allow {
				t.Errorf("%s: Allow with NotResource", id)
			}
			for _, a := range strs(st["Action"]) {
				if a == "*" {
					t.Errorf("%s: action \"*\"", id)
				}
				// A Deny may cover a whole service (the TLS rule); an Allow names each action.
				if allow && strings.Contains(a, "*") {
					t.Errorf("%s: wildcard action %q in an Allow", id, a)
				}
			}
			if allow && st["Principal"] == "*" {
				t.Errorf("%s: Allow to every principal", id)
			}
			if !allow {
				continue
			}
			for _, r := range list(st["Resource"]) {
				s, isString := r.(string)
				if isString {
					if _, _, isFn := fn(s); !isFn {
						if s == "*" {
							if _, ok := starResourceAllowed[id]; !ok {
								t.Errorf("%s: Resource \"*\" where AWS allows a narrower one", id)
							}
							usedAllow[id] = true
						} else if strings.Contains(s, "*") {
							t.Errorf("%s: wildcard resource %q", id, s)
						}
						continue
					}
				}
				if sub := subString(r); strings.Contains(sub, "*") && !wildcardSubAllowed[sub] {
					t.Errorf("%s: wildcard resource %q", id, sub)
				}
			}
		}
	}
	for id, why := range starResourceAllowed {
		if !usedAllow[id] {
			t.Errorf("allow-list entry %s (%s) is not used: remove it", id, why)
		}
	}
}

func statementBySid(t *testing.T, role, sid string) map[string]any {
	t.Helper()
	r, err := template(t).GetIAMRoleWithName(role)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range r.Policies {
		for _, st := range statements(p.PolicyDocument) {
			if st["Sid"] == sid {
				return st
			}
		}
	}
	t.Fatalf("%s has no statement %s", role, sid)
	return nil
}

func TestIAMRolesGrantExactlyWhatEachProgramNeeds(t *testing.T) {
	actions := func(st map[string]any) []string {
		a := strs(st["Action"])
		sort.Strings(a)
		return a
	}
	check := func(role, sid string, want []string, resource func(any) bool) {
		t.Helper()
		st := statementBySid(t, role, sid)
		sort.Strings(want)
		if got := actions(st); !slices.Equal(got, want) {
			t.Errorf("%s/%s actions %v, want %v", role, sid, got, want)
		}
		for _, r := range list(st["Resource"]) {
			if !resource(r) {
				t.Errorf("%s/%s resource %v not as expected", role, sid, r)
			}
		}
	}
	objects := func(r any) bool { return subString(r) == "${SnapshotBucket.Arn}/${SnapshotPrefix}/*" }
	attOf := func(name string) func(any) bool { return func(r any) bool { return getAttOf(r) == name } }

	check("ExtractorTaskRole", "SnapshotObjects", []string{"s3:PutObject", "s3:GetObject"}, objects)
	check("ExtractorTaskRole", "ListSnapshotPrefix", []string{"s3:ListBucket"}, attOf("SnapshotBucket"))
	check("ExtractorTaskRole", "Enqueue", []string{"sqs:SendMessage", "sqs:GetQueueAttributes"}, attOf("SnapshotQueue"))
	check("LoaderTaskRole", "ReadSnapshots", []string{"s3:GetObject"}, objects)
	check("LoaderTaskRole", "ListSnapshotPrefix", []string{"s3:ListBucket"}, attOf("SnapshotBucket"))
	check("LoaderTaskRole", "Consume", []string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"}, attOf("SnapshotQueue"))
	check("LoaderTaskRole", "DeadLetter", []string{"sqs:SendMessage", "sqs:GetQueueUrl", "sqs:GetQueueAttributes"}, attOf("SnapshotDeadLetterQueue"))
	check("LoaderTaskRole", "MountDatabase", []string{"elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"}, attOf("FileSystem"))
	check("LoaderTaskRole", "Publish", []string{"s3:PutObject", "s3:AbortMultipartUpload"}, func(r any) bool { return subString(r) == "${SnapshotBucket.Arn}/${PublishPrefix}/*" })
	check("SchedulerRole", "RunExtractor", []string{"ecs:RunTask"}, func(r any) bool { return isRef(r, "ExtractorTaskDefinition") })
	check("SchedulerRole", "DeadLetter", []string{"sqs:SendMessage"}, attOf("SchedulerDeadLetterQueue"))

	// Listing is confined to the prefix by condition.
	for _, role := range []string{"ExtractorTaskRole", "LoaderTaskRole"} {
		st := statementBySid(t, role, "ListSnapshotPrefix")
		cond, _ := st["Condition"].(map[string]any)
		like, _ := cond["StringLike"].(map[string]any)
		prefixes := list(like["s3:prefix"])
		if len(prefixes) == 0 {
			t.Errorf("%s may list the whole bucket", role)
		}
		for _, p := range prefixes {
			if !strings.HasPrefix(subString(p), "${SnapshotPrefix}/") {
				t.Errorf("%s: list condition %v is outside the prefix", role, p)
			}
		}
	}
	// EFS only through the access point.
	st := statementBySid(t, "LoaderTaskRole", "MountDatabase")
	cond, _ := st["Condition"].(map[string]any)
	eq, _ := cond["StringEquals"].(map[string]any)
	if getAttOf(eq["elasticfilesystem:AccessPointArn"]) != "AccessPoint" {
		t.Error("EFS permissions are not conditioned on the access point")
	}
	// RunTask only on this cluster; PassRole only these two roles, only to ECS tasks.
	st = statementBySid(t, "SchedulerRole", "RunExtractor")
	cond, _ = st["Condition"].(map[string]any)
	arnEq, _ := cond["ArnEquals"].(map[string]any)
	if getAttOf(arnEq["ecs:cluster"]) != "Cluster" {
		t.Error("RunTask is not conditioned on the cluster")
	}
	st = statementBySid(t, "SchedulerRole", "PassExtractorRoles")
	var passed []string
	for _, r := range list(st["Resource"]) {
		passed = append(passed, getAttOf(r))
	}
	sort.Strings(passed)
	if !slices.Equal(passed, []string{"ExecutionRole", "ExtractorTaskRole"}) || !slices.Equal(strs(st["Action"]), []string{"iam:PassRole"}) {
		t.Errorf("PassRole on %v, want exactly ExecutionRole and ExtractorTaskRole", passed)
	}
	cond, _ = st["Condition"].(map[string]any)
	if eq, _ := cond["StringEquals"].(map[string]any); eq["iam:PassedToService"] != "ecs-tasks.amazonaws.com" {
		t.Error("PassRole is not limited to ecs-tasks.amazonaws.com")
	}
	// The loader may read but never write snapshots: it writes the publication prefix only, and deletes
	// nothing. The extractor may never consume.
	for _, p := range allPolicies(t) {
		for _, st := range statements(p.doc) {
			for _, a := range strs(st["Action"]) {
				if strings.HasPrefix(p.where, "LoaderTaskRole") && a == "s3:DeleteObject" {
					t.Errorf("loader may %s", a)
				}
				if strings.HasPrefix(p.where, "LoaderTaskRole") && a == "s3:PutObject" {
					for _, r := range list(st["Resource"]) {
						if subString(r) != "${SnapshotBucket.Arn}/${PublishPrefix}/*" {
							t.Errorf("loader may s3:PutObject on %v, outside the publication prefix", r)
						}
					}
				}
				if strings.HasPrefix(p.where, "ExtractorTaskRole") && (a == "sqs:ReceiveMessage" || a == "sqs:DeleteMessage") {
					t.Errorf("extractor may %s", a)
				}
			}
		}
	}
}

// ------------------------------------------------------------------ alarms

func TestEveryKindOfAlarmNotifiesTheTopic(t *testing.T) {
	tp := template(t)
	type metric struct{ namespace, name string }
	found := map[string]bool{}
	for name, a := range tp.GetAllCloudWatchAlarmResources() {
		if len(a.AlarmActions) == 0 {
			t.Errorf("%s has no alarm action", name)
		}
		for _, act := range append(slices.Clone(a.AlarmActions), a.OKActions...) {
			if !isRef(act, "AlarmTopic") {
				t.Errorf("%s notifies %q, not the alarm topic", name, act)
			}
		}
		dims := map[string]string{}
		for _, d := range a.Dimensions {
			dims[d.Name] = d.Value
		}
		m := metric{deref(a.Namespace), deref(a.MetricName)}
		th := deref(a.Threshold)
		period := deref(a.Period) * a.EvaluationPeriods
		switch {
		case m == metric{"AWS/SQS", "ApproximateNumberOfMessagesVisible"} && getAttOf(dims["QueueName"]) == "SnapshotDeadLetterQueue":
			found["dead-letter queue"] = a.ComparisonOperator == "GreaterThanThreshold" && th == 0
		case m == metric{"AWS/SQS", "ApproximateAgeOfOldestMessage"} && getAttOf(dims["QueueName"]) == "SnapshotQueue":
			found["oldest message"] = a.ComparisonOperator == "GreaterThanThreshold" && th == 900
		case name == "LoaderNotRunningAlarm":
			// Container Insights' RunningTaskCount when it is on, the free AWS/ECS CPUUtilization sample count
			// when it is off: either way missing data (no task) is breaching.
			c1, ns1, ns2, ok1 := ifOf(deref(a.Namespace))
			c2, mn1, mn2, ok2 := ifOf(deref(a.MetricName))
			c3, st1, st2, ok3 := ifOf(deref(a.Statistic))
			found["loader not running"] = ok1 && ok2 && ok3 && c1 == "InsightsOn" && c2 == c1 && c3 == c1 &&
				ns1 == "ECS/ContainerInsights" && mn1 == "RunningTaskCount" && st1 == "Minimum" &&
				ns2 == "AWS/ECS" && mn2 == "CPUUtilization" && st2 == "SampleCount" &&
				getAttOf(dims["ServiceName"]) == "LoaderService" && isRef(dims["ClusterName"], "Cluster") &&
				a.ComparisonOperator == "LessThanThreshold" && th == 1 && deref(a.TreatMissingData) == "breaching" &&
				period == 300 && a.AWSCloudFormationCondition == ""
		case m == metric{"AWS/SQS", "ApproximateNumberOfMessagesVisible"} && getAttOf(dims["QueueName"]) == "SchedulerDeadLetterQueue":
			found["scheduler could not start the extractor"] = a.ComparisonOperator == "GreaterThanThreshold" && th == 0
		case m == metric{"AWS/Events", "Invocations"} && isRef(dims["RuleName"], "ExtractorTaskFailedRule"):
			// A rate, not one message per failed run.
			found["extractor failing"] = deref(a.Statistic) == "Sum" && period == 1800 && th == 3 &&
				a.ComparisonOperator == "GreaterThanOrEqualToThreshold" && deref(a.TreatMissingData) == "notBreaching"
		case m == metric{"AWS/Events", "Invocations"} && isRef(dims["RuleName"], "LotsFetchFailedRule"):
			found["lots fetch failed"] = deref(a.Statistic) == "Sum" && th == 1 &&
				a.ComparisonOperator == "GreaterThanOrEqualToThreshold" && deref(a.TreatMissingData) == "notBreaching"
		case m == metric{"ParkingNewTaipei", "SnapshotsApplied"}:
			found["nothing applied"] = dims["Dataset"] == "availability" && deref(a.Statistic) == "Sum" &&
				period == 900 && a.ComparisonOperator == "LessThanThreshold" && th == 1 &&
				deref(a.TreatMissingData) == "breaching"
		case m == metric{"ParkingNewTaipei", "SnapshotsRefused"}:
			// One per dataset: any refusal wants a human (deploy/refused_test.go runs the loader into each).
			found[dims["Dataset"]+" snapshot refused"] = len(dims) == 1 && deref(a.Statistic) == "Sum" && th == 1 &&
				a.ComparisonOperator == "GreaterThanOrEqualToThreshold" && deref(a.TreatMissingData) == "notBreaching"
		case m == metric{"ParkingNewTaipei", "DatabaseFailing"}:
			// The loader's minute line: 3 failing minutes of 5 (refused_test.go checks the line reaches it).
			found["database failing"] = len(dims) == 0 && deref(a.Statistic) == "Maximum" && deref(a.Period) == 60 &&
				a.EvaluationPeriods == 5 && deref(a.DatapointsToAlarm) == 3 && th == 1 &&
				a.ComparisonOperator == "GreaterThanOrEqualToThreshold" && deref(a.TreatMissingData) == "notBreaching"
		default:
			t.Errorf("alarm %s on %v is not one of the known kinds", name, m)
		}
	}
	for _, kind := range []string{"dead-letter queue", "oldest message", "loader not running", "scheduler could not start the extractor",
		"extractor failing", "lots fetch failed", "nothing applied", "lots snapshot refused", "availability snapshot refused",
		"database failing"} {
		if !found[kind] {
			t.Errorf("alarm %q missing or mis-set", kind)
		}
	}
	// Only CloudWatch alarms publish to the topic.
	tpol, err := tp.GetSNSTopicPolicyWithName("AlarmTopicPolicy")
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range statements(tpol.PolicyDocument) {
		principal, _ := st["Principal"].(map[string]any)
		if principal["Service"] != "cloudwatch.amazonaws.com" {
			t.Errorf("topic policy lets %v publish", principal)
		}
	}
	sub, err := tp.GetSNSSubscriptionWithName("AlarmEmailSubscription")
	if err != nil {
		t.Fatal(err)
	}
	if sub.Protocol != "email" || !isRef(deref(sub.Endpoint), "AlarmEmail") || !isRef(sub.TopicArn, "AlarmTopic") {
		t.Errorf("e-mail subscription %+v", sub)
	}
}

// Failed extractor tasks are recorded (their stop reason is not in the task's log when the task never
// started) in a log group only EventBridge may write to; the alarms above count them.
func TestExtractorFailuresAreRecordedAndCounted(t *testing.T) {
	tp := template(t)
	lg, err := tp.GetLogsLogGroupWithName("ExtractorFailuresLogGroup")
	if err != nil {
		t.Fatal(err)
	}
	if name := subString(deref(lg.LogGroupName)); !strings.HasPrefix(name, "/aws/events/") {
		t.Errorf("log group %q: EventBridge writes only under /aws/events/", name)
	}
	for _, rule := range []string{"ExtractorTaskFailedRule", "LotsFetchFailedRule"} {
		r, err := tp.GetEventsRuleWithName(rule)
		if err != nil {
			t.Fatal(err)
		}
		// The log group's own ARN, without the ":*" of its Arn attribute (EventBridge delivers nothing to that).
		if len(r.Targets) != 1 || subString(r.Targets[0].Arn) != "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:${ExtractorFailuresLogGroup}" {
			t.Errorf("%s does not target the failures log group: %+v", rule, r.Targets)
		}
		pat, _ := json.Marshal(r.EventPattern)
		for _, want := range []string{`"ECS Task State Change"`, `"STOPPED"`, `"anything-but":[0,2]`, `TaskFailedToStart`} {
			if !strings.Contains(string(pat), want) {
				t.Errorf("%s: event pattern lacks %s: %s", rule, want, pat)
			}
		}
		detail, _ := r.EventPattern.(map[string]any)["detail"].(map[string]any)
		prefix, _ := list(detail["taskDefinitionArn"])[0].(map[string]any)
		if !strings.HasSuffix(subString(prefix["prefix"]), ":task-definition/${AWS::StackName}-extractor:") {
			t.Errorf("%s does not select the extractor's task definition family: %v", rule, prefix)
		}
		if rule == "LotsFetchFailedRule" && !strings.Contains(string(pat), `"containerOverrides":{"command":["lots"]}`) {
			t.Errorf("%s does not select the lots fetch: %s", rule, pat)
		}
		if !slices.Contains(r.AWSCloudFormationDependsOn, "ExtractorFailuresLogPolicy") {
			t.Errorf("%s may fire before EventBridge may write the log group", rule)
		}
	}
	var granted bool
	for _, p := range allPolicies(t) {
		if p.where != "ExtractorFailuresLogPolicy" {
			continue
		}
		for _, st := range statements(p.doc) {
			principal, _ := st["Principal"].(map[string]any)
			services := strs(principal["Service"])
			granted = st["Effect"] == "Allow" && slices.Contains(services, "events.amazonaws.com") &&
				fmt.Sprint(st["Resource"]) == "${ExtractorFailuresLogGroup.Arn}" &&
				slices.Equal(strs(st["Action"]), []string{"logs:CreateLogStream", "logs:PutLogEvents"})
		}
	}
	if !granted {
		t.Error("the log resource policy does not let EventBridge write exactly the failures log group")
	}
}
