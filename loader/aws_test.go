package main

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/parking-newtaipei/parking-newtaipei/internal/awstest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/consumetest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/dbtest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/feedtest"
	"github.com/parking-newtaipei/parking-newtaipei/internal/logtest"
	"github.com/parking-newtaipei/parking-newtaipei/shared/extract"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/load/consume"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue/sqsqueue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store/s3store"
)

// awsPipeline is a pipeline on the S3 and SQS test servers (versitygw and
// fauxqs, started by scripts/test): the same binaries, other URLs.
type awsPipeline struct {
	*pipeline
	bucket string
	q      awstest.Queue
	sqs    *sqs.Client
	store  *s3store.Store
}

func newAWSPipeline(t *testing.T, opts awstest.QueueOptions) *awsPipeline {
	t.Helper()
	s3c, bucket := awstest.S3(t)
	q := awstest.NewQueue(t, opts)
	p := newPipeline(t)
	p.extra = append(awstest.Env(t),
		"PARKING_STORE=s3://"+bucket+"/snapshots",
		"PARKING_QUEUE="+q.URL,
		"PARKING_POLL_WAIT=1s",
	)
	return &awsPipeline{pipeline: p, bucket: bucket, q: q, sqs: q.Client, store: s3store.New(s3c, bucket, "snapshots")}
}

// counts returns the queue's visible and in-flight messages. fauxqs answers
// these exactly (real SQS only approximately).
func (a *awsPipeline) counts(url string) (visible, inFlight int) {
	a.t.Helper()
	out, err := a.sqs.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	if err != nil {
		a.t.Fatal(err)
	}
	v, _ := strconv.Atoi(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)])
	f, _ := strconv.Atoi(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
	return v, f
}

func (a *awsPipeline) queue(t *testing.T) *sqsqueue.Queue {
	t.Helper()
	awstest.Setenv(t)
	q, err := sqsqueue.Open(context.Background(), a.q.URL, sqsqueue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestEndToEndThroughS3AndSQS(t *testing.T) {
	a := newAWSPipeline(t, awstest.QueueOptions{})
	a.mustRun(0, "extractor", "fetch", "-dataset", "lots")
	a.mustRun(2, "extractor", "fetch", "-dataset", "lots") // the content hash lives in the S3 store
	a.mustRun(0, "extractor", "fetch", "-dataset", "availability")
	a.mustRun(0, "loader", "serve", "-drain")

	if v, f := a.counts(a.q.URL); v+f != 0 {
		t.Fatalf("queue holds %d visible and %d in-flight messages after the drain", v, f)
	}
	ids := map[string]bool{}
	for _, l := range feedtest.SampleLots() {
		ids[l.ID] = true
	}
	if got := dbtest.Count(t, a.db(), "parking_lots", "deleted_at IS NULL"); got != len(ids) {
		t.Errorf("active lots = %d, want %d", got, len(ids))
	}
	if got := dbtest.Count(t, a.db(), "snapshots", "outcome = 'applied'"); got != 2 {
		t.Errorf("applied snapshots = %d, want 2", got)
	}
	// The same tables as the embedded backends give for the same feed.
	local := newPipeline(t)
	local.mustRun(0, "extractor", "fetch", "-dataset", "lots")
	local.mustRun(0, "extractor", "fetch", "-dataset", "availability")
	local.mustRun(0, "loader", "serve", "-drain")
	if dbtest.Count(t, local.db(), "availability", "") != dbtest.Count(t, a.db(), "availability", "") {
		t.Error("S3+SQS and the embedded backends stored different observation counts for the same feed")
	}
}

// consumer drains q into the pipeline's database in this process, reading
// the snapshots through st.
func (a *awsPipeline) consumer(q queue.Queue, st store.Store, cfg consume.Config) error {
	cfg.Queue, cfg.Store = q, st
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	_, err := consumetest.Drain(context.Background(), a.db(), cfg)
	return err
}

// publish fetches one dataset from the fixture feed into S3 and SQS in process.
func (a *awsPipeline) publish(t *testing.T, q queue.Queue, d feed.Dataset) extract.Result {
	t.Helper()
	f, err := extract.NewClient(extract.ClientConfig{BaseURL: a.feed.URL})
	if err != nil {
		t.Fatal(err)
	}
	res, err := (&extract.Job{Fetcher: f, Store: a.store, Queue: q}).Run(context.Background(), extract.Request{Dataset: d, Format: feed.JSON, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// A message whose delete was lost comes back after its visibility timeout
// and is acknowledged, not applied again.
func TestSQSRedeliveryAppliesOnce(t *testing.T) {
	a := newAWSPipeline(t, awstest.QueueOptions{MaxReceiveCount: 5})
	q := a.queue(t)
	a.publish(t, q, feed.Availability)

	if err := a.consumer(&failingDelete{Queue: q}, a.store, consume.Config{Wait: time.Second, Visibility: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	before := dbtest.Dump(t, a.db())
	if _, f := a.counts(a.q.URL); f != 1 {
		t.Fatalf("in-flight messages after the lost delete = %d, want 1", f)
	}
	// The drain's long poll (5 s) outlasts the 2 s visibility: it sees the redelivery.
	var logs logtest.Buffer
	if err := a.consumer(q, a.store, consume.Config{Wait: 5 * time.Second, Visibility: 2 * time.Second,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil))}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "already applied") {
		t.Fatalf("the redelivered message was not acknowledged as already applied:\n%s", logs.String())
	}
	if after := dbtest.Dump(t, a.db()); after != before {
		t.Fatal("the redelivery changed the database")
	}
	if v, f := a.counts(a.q.URL); v+f != 0 {
		t.Fatalf("queue holds %d visible and %d in flight", v, f)
	}
}

// Work that outlives the visibility timeout is kept invisible by the
// heartbeat: a second consumer polling meanwhile receives nothing.
func TestSQSHeartbeatKeepsSlowWorkFromASecondConsumer(t *testing.T) {
	a := newAWSPipeline(t, awstest.QueueOptions{MaxReceiveCount: 5})
	q := a.queue(t)
	a.publish(t, q, feed.Availability)

	slow := &slowStore{Store: a.store, entered: make(chan struct{}), release: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		done <- a.consumer(q, slow, consume.Config{Wait: time.Second, Visibility: 2 * time.Second})
	}()
	<-slow.entered // the first consumer holds the message and is stuck reading it

	// A second consumer long-polls for 6 s: three visibility timeouts.
	other := a.queue(t)
	got, err := other.Receive(context.Background(), 10, 6*time.Second, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	close(slow.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("a second consumer received %d messages while the first was still working on them", len(got))
	}
	if n := dbtest.Count(t, a.db(), "snapshots", "outcome = 'applied'"); n != 1 {
		t.Fatalf("applied snapshots = %d, want 1", n)
	}
	if v, f := a.counts(a.q.URL); v+f != 0 {
		t.Fatalf("queue holds %d visible and %d in flight after the slow apply", v, f)
	}
}

// Forged messages are refused with their reason, reach the dead-letter
// queue, and the good message behind them is applied.
func TestSQSPoisonGoesToTheDeadLetterQueue(t *testing.T) {
	a := newAWSPipeline(t, awstest.QueueOptions{MaxReceiveCount: 5})
	q := a.queue(t)
	good := a.publish(t, q, feed.Availability)
	// Take the good message out and send it again behind the poison.
	ds, err := q.Receive(context.Background(), 10, time.Second, time.Minute)
	if err != nil || len(ds) != 1 {
		t.Fatalf("receive: %v (%d)", err, len(ds))
	}
	if err := q.Delete(context.Background(), ds...); err != nil {
		t.Fatal(err)
	}
	msg := extract.Message(good, a.store.Locate(good.Key))
	outside := msg
	outside.Key = "elsewhere/" + good.Key
	otherBucket := msg
	otherBucket.Bucket = "another-bucket"
	badSum := msg
	badSum.SHA256 = strings.Repeat("ab", 32)
	poison := [][]byte{[]byte("garbage"), mustEncodeMsg(t, outside), mustEncodeMsg(t, otherBucket), mustEncodeMsg(t, badSum)}
	if err := q.Send(context.Background(), append(poison, mustEncodeMsg(t, msg))...); err != nil {
		t.Fatal(err)
	}
	if err := a.consumer(q, a.store, consume.Config{Wait: time.Second}); err != nil {
		t.Fatal(err)
	}
	if n := dbtest.Count(t, a.db(), "snapshots", "key = ? AND outcome = 'applied'", good.Key); n != 1 {
		t.Fatalf("the good message was not applied")
	}
	if n := dbtest.Count(t, a.db(), "rejections", ""); n != len(poison) {
		t.Errorf("rejections = %d, want %d", n, len(poison))
	}
	out, err := a.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
		QueueUrl: aws.String(a.q.DLQURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
		MessageAttributeNames: []string{"All"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Messages) != len(poison) {
		t.Fatalf("dead-letter queue holds %d messages, want %d", len(out.Messages), len(poison))
	}
	var reasons []string
	for _, m := range out.Messages {
		if r, ok := m.MessageAttributes[sqsqueue.AttrReason]; ok && r.StringValue != nil {
			reasons = append(reasons, *r.StringValue)
		}
	}
	all := strings.Join(reasons, "\n")
	for _, w := range []string{"invalid message", "outside", "checksum mismatch"} {
		if !strings.Contains(all, w) {
			t.Errorf("no dead letter's reason mentions %q:\n%s", w, all)
		}
	}
	if v, f := a.counts(a.q.URL); v+f != 0 {
		t.Fatalf("queue holds %d visible and %d in flight", v, f)
	}
}

// SIGTERM in the middle of a stream of batches: exit 0, every message either
// applied and deleted or visible again at once, nothing applied twice.
func TestSQSSIGTERMDuringABatch(t *testing.T) {
	a := newAWSPipeline(t, awstest.QueueOptions{MaxReceiveCount: 5})
	q := a.queue(t)
	const n = 30
	rows := feedtest.SampleAvailability(1)
	for i := range n {
		for j := range rows {
			rows[j].AvailableCar = strconv.Itoa((i + j) % 50)
		}
		a.feed.SetAvailability(rows)
		a.publish(t, q, feed.Availability)
	}
	a.extra = append(a.extra, "PARKING_SHUTDOWN_TIMEOUT=25s")
	pr := a.start("loader", "serve")
	pr.waitFor(t, "snapshot applied")
	start := time.Now()
	if err := pr.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := pr.wait(); code != 0 {
		t.Fatalf("loader exited %d after SIGTERM, want 0", code)
	}
	if d := time.Since(start); d > 25*time.Second {
		t.Errorf("graceful stop took %s, past the 25 s deadline", d)
	}
	applied := dbtest.Count(t, a.db(), "snapshots", "")
	visible, inFlight := a.counts(a.q.URL)
	if inFlight != 0 {
		t.Errorf("%d messages stranded in flight after the stop", inFlight)
	}
	if applied+visible != n {
		t.Errorf("applied %d + visible %d != %d sent: messages lost or doubled", applied, visible, n)
	}
	if applied == n {
		t.Log("the loader applied everything before the signal took effect")
	}
	a.mustRun(0, "loader", "serve", "-drain")
	if got := dbtest.Count(t, a.db(), "snapshots", "outcome = 'applied'"); got != n {
		t.Fatalf("after draining the rest: %d applied, want %d", got, n)
	}
}

// With -wait-lock a second loader waits as a standby and takes over when the
// first one exits.
func TestWaitLockStandbyTakesOver(t *testing.T) {
	p := newPipeline(t)
	first := p.start("loader", "serve")
	first.waitFor(t, "loader started")
	standby := p.start("loader", "serve", "-wait-lock")
	standby.waitFor(t, "waiting")
	if err := first.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := first.wait(); code != 0 {
		t.Fatalf("first loader exited %d", code)
	}
	standby.waitFor(t, "loader started")
	if err := standby.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := standby.wait(); code != 0 {
		t.Fatalf("standby exited %d", code)
	}
}

// slowStore holds the first Get until released.
type slowStore struct {
	store.Store
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (s *slowStore) Get(ctx context.Context, loc store.Location, max int64) ([]byte, time.Time, error) {
	s.once.Do(func() {
		close(s.entered)
		<-s.release
	})
	return s.Store.Get(ctx, loc, max)
}

type failingDelete struct{ queue.Queue }

func (f *failingDelete) Delete(context.Context, ...queue.Delivery) error {
	return errFailingDelete
}

var errFailingDelete = os.ErrDeadlineExceeded

func mustEncodeMsg(t *testing.T, m queue.Message) []byte {
	t.Helper()
	b, err := queue.EncodeMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
