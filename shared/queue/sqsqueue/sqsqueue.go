// Package sqsqueue is the queue on Amazon SQS (a standard queue), implementing
// queue.Queue with the SDK's JSON protocol.
//
// Every call is batched as SQS allows (10 entries), and a batch's partial
// failure is an error naming the failed entries: a message silently not sent
// is a snapshot never applied, and one silently not deleted is applied twice
// (harmless only because the apply is idempotent).
//
// Cancelling the context of an in-flight Receive (or closing the queue
// during one) loses nothing but may strand the messages SQS had already
// handed over until their visibility timeout ends (aws-sdk-go-v2 #2068):
// callers stopping gracefully should let the current long poll return
// rather than cancel it, which Polling tells them.
package sqsqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/parking-newtaipei/parking-newtaipei/shared/queue"
)

// maxReasonBytes keeps a dead-letter reason well inside SQS's 256 KiB message.
const maxReasonBytes = 4 << 10

// deadLetterLease is how long DeadLetter hides the message while it copies
// it to the dead-letter queue and deletes it; should either step fail, the
// message comes back after it.
const deadLetterLease = time.Minute

// Message attributes DeadLetter sets on the copy it sends to the dead-letter queue.
const (
	AttrReason            = "reason"
	AttrOriginalMessageID = "original-message-id"
	AttrSourceQueue       = "source-queue"
	AttrReceiveCount      = "receive-count"
)

// ErrNoDeadLetterQueue: DeadLetter found neither a RedrivePolicy on the
// queue nor Options.DeadLetterURL. The message is made visible again at once.
var ErrNoDeadLetterQueue = errors.New("the queue has no dead-letter queue")

// Options configure Open and New.
type Options struct {
	// Logger receives the few things worth logging that are not errors (a
	// queue without a dead-letter queue). Nil discards them.
	Logger *slog.Logger
	// DeadLetterURL overrides the dead-letter queue found in the queue's
	// RedrivePolicy.
	DeadLetterURL string
	// Config adds options to the default AWS configuration (Open only).
	Config []func(*config.LoadOptions) error
}

// Queue is one SQS queue.
type Queue struct {
	client *sqs.Client
	url    string
	logger *slog.Logger

	// life ends when the queue is closed; every request's context is bound
	// to it, so a Close ends a waiting Receive as the contract requires.
	life     context.Context
	shutdown context.CancelFunc

	mu  sync.Mutex
	dlq string // the dead-letter queue's URL once known
}

var _ queue.Queue = (*Queue)(nil)

// awsQueueHost is the host of an SQS queue URL on AWS: sqs.<region>.amazonaws.com
// (or the legacy <region>.queue.amazonaws.com), with the China partition's suffix.
var awsQueueHost = regexp.MustCompile(`^(?:sqs\.([a-z0-9-]+)|([a-z0-9-]+)\.queue)\.amazonaws\.com(?:\.cn)?$`)

// Open returns the queue at queueURL with a client built from the default
// AWS configuration. The region, when the environment names none, comes from
// an AWS queue URL. A queue URL of another host (an SQS-compatible server) is
// also the endpoint, unless AWS_ENDPOINT_URL_SQS (or AWS_ENDPOINT_URL) names
// one, which the SDK honours itself. Open checks that the queue exists.
func Open(ctx context.Context, queueURL string, opts Options) (*Queue, error) {
	u, err := url.Parse(queueURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || strings.Trim(u.Path, "/") == "" {
		return nil, fmt.Errorf("queue URL %q: want http(s)://host/account/name", queueURL)
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts.Config...)
	if err != nil {
		return nil, fmt.Errorf("open %s: load AWS configuration: %w", queueURL, err)
	}
	m := awsQueueHost.FindStringSubmatch(u.Hostname())
	if cfg.Region == "" && m != nil {
		cfg.Region = m[1] + m[2]
	}
	client := sqs.NewFromConfig(cfg, func(o *sqs.Options) {
		if m == nil && o.BaseEndpoint == nil {
			o.BaseEndpoint = aws.String(u.Scheme + "://" + u.Host)
		}
	})
	q := New(client, queueURL, opts)
	if _, err := q.attributes(ctx, types.QueueAttributeNameQueueArn); err != nil {
		return nil, fmt.Errorf("open %s: %w", queueURL, err)
	}
	return q, nil
}

// New returns the queue at queueURL using client, without any request.
func New(client *sqs.Client, queueURL string, opts Options) *Queue {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	life, shutdown := context.WithCancel(context.Background())
	return &Queue{client: client, url: queueURL, logger: logger, dlq: opts.DeadLetterURL, life: life, shutdown: shutdown}
}

// String is the queue's URL.
func (q *Queue) String() string { return q.url }

// emptyWait is the shortest long poll: unlike a receive without a wait,
// which samples only some of SQS's servers, a long poll asks them all, so
// an empty answer means the queue had no visible message.
const emptyWait = time.Second

// Polling: a ReceiveMessage cannot be cancelled safely (see the package
// comment), and one second of long poll tells that the queue is empty.
func (q *Queue) Polling() queue.Polling {
	return queue.Polling{Interruptible: false, EmptyWait: emptyWait}
}

// Close ends the requests in flight (a waiting Receive returns
// queue.ErrClosed) and makes every later call fail with queue.ErrClosed.
// The SDK client itself holds nothing that needs closing.
func (q *Queue) Close() error {
	q.shutdown()
	return nil
}

// bind returns ctx, also cancelled when the queue is closed, and its release.
func (q *Queue) bind(ctx context.Context) (context.Context, func(), error) {
	if q.life.Err() != nil {
		return nil, nil, queue.ErrClosed
	}
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(q.life, func() { cancel(queue.ErrClosed) })
	return ctx, func() { stop(); cancel(nil) }, nil
}

// closedErr is queue.ErrClosed when the queue was closed during a call that
// failed with err, and err otherwise.
func closedErr(ctx context.Context, err error) error {
	if context.Cause(ctx) == queue.ErrClosed {
		return fmt.Errorf("%w (%v)", queue.ErrClosed, err)
	}
	return err
}

// batches splits n bodies into runs of at most queue.MaxBatch entries and
// queue.MaxBodyBytes in all, which is what SQS takes in one batch call.
func batches(bodies [][]byte) [][2]int {
	var out [][2]int
	start, size := 0, 0
	for i, b := range bodies {
		if i > start && (i-start == queue.MaxBatch || size+len(b) > queue.MaxBodyBytes) {
			out = append(out, [2]int{start, i})
			start, size = i, 0
		}
		size += len(b)
	}
	if start < len(bodies) {
		out = append(out, [2]int{start, len(bodies)})
	}
	return out
}

// Send enqueues the bodies, as many per SendMessageBatch as SQS takes (ten,
// and queue.MaxBodyBytes in all). Entries that fail for a reason on SQS's
// side are retried once; what still fails is an error naming each failed
// entry (by its index among bodies).
func (q *Queue) Send(ctx context.Context, bodies ...[]byte) error {
	if err := queue.CheckBodies(bodies); err != nil {
		return fmt.Errorf("send to %s: %w", q.url, err)
	}
	ctx, done, err := q.bind(ctx)
	if err != nil {
		return fmt.Errorf("send to %s: %w", q.url, err)
	}
	defer done()
	for _, run := range batches(bodies) {
		start, end := run[0], run[1]
		entries := make([]types.SendMessageBatchRequestEntry, 0, end-start)
		for i := start; i < end; i++ {
			entries = append(entries, types.SendMessageBatchRequestEntry{
				Id:          aws.String(strconv.Itoa(i)),
				MessageBody: aws.String(string(bodies[i])),
			})
		}
		failed, err := q.sendBatch(ctx, entries)
		if err != nil {
			return fmt.Errorf("send to %s: messages %d-%d: %w", q.url, start, end-1, closedErr(ctx, err))
		}
		// A failure on SQS's side may pass on a second try; a sender fault
		// (a body SQS refuses) never will.
		var retry []types.SendMessageBatchRequestEntry
		var final []types.BatchResultErrorEntry
		for _, f := range failed {
			if f.SenderFault {
				final = append(final, f)
			} else {
				retry = append(retry, entryByID(entries, aws.ToString(f.Id)))
			}
		}
		if len(retry) > 0 {
			again, err := q.sendBatch(ctx, retry)
			if err != nil {
				return fmt.Errorf("send to %s: retrying messages %s: %w", q.url, ids(retry), closedErr(ctx, err))
			}
			final = append(final, again...)
		}
		failed = final
		if len(failed) > 0 {
			return fmt.Errorf("send to %s: %d of %d messages failed: %s", q.url, len(failed), len(bodies), describe(failed))
		}
	}
	return nil
}

func (q *Queue) sendBatch(ctx context.Context, entries []types.SendMessageBatchRequestEntry) ([]types.BatchResultErrorEntry, error) {
	out, err := q.client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(q.url), Entries: entries})
	if err != nil {
		return nil, err
	}
	return out.Failed, nil
}

func entryByID(entries []types.SendMessageBatchRequestEntry, id string) types.SendMessageBatchRequestEntry {
	for _, e := range entries {
		if aws.ToString(e.Id) == id {
			return e
		}
	}
	return types.SendMessageBatchRequestEntry{Id: aws.String(id)}
}

func ids(entries []types.SendMessageBatchRequestEntry) string {
	s := make([]string, len(entries))
	for i, e := range entries {
		s[i] = aws.ToString(e.Id)
	}
	return strings.Join(s, ",")
}

func describe(failed []types.BatchResultErrorEntry) string {
	s := make([]string, len(failed))
	for i, f := range failed {
		s[i] = fmt.Sprintf("entry %s: %s: %s", aws.ToString(f.Id), aws.ToString(f.Code), aws.ToString(f.Message))
	}
	return strings.Join(s, "; ")
}

// seconds rounds d (already checked against SQS's limits) up to whole
// seconds: SQS counts in seconds, and rounding a visibility timeout down
// could expose a message early.
func seconds(d time.Duration) int32 {
	return int32((d + time.Second - 1) / time.Second)
}

// Receive long-polls for up to wait and returns at most maxMessages
// messages, each invisible to other receivers for visibility.
func (q *Queue) Receive(ctx context.Context, maxMessages int, wait, visibility time.Duration) ([]queue.Delivery, error) {
	if err := queue.CheckReceive(maxMessages, wait, visibility); err != nil {
		return nil, fmt.Errorf("receive from %s: %w", q.url, err)
	}
	ctx, done, err := q.bind(ctx)
	if err != nil {
		return nil, fmt.Errorf("receive from %s: %w", q.url, err)
	}
	defer done()
	out, err := q.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:            aws.String(q.url),
		MaxNumberOfMessages: int32(maxMessages),
		WaitTimeSeconds:     seconds(wait),
		VisibilityTimeout:   seconds(visibility),
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{
			types.MessageSystemAttributeNameApproximateReceiveCount,
			types.MessageSystemAttributeNameSentTimestamp,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("receive from %s: %w", q.url, closedErr(ctx, err))
	}
	ds := make([]queue.Delivery, 0, len(out.Messages))
	for _, m := range out.Messages {
		d := queue.Delivery{
			ID:     aws.ToString(m.MessageId),
			Handle: aws.ToString(m.ReceiptHandle),
			Body:   []byte(aws.ToString(m.Body)),
		}
		d.ReceiveCount, _ = strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
		if ms, err := strconv.ParseInt(m.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil {
			d.SentAt = time.UnixMilli(ms).UTC()
		}
		ds = append(ds, d)
	}
	return ds, nil
}

// Delete removes the messages, ten per DeleteMessageBatch; entries SQS could
// not delete (a malformed receipt handle, say) are an error naming their IDs.
// SQS itself answers success for a handle that is merely stale.
func (q *Queue) Delete(ctx context.Context, ds ...queue.Delivery) error {
	ctx, done, err := q.bind(ctx)
	if err != nil {
		return fmt.Errorf("delete from %s: %w", q.url, err)
	}
	defer done()
	var problems []string
	stale := false
	for start := 0; start < len(ds); start += queue.MaxBatch {
		batch := ds[start:min(start+queue.MaxBatch, len(ds))]
		entries := make([]types.DeleteMessageBatchRequestEntry, len(batch))
		for i, d := range batch {
			entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(d.Handle)}
		}
		out, err := q.client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(q.url), Entries: entries})
		if err != nil {
			return fmt.Errorf("delete from %s: %w", q.url, closedErr(ctx, err))
		}
		p, s := failures(batch, out.Failed)
		problems, stale = append(problems, p...), stale || s
	}
	if len(problems) > 0 {
		return fmt.Errorf("delete from %s: %w", q.url, batchError(problems, len(ds), stale))
	}
	return nil
}

// ChangeVisibility makes the messages visible again after d (0: at once),
// ten per ChangeMessageVisibilityBatch. SQS changes each entry on its own and
// reports the stale handles, which the error wraps as queue.ErrStaleHandle.
func (q *Queue) ChangeVisibility(ctx context.Context, d time.Duration, ds ...queue.Delivery) error {
	if err := queue.CheckVisibility(d); err != nil {
		return fmt.Errorf("change visibility in %s: %w", q.url, err)
	}
	ctx, done, err := q.bind(ctx)
	if err != nil {
		return fmt.Errorf("change visibility in %s: %w", q.url, err)
	}
	defer done()
	timeout := seconds(d)
	var problems []string
	stale := false
	for start := 0; start < len(ds); start += queue.MaxBatch {
		batch := ds[start:min(start+queue.MaxBatch, len(ds))]
		entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, len(batch))
		for i, m := range batch {
			entries[i] = types.ChangeMessageVisibilityBatchRequestEntry{
				Id:                aws.String(strconv.Itoa(i)),
				ReceiptHandle:     aws.String(m.Handle),
				VisibilityTimeout: timeout,
			}
		}
		out, err := q.client.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(q.url), Entries: entries})
		if err != nil {
			return fmt.Errorf("change visibility in %s: %w", q.url, closedErr(ctx, err))
		}
		p, s := failures(batch, out.Failed)
		problems, stale = append(problems, p...), stale || s
	}
	if len(problems) > 0 {
		return fmt.Errorf("change visibility in %s to %s: %w", q.url, d, batchError(problems, len(ds), stale))
	}
	return nil
}

// failures names the batch entries SQS reports failed by their message IDs,
// and says whether any failed for a stale receipt handle.
func failures(batch []queue.Delivery, failed []types.BatchResultErrorEntry) (problems []string, stale bool) {
	for _, f := range failed {
		id := aws.ToString(f.Id)
		if i, err := strconv.Atoi(id); err == nil && i >= 0 && i < len(batch) {
			id = batch[i].ID
		}
		problems = append(problems, fmt.Sprintf("message %s: %s: %s", id, aws.ToString(f.Code), aws.ToString(f.Message)))
		stale = stale || isStale(aws.ToString(f.Code), aws.ToString(f.Message))
	}
	return problems, stale
}

// isStale reports SQS's answers to a receipt handle that is no longer (or
// never was) the message's current one: ReceiptHandleIsInvalid,
// MessageNotInflight, or InvalidParameterValue about the ReceiptHandle.
func isStale(code, message string) bool {
	return strings.Contains(code, "ReceiptHandleIsInvalid") || strings.Contains(code, "MessageNotInflight") ||
		(code == "InvalidParameterValue" && strings.Contains(message, "ReceiptHandle"))
}

// batchError is the error of a batch call with failed entries; it wraps
// queue.ErrStaleHandle when any of them failed for a stale handle.
func batchError(problems []string, n int, stale bool) error {
	err := fmt.Errorf("%d of %d messages failed: %s", len(problems), n, strings.Join(problems, "; "))
	if stale {
		return fmt.Errorf("%w: %w", queue.ErrStaleHandle, err)
	}
	return err
}

// DeadLetter sends a copy of the message, with its reason, to the
// dead-letter queue and then deletes the original, so a message that can
// never succeed stops blocking the ones behind it now rather than after
// maxReceiveCount receives. Without a dead-letter queue it makes the message
// visible again at once and returns ErrNoDeadLetterQueue: SQS's redrive, or
// an operator, must then deal with it.
//
// The handle is proven current first (by hiding the message for
// deadLetterLease): SQS answers success to a delete with a stale handle, so
// without the check a message another consumer now holds would be copied to
// the dead-letter queue and stay in the queue as well.
func (q *Queue) DeadLetter(ctx context.Context, d queue.Delivery, reason string) error {
	if err := q.ChangeVisibility(ctx, deadLetterLease, d); err != nil {
		return fmt.Errorf("dead-letter message %s of %s: %w", d.ID, q.url, err)
	}
	ctx, done, err := q.bind(ctx)
	if err != nil {
		return fmt.Errorf("dead-letter message %s of %s: %w", d.ID, q.url, err)
	}
	defer done()
	dlq, err := q.deadLetterURL(ctx)
	if err != nil {
		return fmt.Errorf("dead-letter message %s of %s: %w", d.ID, q.url, err)
	}
	if dlq == "" {
		q.logger.Warn("queue has no dead-letter queue: message made visible again for redrive or an operator",
			"queue", q.url, "message_id", d.ID, "reason", reason)
		if err := q.ChangeVisibility(ctx, 0, d); err != nil {
			return fmt.Errorf("dead-letter message %s of %s: %w; making it visible again: %v", d.ID, q.url, ErrNoDeadLetterQueue, err)
		}
		return fmt.Errorf("dead-letter message %s of %s: %w (no RedrivePolicy, no dead-letter URL configured); it is visible again", d.ID, q.url, ErrNoDeadLetterQueue)
	}
	if len(reason) > maxReasonBytes {
		reason = strings.ToValidUTF8(reason[:maxReasonBytes], "") + "…"
	}
	if reason == "" {
		reason = "unspecified"
	}
	str := func(v string) types.MessageAttributeValue {
		return types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
	}
	attrs := map[string]types.MessageAttributeValue{
		AttrReason:      str(reason),
		AttrSourceQueue: str(q.url),
	}
	if d.ID != "" {
		attrs[AttrOriginalMessageID] = str(d.ID)
	}
	if d.ReceiveCount > 0 {
		attrs[AttrReceiveCount] = types.MessageAttributeValue{DataType: aws.String("Number"), StringValue: aws.String(strconv.Itoa(d.ReceiveCount))}
	}
	if _, err := q.client.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl:          aws.String(dlq),
		MessageBody:       aws.String(string(d.Body)),
		MessageAttributes: attrs,
	}); err != nil {
		return fmt.Errorf("dead-letter message %s of %s: send to %s: %w", d.ID, q.url, dlq, closedErr(ctx, err))
	}
	// Should this delete fail, the message comes back and is dead-lettered
	// again: a duplicate in the dead-letter queue, never a loss.
	if _, err := q.client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(q.url), ReceiptHandle: aws.String(d.Handle)}); err != nil {
		return fmt.Errorf("dead-letter message %s of %s: sent to %s, but deleting the original: %w", d.ID, q.url, dlq, closedErr(ctx, err))
	}
	return nil
}

// deadLetterURL is the dead-letter queue's URL ("" if there is none): the
// override, or the target of the queue's RedrivePolicy. A found URL is kept;
// a missing one is looked up again next time, as a policy may be added.
func (q *Queue) deadLetterURL(ctx context.Context) (string, error) {
	q.mu.Lock()
	dlq := q.dlq
	q.mu.Unlock()
	if dlq != "" {
		return dlq, nil
	}
	attrs, err := q.attributes(ctx, types.QueueAttributeNameRedrivePolicy)
	if err != nil {
		return "", err
	}
	raw := attrs[string(types.QueueAttributeNameRedrivePolicy)]
	if raw == "" {
		return "", nil
	}
	var policy struct {
		DeadLetterTargetArn string `json:"deadLetterTargetArn"`
	}
	if err := json.Unmarshal([]byte(raw), &policy); err != nil {
		return "", fmt.Errorf("RedrivePolicy %q: %w", raw, err)
	}
	// arn:<partition>:sqs:<region>:<account>:<name>; a dead-letter queue is
	// always in the queue's own region.
	parts := strings.Split(policy.DeadLetterTargetArn, ":")
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "sqs" || parts[5] == "" {
		return "", fmt.Errorf("RedrivePolicy names %q, not an SQS queue ARN", policy.DeadLetterTargetArn)
	}
	out, err := q.client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{
		QueueName:              aws.String(parts[5]),
		QueueOwnerAWSAccountId: aws.String(parts[4]),
	})
	if err != nil {
		return "", fmt.Errorf("URL of the dead-letter queue %s: %w", policy.DeadLetterTargetArn, err)
	}
	dlq = aws.ToString(out.QueueUrl)
	q.mu.Lock()
	q.dlq = dlq
	q.mu.Unlock()
	return dlq, nil
}

func (q *Queue) attributes(ctx context.Context, names ...types.QueueAttributeName) (map[string]string, error) {
	out, err := q.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(q.url), AttributeNames: names})
	if err != nil {
		return nil, fmt.Errorf("attributes of %s: %w", q.url, err)
	}
	return out.Attributes, nil
}
