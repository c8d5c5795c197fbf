package deploy

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/load/consume"
	"github.com/parking-newtaipei/parking-newtaipei/shared/web"
)

// The publication of issue 12, as /work/notes/PUBLICATION.md fixes it: the loader writes only under
// the publication prefix, Athena finds the Parquet without a crawler, and CloudFront (optional) serves
// the prefix over HTTPS while the bucket stays private.

func TestPublicationPrefixIsOneSegmentApartFromTheSnapshots(t *testing.T) {
	p := template(t).Parameters["PublishPrefix"]
	if fmt.Sprint(p.Default) != "public" || p.AllowedPattern == nil || strings.Contains(*p.AllowedPattern, "/") {
		t.Errorf("PublishPrefix: default %v, pattern %v; want \"public\" and one path segment", p.Default, p.AllowedPattern)
	}
	// The loader's only new permissions are PutObject there and the abort of its own failed multipart
	// uploads (TestIAMRolesGrantExactlyWhatEachProgramNeeds); here: nothing else in its role touches that
	// prefix, and no other role may write it.
	for _, pol := range allPolicies(t) {
		for _, st := range statements(pol.doc) {
			for _, r := range list(st["Resource"]) {
				if !strings.Contains(subString(r), "${PublishPrefix}") || st["Effect"] != "Allow" {
					continue
				}
				acts := strs(st["Action"])
				switch {
				case pol.where == "LoaderTaskRole" && slices.Equal(acts, []string{"s3:PutObject", "s3:AbortMultipartUpload"}):
				case pol.where == "SnapshotBucketPolicy" && slices.Equal(acts, []string{"s3:GetObject"}):
				default:
					t.Errorf("%s grants %v on %s", pol.where, acts, subString(r))
				}
			}
		}
	}
}

func TestAthenaTablesOverThePublishedParquet(t *testing.T) {
	tp := template(t)
	db, err := tp.GetGlueDatabaseWithName("GlueDatabase")
	if err != nil {
		t.Fatal(err)
	}
	if !isRef(deref(db.DatabaseInput.Name), "GlueDatabaseName") || paramDefault(t, "GlueDatabaseName") != "parking" {
		t.Error("the Glue database is not GlueDatabaseName (default parking)")
	}
	type col struct{ name, typ string }
	tables := map[string]struct {
		location string
		columns  []col
	}{
		"AvailabilityTable": {"s3://${SnapshotBucket}/${PublishPrefix}/parquet/availability/",
			[]col{{"parking_id", "string"}, {"observed_at", "timestamp"}, {"available_car", "int"}}},
		"LotsTable": {"s3://${SnapshotBucket}/${PublishPrefix}/parquet/lots/",
			[]col{{"id", "string"}, {"area", "string"}, {"name", "string"}, {"type", "string"}, {"summary", "string"},
				{"address", "string"}, {"tel", "string"}, {"pay_ex", "string"}, {"service_time", "string"},
				{"total_car", "int"}, {"total_motor", "int"}, {"total_bike", "int"}, {"lon", "double"}, {"lat", "double"},
				{"coord_note", "string"}, {"created_at", "timestamp"}, {"updated_at", "timestamp"}, {"deleted_at", "timestamp"}}},
	}
	for name, want := range tables {
		tb, err := tp.GetGlueTableWithName(name)
		if err != nil {
			t.Fatal(err)
		}
		in := tb.TableInput
		if !isRef(tb.DatabaseName, "GlueDatabase") || !isRef(tb.CatalogId, "AWS::AccountId") {
			t.Errorf("%s is not in the stack's database", name)
		}
		if deref(in.TableType) != "EXTERNAL_TABLE" {
			t.Errorf("%s: table type %q", name, deref(in.TableType))
		}
		sd := in.StorageDescriptor
		if got := subString(deref(sd.Location)); got != want.location {
			t.Errorf("%s: location %q, want %q", name, got, want.location)
		}
		if !strings.HasSuffix(deref(sd.InputFormat), "MapredParquetInputFormat") || !strings.HasSuffix(deref(sd.SerdeInfo.SerializationLibrary), "ParquetHiveSerDe") {
			t.Errorf("%s is not a Parquet table", name)
		}
		var got []col
		for _, c := range sd.Columns {
			got = append(got, col{c.Name, deref(c.Type)})
		}
		if !slices.Equal(got, want.columns) {
			t.Errorf("%s columns %v, want %v (PUBLICATION.md's Parquet schema)", name, got, want.columns)
		}
	}

	av, _ := tp.GetGlueTableWithName("AvailabilityTable")
	if pk := av.TableInput.PartitionKeys; len(pk) != 1 || pk[0].Name != "month" || deref(pk[0].Type) != "string" {
		t.Errorf("availability partition keys %+v, want month string", pk)
	}
	params, _ := av.TableInput.Parameters.(map[string]any)
	for k, v := range map[string]string{
		"projection.enabled": "true", "projection.month.type": "date", "projection.month.format": "yyyy-MM",
		"projection.month.range": "2019-01,NOW", "projection.month.interval": "1", "projection.month.interval.unit": "MONTHS",
	} {
		if fmt.Sprint(params[k]) != v {
			t.Errorf("availability %s = %v, want %q", k, params[k], v)
		}
	}
	// ${!month} is CloudFormation's escape: Athena receives ${month}.
	if got := subString(params["storage.location.template"]); got != "s3://${SnapshotBucket}/${PublishPrefix}/parquet/availability/month=${!month}/" {
		t.Errorf("storage.location.template %q", got)
	}

	wg, err := tp.GetAthenaWorkGroupWithName("AthenaWorkGroup")
	if err != nil {
		t.Fatal(err)
	}
	c := wg.WorkGroupConfiguration
	if c == nil || c.ResultConfiguration == nil || subString(deref(c.ResultConfiguration.OutputLocation)) != "s3://${SnapshotBucket}/${AthenaResultsPrefix}/" {
		t.Fatalf("workgroup result location: %+v", c)
	}
	if !deref(c.EnforceWorkGroupConfiguration) {
		t.Error("queries may override the workgroup's result location and limit")
	}
	if limit := deref(c.BytesScannedCutoffPerQuery); limit < 10<<20 || limit > 10<<30 {
		t.Errorf("bytes scanned cutoff %d, want a limit between 10 MiB and 10 GiB", limit)
	}
	if c.ResultConfiguration.EncryptionConfiguration == nil || c.ResultConfiguration.EncryptionConfiguration.EncryptionOption != "SSE_S3" {
		t.Error("query results are not encrypted")
	}
}

func TestCloudFrontServesThePublicationPrefixOnly(t *testing.T) {
	tp := template(t)
	if paramDefault(t, "EnableCloudFront") != "false" {
		t.Error("CloudFront should be off by default")
	}
	oac, err := tp.GetCloudFrontOriginAccessControlWithName("PublicationOriginAccessControl")
	if err != nil {
		t.Fatal(err)
	}
	cfg := oac.OriginAccessControlConfig
	if oac.AWSCloudFormationCondition != "CloudFrontOn" || cfg.OriginAccessControlOriginType != "s3" ||
		cfg.SigningBehavior != "always" || cfg.SigningProtocol != "sigv4" {
		t.Errorf("origin access control %+v (condition %q)", cfg, oac.AWSCloudFormationCondition)
	}
	d, err := tp.GetCloudFrontDistributionWithName("PublicationDistribution")
	if err != nil {
		t.Fatal(err)
	}
	if d.AWSCloudFormationCondition != "CloudFrontOn" {
		t.Error("the distribution is not conditional on EnableCloudFront")
	}
	dc := d.DistributionConfig
	if len(dc.Origins) != 1 {
		t.Fatalf("%d origins", len(dc.Origins))
	}
	o := dc.Origins[0]
	if getAttOf(o.DomainName) != "SnapshotBucket" || subString(deref(o.OriginPath)) != "/${PublishPrefix}" ||
		getAttOf(deref(o.OriginAccessControlId)) != "PublicationOriginAccessControl" || o.S3OriginConfig == nil ||
		deref(o.S3OriginConfig.OriginAccessIdentity) != "" {
		t.Errorf("origin %+v: want the bucket, path /${PublishPrefix}, the OAC and no legacy identity", o)
	}
	if dc.DefaultCacheBehavior.ViewerProtocolPolicy != "redirect-to-https" || !slices.Equal(dc.DefaultCacheBehavior.AllowedMethods, []string{"GET", "HEAD"}) {
		t.Errorf("cache behaviour %+v: want HTTPS only, read only", dc.DefaultCacheBehavior)
	}
	if deref(dc.DefaultRootObject) != "index.html" {
		t.Error("the map page is not the root object")
	}
	// The bucket stays private: public access fully blocked, and only this distribution may read, only the prefix.
	b, _ := tp.GetS3BucketWithName("SnapshotBucket")
	if pab := b.PublicAccessBlockConfiguration; !deref(pab.BlockPublicPolicy) || !deref(pab.RestrictPublicBuckets) {
		t.Error("public access is not blocked")
	}
	bp, _ := tp.GetS3BucketPolicyWithName("SnapshotBucketPolicy")
	var scoped bool
	for _, st := range statements(bp.PolicyDocument) {
		principal, _ := st["Principal"].(map[string]any)
		if st["Effect"] != "Allow" {
			continue
		}
		cond, _ := st["Condition"].(map[string]any)
		eq, _ := cond["StringEquals"].(map[string]any)
		scoped = principal["Service"] == "cloudfront.amazonaws.com" && slices.Equal(strs(st["Action"]), []string{"s3:GetObject"}) &&
			subString(st["Resource"]) == "${SnapshotBucket.Arn}/${PublishPrefix}/*" &&
			strings.HasSuffix(subString(eq["AWS:SourceArn"]), ":distribution/${PublicationDistribution}")
	}
	if !scoped {
		t.Error("the bucket policy does not let exactly the distribution read exactly the publication prefix")
	}
	if out := tp.Outputs["PublicBaseUrl"]; out.Condition == nil || *out.Condition != "CloudFrontOn" {
		t.Error("PublicBaseUrl output is not conditional on CloudFront")
	}
}

// The publication on the stack's storage: failed multipart uploads (objects over 512 MiB: a large
// parking.db) aborted by the loader and, for a killed task's, by a lifecycle rule on the publication
// prefix; the daily database copies kept PublishedDbCopyDays.
func TestPublicationHousekeeping(t *testing.T) {
	b, err := template(t).GetS3BucketWithName("SnapshotBucket")
	if err != nil {
		t.Fatal(err)
	}
	var abort, daily bool
	for _, r := range b.LifecycleConfiguration.Rules {
		prefix := subString(deref(r.Prefix))
		if r.Status != "Enabled" || !strings.HasPrefix(prefix, "${PublishPrefix}/") {
			continue
		}
		if a := r.AbortIncompleteMultipartUpload; a != nil && prefix == "${PublishPrefix}/" && a.DaysAfterInitiation == 1 {
			abort = true
		}
		// goformation resolves the Ref to the parameter's default.
		if prefix == "${PublishPrefix}/db/" && r.ExpirationInDays != nil && fmt.Sprint(*r.ExpirationInDays) == paramDefault(t, "PublishedDbCopyDays") {
			daily = true
		}
	}
	if !abort {
		t.Error("no lifecycle rule aborts incomplete multipart uploads under <PublishPrefix>/ after a day")
	}
	if !daily {
		t.Error("no lifecycle rule expires <PublishPrefix>/db/ after PublishedDbCopyDays")
	}
}

// A graceful stop of the loader (loader/serve.go) takes up to -shutdown-timeout for the consume loop, as
// long again for the final publication (pending objects, a last parking.db), web.ShutdownGrace for the
// HTTP server, then the database's close. The task's stopTimeout must hold all of it with room for the
// close, within Fargate's limit of 120 s; otherwise SIGKILL cuts the final publication short.
func TestLoaderStopLeavesTheFinalPublicationRoom(t *testing.T) {
	_, c := containerOf(t, "LoaderTaskDefinition")
	shutdown := consume.DefaultShutdownTimeout
	if v, ok := env(c)["PARKING_SHUTDOWN_TIMEOUT"]; ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("PARKING_SHUTDOWN_TIMEOUT %q: %v", v, err)
		}
		shutdown = d
	}
	const closeRoom = 30 * time.Second // the database's close on EFS, the process's exit
	stop := time.Duration(deref(c.StopTimeout)) * time.Second
	need := 2*shutdown + web.ShutdownGrace + closeRoom
	if stop < need || stop > 120*time.Second {
		t.Errorf("loader stopTimeout %s: want %s (2 × -shutdown-timeout %s, the HTTP server's %s, %s for the close) to 120s, Fargate's most",
			stop, need, shutdown, web.ShutdownGrace, closeRoom)
	}
}

// The publisher builds its files in the task's /tmp (os.TempDir: TMPDIR unset), one at a time: a
// database copy or a month's Parquet file. /tmp must be a volume on the task's own storage (the root
// file system is read-only, EFS would be slow and billed) of at least Fargate's default 20 GiB.
func TestLoaderTmpIsTaskStorage(t *testing.T) {
	td, c := containerOf(t, "LoaderTaskDefinition")
	if _, ok := env(c)["TMPDIR"]; ok {
		t.Error("TMPDIR is set: the publisher's temp files would not be where the guides say")
	}
	var volume string
	for _, m := range c.MountPoints {
		if deref(m.ContainerPath) == "/tmp" && !deref(m.ReadOnly) {
			volume = deref(m.SourceVolume)
		}
	}
	if volume == "" {
		t.Fatal("no writable volume at /tmp")
	}
	for _, v := range td.Volumes {
		if deref(v.Name) == volume && (v.EFSVolumeConfiguration != nil || v.Host != nil || v.DockerVolumeConfiguration != nil) {
			t.Errorf("/tmp (volume %s) is not the task's ephemeral storage", volume)
		}
	}
	if es := td.EphemeralStorage; es != nil && deref(es.SizeInGiB) < 20 {
		t.Errorf("ephemeral storage %d GiB, less than Fargate's default 20", deref(es.SizeInGiB))
	}
}
