package sqsqueue_test

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptrace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/parking-newtaipei/parking-newtaipei/internal/awstest"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue/queuetest"
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

// TestConformance runs the queue contract's suite against the SQS test
// server, in real time (visibility timeouts pass while a long poll waits);
// the tests below are only what is particular to SQS.
func TestConformance(t *testing.T) {
	queuetest.Run(t, func(t *testing.T) queuetest.Backend {
		q, tq := open(t, awstest.QueueOptions{MaxReceiveCount: 2})
		return queuetest.Backend{
			Queue:       q,
			MaxReceive:  2,
			Now:         time.Now,
			DeadLetters: func(t *testing.T) []queuetest.DeadLetter { return deadLetters(t, tq) },
			Waiting: func(ctx context.Context) (context.Context, <-chan struct{}) {
				// The long poll has begun once the request is on the wire.
				ch := make(chan struct{})
				var once sync.Once
				return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
					WroteRequest: func(httptrace.WroteRequestInfo) { once.Do(func() { close(ch) }) },
				}), ch
			},
		}
	})
}

// deadLetters reads every message of tq's dead-letter queue with its reason
// attribute, then makes them visible again for the next look.
func deadLetters(t *testing.T, tq awstest.Queue) []queuetest.DeadLetter {
	t.Helper()
	ctx := context.Background()
	var out []queuetest.DeadLetter
	var handles []types.ChangeMessageVisibilityBatchRequestEntry
	for {
		res, err := tq.Client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:              aws.String(tq.DLQURL),
			MaxNumberOfMessages:   10,
			VisibilityTimeout:     3600,
			MessageAttributeNames: []string{"All"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Messages) == 0 {
			break
		}
		for _, m := range res.Messages {
			out = append(out, queuetest.DeadLetter{
				Body:   []byte(aws.ToString(m.Body)),
				Reason: aws.ToString(m.MessageAttributes[sqsqueue.AttrReason].StringValue),
			})
			handles = append(handles, types.ChangeMessageVisibilityBatchRequestEntry{
				Id: aws.String(strconv.Itoa(len(handles))), ReceiptHandle: m.ReceiptHandle,
			})
		}
	}
	for start := 0; start < len(handles); start += 10 {
		if _, err := tq.Client.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{
			QueueUrl: aws.String(tq.DLQURL), Entries: handles[start:min(start+10, len(handles))],
		}); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// A failure on SQS's side (here a body over the queue's own, smaller,
// MaximumMessageSize) is an error naming the entry; the others are sent.
func TestSendReportsFailedEntries(t *testing.T) {
	q, tq := open(t, awstest.QueueOptions{MaxMessageSize: 1024})
	err := q.Send(context.Background(), []byte("ok 0"), bytes.Repeat([]byte("x"), 2048), []byte("ok 2"))
	if err == nil || !strings.Contains(err.Error(), "entry 1:") || !strings.Contains(err.Error(), "shorter than 1024") {
		t.Fatalf("Send with a body over MaximumMessageSize: %v, want an error naming entry 1", err)
	}
	if v, _ := counts(t, tq.Client, tq.URL); v != 2 {
		t.Fatalf("%d messages visible, want the 2 others", v)
	}
}

// The batches Send makes keep to SQS's limits: ten entries, and
// queue.MaxBodyBytes in all.
func TestBatches(t *testing.T) {
	big := make([]byte, queue.MaxBodyBytes/2)
	for _, c := range []struct {
		sizes []int
		want  [][2]int
	}{
		{nil, nil},
		{[]int{1}, [][2]int{{0, 1}}},
		{make([]int, 25), [][2]int{{0, 10}, {10, 20}, {20, 25}}},
		{[]int{len(big), len(big), len(big)}, [][2]int{{0, 2}, {2, 3}}},
		{[]int{queue.MaxBodyBytes, 1, queue.MaxBodyBytes}, [][2]int{{0, 1}, {1, 2}, {2, 3}}},
	} {
		bodies := make([][]byte, len(c.sizes))
		for i, n := range c.sizes {
			bodies[i] = make([]byte, n)
		}
		if got := sqsqueue.Batches(bodies); !slices.Equal(got, c.want) {
			t.Errorf("batches of %v = %v, want %v", c.sizes, got, c.want)
		}
	}
}

// DeadLetter's copy carries the reason, the original message ID, the source
// queue and the receive count as message attributes (what operators read
// with aws sqs receive-message).
func TestDeadLetterAttributes(t *testing.T) {
	ctx := context.Background()
	q, tq := open(t, awstest.QueueOptions{MaxReceiveCount: 5})
	if err := q.Send(ctx, []byte("poison")); err != nil {
		t.Fatal(err)
	}
	poison := receiveOne(t, q, time.Second, time.Minute)
	if err := q.DeadLetter(ctx, poison, "sha256 mismatch"); err != nil {
		t.Fatal(err)
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
		attr(sqsqueue.AttrReason) != "sha256 mismatch" ||
		attr(sqsqueue.AttrOriginalMessageID) != poison.ID ||
		attr(sqsqueue.AttrSourceQueue) != tq.URL ||
		attr(sqsqueue.AttrReceiveCount) != "1" {
		t.Fatalf("dead-lettered message %q with attributes %v", aws.ToString(m.Body), m.MessageAttributes)
	}
}

// A failed entry is named by its message ID.
func TestChangeVisibilityNamesFailedMessages(t *testing.T) {
	ctx := context.Background()
	q, _ := open(t, awstest.QueueOptions{})
	if err := q.Send(ctx, []byte("m")); err != nil {
		t.Fatal(err)
	}
	d := receiveOne(t, q, time.Second, time.Hour)
	bogus := queue.Delivery{ID: "bogus-id", Handle: "not-a-receipt-handle"}
	err := q.ChangeVisibility(ctx, 0, d, bogus)
	if !errors.Is(err, queue.ErrStaleHandle) || !strings.Contains(err.Error(), "bogus-id") || strings.Contains(err.Error(), d.ID) {
		t.Fatalf("ChangeVisibility with an invalid handle: %v, want ErrStaleHandle naming bogus-id alone", err)
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
