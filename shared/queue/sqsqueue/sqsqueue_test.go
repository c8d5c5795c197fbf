package sqsqueue_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/parking-newtaipei/parking-newtaipei/internal/awstest"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue/sqsqueue"
)

func open(t *testing.T, opts awstest.QueueOptions) (*sqsqueue.Queue, awstest.Queue) {
	t.Helper()
	tq := awstest.NewQueue(t, opts)
	return sqsqueue.New(tq.Client, tq.URL, sqsqueue.Options{}), tq
}

// counts returns the queue's visible and in-flight message counts.
func counts(t *testing.T, client *sqs.Client, url string) (visible, inflight int) {
	t.Helper()
	out, err := client.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url),
		AttributeNames: []types.QueueAttributeName{
			types.QueueAttributeNameApproximateNumberOfMessages,
			types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	visible, _ = strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessages)])
	inflight, _ = strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
	return visible, inflight
}

func receiveOne(t *testing.T, q queue.Queue, wait, visibility time.Duration) queue.Delivery {
	t.Helper()
	ds, err := q.Receive(context.Background(), 10, wait, visibility)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 {
		t.Fatalf("received %d messages, want 1", len(ds))
	}
	return ds[0]
}

func TestSendReceiveDeleteInBatches(t *testing.T) {
	ctx := context.Background()
	q, tq := open(t, awstest.QueueOptions{})
	before := time.Now().Add(-time.Second)
	var bodies [][]byte
	for i := 0; i < 25; i++ {
		bodies = append(bodies, []byte(fmt.Sprintf(`{"n":%d}`, i)))
	}
	if err := q.Send(ctx, bodies...); err != nil {
		t.Fatal(err)
	}
	if v, _ := counts(t, tq.Client, tq.URL); v != 25 {
		t.Fatalf("%d messages visible after sending 25", v)
	}

	var got []queue.Delivery
	for len(got) < 25 {
		ds, err := q.Receive(ctx, 10, time.Second, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 0 || len(ds) > 10 {
			t.Fatalf("a receive returned %d messages after %d of 25", len(ds), len(got))
		}
		got = append(got, ds...)
	}
	var gotBodies []string
	for _, d := range got {
		if d.ID == "" || d.Handle == "" || d.ReceiveCount != 1 || d.SentAt.Before(before) || d.SentAt.After(time.Now().Add(time.Second)) {
			t.Errorf("delivery %+v: want an ID, a handle, ReceiveCount 1 and a SentAt of now", d)
		}
		gotBodies = append(gotBodies, string(d.Body))
	}
	var want []string
	for _, b := range bodies {
		want = append(want, string(b))
	}
	slices.Sort(want)
	slices.Sort(gotBodies)
	if !slices.Equal(gotBodies, want) {
		t.Fatalf("bodies %v, want %v", gotBodies, want)
	}

	if err := q.Delete(ctx, got...); err != nil {
		t.Fatal(err)
	}
	if v, f := counts(t, tq.Client, tq.URL); v != 0 || f != 0 {
		t.Fatalf("after deleting all: %d visible, %d in flight", v, f)
	}
}

func TestSendReportsFailedEntries(t *testing.T) {
	q, tq := open(t, awstest.QueueOptions{})
	err := q.Send(context.Background(), []byte("ok 0"), []byte("bad \x00 body"), []byte("ok 2"))
	if err == nil || !strings.Contains(err.Error(), "entry 1:") || !strings.Contains(err.Error(), "InvalidMessageContents") {
		t.Fatalf("Send with an invalid body: %v, want an error naming entry 1", err)
	}
	if v, _ := counts(t, tq.Client, tq.URL); v != 2 {
		t.Fatalf("%d messages visible, want the 2 valid ones", v)
	}
}

// A message not deleted comes back after its visibility timeout. The second
// receive's long poll is what waits for it: no sleeps.
func TestRedeliveryAfterVisibilityTimeout(t *testing.T) {
	ctx := context.Background()
	q, _ := open(t, awstest.QueueOptions{MaxReceiveCount: 5})
	if err := q.Send(ctx, []byte("again")); err != nil {
		t.Fatal(err)
	}
	first := receiveOne(t, q, time.Second, time.Second)
	start := time.Now()
	second := receiveOne(t, q, 10*time.Second, time.Minute)
	if second.ID != first.ID || second.ReceiveCount != 2 || string(second.Body) != "again" {
		t.Fatalf("redelivery %+v, want message %s with ReceiveCount 2", second, first.ID)
	}
	if second.Handle == first.Handle {
		t.Error("a redelivery has a new receipt handle")
	}
	t.Logf("redelivered after %v", time.Since(start).Round(time.Millisecond))
	if err := q.Delete(ctx, second); err != nil {
		t.Fatal(err)
	}
}

func TestChangeVisibility(t *testing.T) {
	ctx := context.Background()
	q, _ := open(t, awstest.QueueOptions{MaxReceiveCount: 5})
	if err := q.Send(ctx, []byte("retry me")); err != nil {
		t.Fatal(err)
	}
	// Back at once: the retry path with no delay.
	d := receiveOne(t, q, time.Second, time.Hour)
	if err := q.ChangeVisibility(ctx, 0, d); err != nil {
		t.Fatal(err)
	}
	d = receiveOne(t, q, 5*time.Second, time.Second)
	if d.ReceiveCount != 2 {
		t.Fatalf("ReceiveCount %d after ChangeVisibility(0), want 2", d.ReceiveCount)
	}
	// Extended: the heartbeat path. Received with 1 s, extended to an hour,
	// it must not come back within a 2 s long poll.
	if err := q.ChangeVisibility(ctx, time.Hour, d); err != nil {
		t.Fatal(err)
	}
	ds, err := q.Receive(ctx, 10, 2*time.Second, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 0 {
		t.Fatalf("an extended message was delivered again: %+v", ds)
	}

	bogus := queue.Delivery{ID: "bogus-id", Handle: "not-a-receipt-handle"}
	err = q.ChangeVisibility(ctx, 0, d, bogus)
	if err == nil || !strings.Contains(err.Error(), "bogus-id") {
		t.Fatalf("ChangeVisibility with an invalid handle: %v, want an error naming bogus-id", err)
	}
}

func TestDeadLetterMovesMessageWithReason(t *testing.T) {
	ctx := context.Background()
	q, tq := open(t, awstest.QueueOptions{MaxReceiveCount: 5})
	if err := q.Send(ctx, []byte("poison"), []byte("good")); err != nil {
		t.Fatal(err)
	}
	ds, err := q.Receive(ctx, 10, time.Second, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for len(ds) < 2 {
		more, err := q.Receive(ctx, 10, time.Second, time.Minute)
		if err != nil || len(more) == 0 {
			t.Fatalf("receive: %d more, %v", len(more), err)
		}
		ds = append(ds, more...)
	}
	var poison, good queue.Delivery
	for _, d := range ds {
		if string(d.Body) == "poison" {
			poison = d
		} else {
			good = d
		}
	}
	if err := q.DeadLetter(ctx, poison, "sha256 mismatch: got 00ff, message says ffee"); err != nil {
		t.Fatal(err)
	}
	if err := q.ChangeVisibility(ctx, 0, good); err != nil {
		t.Fatal(err)
	}
	// The good message is behind nothing.
	if d := receiveOne(t, q, 5*time.Second, time.Minute); string(d.Body) != "good" {
		t.Fatalf("received %q, want the good message", d.Body)
	}

	out, err := tq.Client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:              aws.String(tq.DLQURL),
		MaxNumberOfMessages:   10,
		WaitTimeSeconds:       5,
		MessageAttributeNames: []string{"All"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Messages) != 1 {
		t.Fatalf("%d messages in the dead-letter queue, want 1", len(out.Messages))
	}
	m := out.Messages[0]
	attr := func(name string) string { return aws.ToString(m.MessageAttributes[name].StringValue) }
	if aws.ToString(m.Body) != "poison" ||
		attr(sqsqueue.AttrReason) != "sha256 mismatch: got 00ff, message says ffee" ||
		attr(sqsqueue.AttrOriginalMessageID) != poison.ID ||
		attr(sqsqueue.AttrSourceQueue) != tq.URL ||
		attr(sqsqueue.AttrReceiveCount) != "1" {
		t.Fatalf("dead-lettered message %q with attributes %v", aws.ToString(m.Body), m.MessageAttributes)
	}
}

func TestDeadLetterWithoutDeadLetterQueue(t *testing.T) {
	ctx := context.Background()
	q, _ := open(t, awstest.QueueOptions{NoDeadLetter: true})
	if err := q.Send(ctx, []byte("poison")); err != nil {
		t.Fatal(err)
	}
	d := receiveOne(t, q, time.Second, time.Hour)
	err := q.DeadLetter(ctx, d, "undecodable")
	if !errors.Is(err, sqsqueue.ErrNoDeadLetterQueue) {
		t.Fatalf("DeadLetter without a dead-letter queue: %v, want ErrNoDeadLetterQueue", err)
	}
	// Visible again at once, though it was received for an hour.
	if again := receiveOne(t, q, 5*time.Second, time.Minute); again.ID != d.ID {
		t.Fatalf("received %s, want %s back", again.ID, d.ID)
	}
}

func TestDeadLetterURLOverride(t *testing.T) {
	ctx := context.Background()
	tq := awstest.NewQueue(t, awstest.QueueOptions{NoDeadLetter: true})
	other := awstest.NewQueue(t, awstest.QueueOptions{NoDeadLetter: true})
	q := sqsqueue.New(tq.Client, tq.URL, sqsqueue.Options{DeadLetterURL: other.URL})
	if err := q.Send(ctx, []byte("poison")); err != nil {
		t.Fatal(err)
	}
	if err := q.DeadLetter(ctx, receiveOne(t, q, time.Second, time.Minute), "bad"); err != nil {
		t.Fatal(err)
	}
	if v, _ := counts(t, other.Client, other.URL); v != 1 {
		t.Fatalf("%d messages in the override dead-letter queue, want 1", v)
	}
}

// SQS itself moves a message received maxReceiveCount times, without any
// DeadLetter call, on the next receive attempt.
func TestRedriveAfterMaxReceiveCount(t *testing.T) {
	ctx := context.Background()
	q, tq := open(t, awstest.QueueOptions{MaxReceiveCount: 2})
	if err := q.Send(ctx, []byte("crashes the loader")); err != nil {
		t.Fatal(err)
	}
	receiveOne(t, q, time.Second, time.Second)
	if d := receiveOne(t, q, 10*time.Second, time.Second); d.ReceiveCount != 2 {
		t.Fatalf("ReceiveCount %d, want 2", d.ReceiveCount)
	}
	ds, err := q.Receive(ctx, 10, 3*time.Second, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 0 {
		t.Fatalf("received %+v a third time with maxReceiveCount 2", ds)
	}
	dlq := sqsqueue.New(tq.Client, tq.DLQURL, sqsqueue.Options{})
	if d := receiveOne(t, dlq, 5*time.Second, time.Minute); string(d.Body) != "crashes the loader" {
		t.Fatalf("dead-letter queue holds %q", d.Body)
	}
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	tq := awstest.NewQueue(t, awstest.QueueOptions{})
	static := []func(*config.LoadOptions) error{
		config.WithRegion(awstest.Region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("k", "s", "")),
	}

	t.Run("endpoint from the queue URL", func(t *testing.T) {
		t.Setenv("AWS_ENDPOINT_URL_SQS", "")
		t.Setenv("AWS_ENDPOINT_URL", "")
		q, err := sqsqueue.Open(ctx, tq.URL, sqsqueue.Options{Config: static})
		if err != nil {
			t.Fatal(err)
		}
		if q.String() != tq.URL {
			t.Errorf("String() = %q, want %q", q.String(), tq.URL)
		}
		if err := q.Send(ctx, []byte("via the URL")); err != nil {
			t.Fatal(err)
		}
		receiveOne(t, q, 5*time.Second, time.Second)
	})
	t.Run("endpoint from AWS_ENDPOINT_URL_SQS", func(t *testing.T) {
		awstest.Setenv(t)
		// A queue URL naming AWS, as in production: only the SDK's endpoint
		// variable can send the requests to the test server.
		name := tq.URL[strings.LastIndex(tq.URL, "/")+1:]
		awsURL := "https://sqs." + awstest.Region + ".amazonaws.com/000000000000/" + name
		if _, err := sqsqueue.Open(ctx, awsURL, sqsqueue.Options{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("missing queue", func(t *testing.T) {
		if _, err := sqsqueue.Open(ctx, tq.URL+"-missing", sqsqueue.Options{Config: static}); err == nil {
			t.Fatal("Open of a missing queue succeeded")
		}
	})
	t.Run("bad URL", func(t *testing.T) {
		for _, u := range []string{"sqs://x/y", "https://host", "not a url"} {
			if _, err := sqsqueue.Open(ctx, u, sqsqueue.Options{Config: static}); err == nil {
				t.Errorf("Open(%q) succeeded", u)
			}
		}
	})
}
