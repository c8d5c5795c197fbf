package reliability

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/parking-newtaipei/parking-newtaipei/internal/awstest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/dbtest"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue/sqsqueue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store/s3store"
)

// sqsCounts returns the queue's visible, in-flight and delayed messages.
func sqsCounts(t testing.TB, client *sqs.Client, url string) (visible, inFlight int) {
	t.Helper()
	out, err := client.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible, sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed},
	})
	if err != nil {
		t.Fatalf("queue attributes of %s: %v", url, err)
	}
	n := func(k sqstypes.QueueAttributeName) int { v, _ := strconv.Atoi(out.Attributes[string(k)]); return v }
	return n(sqstypes.QueueAttributeNameApproximateNumberOfMessages),
		n(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible) + n(sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed)
}

// TestS3SQSChaosFaultsAndSecurity runs the real loader against the S3 and
// SQS test servers through fault-injecting proxies: every message delivered
// one to three times in random order, S3 and SQS answering 5xx, resetting,
// answering slowly and truncating bodies, the loader SIGKILLed at random
// moments. The database equals a clean run. Then messages naming another
// bucket or a key outside the prefix cause no request to S3 at all, and no
// log line of any run holds the AWS secret key.
func TestS3SQSChaosFaultsAndSecurity(t *testing.T) {
	s3srv := awstest.S3Endpoint(t)
	sqsEndpoint := awstest.SQSEndpoint(t)
	rng := rand.New(rand.NewPCG(seed(t), 4))
	s3client, bucket := awstest.S3(t)
	q := awstest.NewQueue(t, awstest.QueueOptions{MaxReceiveCount: 10})
	const prefix = "prod"
	st := s3store.New(s3client, bucket, prefix)
	sender := sqsqueue.New(q.Client, q.URL, sqsqueue.Options{})

	h := genHistory(rng, 8, 72)
	bodies := publishAll(t, st, h)
	want := cleanDump(t, st, bodies)

	s3px := newProxy(t, s3srv.Endpoint)
	sqspx := newProxy(t, sqsEndpoint)
	getObject := func(r *http.Request) bool { return r.Method == http.MethodGet && strings.Count(r.URL.Path, "/") > 2 }
	sqsOp := func(op string) func(*http.Request) bool {
		return func(r *http.Request) bool { return strings.HasSuffix(r.Header.Get("X-Amz-Target"), "."+op) }
	}
	s3px.SlowDelay, sqspx.SlowDelay = 1e9, 1e9
	s3px.Inject(Status5xx, 6, getObject)
	s3px.Inject(Reset, 4, getObject)
	s3px.Inject(Slow, 3, getObject)
	s3px.Inject(Truncate, 1, getObject)
	sqspx.Inject(Status5xx, 3, sqsOp("ReceiveMessage"))
	sqspx.Inject(Reset, 2, sqsOp("DeleteMessageBatch"))
	sqspx.Inject(Slow, 2, sqsOp("ChangeMessageVisibilityBatch"))

	shuffled, extra := deliveries(rng, bodies)
	send(t, sender, shuffled...)

	dir := t.TempDir()
	// Exclusive, as on EFS, where the AWS deployment keeps the database.
	env := loaderEnv(dir, "s3://"+bucket+"/"+prefix, q.URL, append(awstest.Env(t), "PARKING_DB_LOCKING=exclusive")...)
	// Through the proxies (later entries win).
	// A 1s poll keeps the many restarts cheap; the 2s visibility still
	// brings a killed loader's messages back.
	env = append(env, "AWS_ENDPOINT_URL_S3="+s3px.URL, "AWS_ENDPOINT_URL_SQS="+sqspx.URL, "PARKING_POLL_WAIT=1s")
	// 12 kills here (20+ on the embedded backends): each restart against
	// the servers costs a long poll, and the package must stay within CI's budget.
	// The SQS test server updates its in-flight count only when it is asked
	// for messages, so the next run's one-second drain is what finds a
	// killed run's messages again (no untilVisible here).
	stats, logs := killUntilDrained(t, rng, env, 12, 8, func() (int, bool) {
		v, f := sqsCounts(t, q.Client, q.URL)
		return 0, v+f == 0
	})
	db := dir + "/parking.db"
	got := dbtest.Dump(t, db)
	if got != want {
		t.Fatalf("after %d kills and faults the database differs from the clean run\n%s", stats.kills, diff(want, got))
	}
	if n := dbtest.Count(t, db, "snapshots", ""); n != len(bodies) {
		t.Fatalf("ledger holds %d snapshots, want %d", n, len(bodies))
	}
	dead, _ := sqsCounts(t, q.Client, q.DLQURL)
	if dead != 0 {
		t.Fatalf("%d messages in the dead-letter queue; none was poison", dead)
	}
	injected := map[string]int{}
	for k, v := range s3px.Injected() {
		injected["s3-"+k.String()] = v
	}
	for k, v := range sqspx.Injected() {
		injected["sqs-"+k.String()] = v
	}
	report(t, "s3+sqs chaos: snapshots=%d deliveries=%d duplicate_deliveries=%d runs=%d sigkills=%d faults=%v dead_lettered=%d rows_lost=%d",
		len(bodies), len(shuffled), extra, stats.runs, stats.kills, injected, dead, lostRows(want, got))

	// Security: another bucket, a key outside the prefix. Both are refused
	// before any request to S3. The keys are new to the ledger: a key already
	// applied is acknowledged from the ledger without any read at all.
	s3px.Clear()
	var m queue.Message
	if err := json.Unmarshal(bodies[0], &m); err != nil {
		t.Fatal(err)
	}
	m.Key = m.Key[:len(m.Key)-len("0123456789abcdef.json.gz")] + "0123456789abcdef.json.gz"
	other := m
	other.Bucket = "someone-elses-bucket"
	outside := m
	outside.Key = "staging/" + strings.TrimPrefix(m.Key, prefix+"/")
	before := len(s3px.Requests())
	for _, mm := range []queue.Message{other, outside} {
		b, err := json.Marshal(mm)
		if err != nil {
			t.Fatal(err)
		}
		send(t, sender, b)
	}
	code, log := run(t, env, "loader", "serve", "-drain")
	logs = append(logs, log)
	if code != 0 {
		t.Fatalf("loader exited %d; log:\n%s", code, log)
	}
	outsideRequests := len(s3px.Requests()) - before
	if outsideRequests != 0 {
		t.Errorf("messages naming another bucket or prefix caused %d requests to S3", outsideRequests)
	}
	refused := strings.Count(log, "location outside the configured store")
	if refused != 2 {
		t.Errorf("%d refusals for 2 messages outside the store; log:\n%s", refused, log)
	}
	if !strings.Contains(log, "someone-elses-bucket") || !strings.Contains(log, "staging/") {
		t.Errorf("the refusals do not name what was refused:\n%s", log)
	}
	deadRefused, _ := sqsCounts(t, q.Client, q.DLQURL)
	if deadRefused != 2 {
		t.Errorf("%d messages in the dead-letter queue, want the 2 refused", deadRefused)
	}
	// Every request the loader ever made to S3 stayed inside bucket/prefix.
	stray := 0
	for _, r := range s3px.Requests() {
		if !strings.HasPrefix(r.Path, "/"+bucket+"/"+prefix+"/") {
			stray++
			t.Errorf("request outside the configured bucket and prefix: %s %s?%s", r.Method, r.Path, r.Query)
		}
	}
	// No log of any run holds the secret key.
	found := 0
	for i, l := range logs {
		if strings.Contains(l, s3srv.SecretKey) {
			found++
			t.Errorf("run %d logged the AWS secret access key", i+1)
		}
	}
	report(t, "security: s3_requests_total=%d requests_outside_bucket_prefix=%d requests_for_refused_messages=%d refused_outside=%d dead_lettered=%d runs_checked_for_secret=%d runs_with_secret=%d",
		len(s3px.Requests()), stray, outsideRequests, refused, deadRefused, len(logs), found)
}
