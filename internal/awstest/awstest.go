// Package awstest points tests at the S3 and SQS test servers that
// scripts/test starts (versitygw and fauxqs), so backends are tested against
// real protocol implementations rather than mocks of the SDK.
//
// Without the servers' environment a test is skipped with a message naming
// scripts/test; under CI (CI=true or CI=1, internal/ci) it fails instead, because integration tests
// that quietly skip in CI prove nothing.
package awstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/parking-newtaipei/parking-newtaipei/internal/ci"
)

// The environment scripts/test exports for the tests.
const (
	EnvS3Endpoint  = "PARKING_TEST_S3_ENDPOINT"   // http://127.0.0.1:<port> of versitygw
	EnvS3AccessKey = "PARKING_TEST_S3_ACCESS_KEY" // its access key
	EnvS3SecretKey = "PARKING_TEST_S3_SECRET_KEY" // its secret key
	EnvSQSEndpoint = "PARKING_TEST_SQS_ENDPOINT"  // http://127.0.0.1:<port> of fauxqs
)

// Region is the region every test client and subprocess uses.
const Region = "us-east-1"

// sqsAccessKey and sqsSecretKey: fauxqs accepts any credentials, but the SDK
// still signs, so it needs some.
const (
	sqsAccessKey = "test"
	sqsSecretKey = "test"
)

// S3Server is where the S3 test server listens and how to sign for it.
type S3Server struct {
	Endpoint  string
	AccessKey string
	SecretKey string
}

// S3Endpoint returns the S3 test server, or skips (fails under CI) the test
// when scripts/test did not start one.
func S3Endpoint(t testing.TB) S3Server {
	t.Helper()
	s := S3Server{
		Endpoint:  os.Getenv(EnvS3Endpoint),
		AccessKey: os.Getenv(EnvS3AccessKey),
		SecretKey: os.Getenv(EnvS3SecretKey),
	}
	if s.Endpoint == "" || s.AccessKey == "" || s.SecretKey == "" {
		missing(t, EnvS3Endpoint+", "+EnvS3AccessKey+" and "+EnvS3SecretKey)
	}
	return s
}

// SQSEndpoint returns the SQS test server's URL, or skips (fails under CI)
// the test when scripts/test did not start one.
func SQSEndpoint(t testing.TB) string {
	t.Helper()
	e := os.Getenv(EnvSQSEndpoint)
	if e == "" {
		missing(t, EnvSQSEndpoint)
	}
	return e
}

func missing(t testing.TB, what string) {
	t.Helper()
	ci.SkipOrFail(t, "%s not set: run the tests through scripts/test, which starts the S3 and SQS test servers", what)
}

// Config is an AWS configuration for the test servers: static credentials,
// the test region, and nothing read from the user's ~/.aws.
func Config(t testing.TB, accessKey, secretKey string) aws.Config {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithRegion(Region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(accessKey, secretKey, "")),
		config.WithSharedConfigFiles(nil),
		config.WithSharedCredentialsFiles(nil),
	)
	if err != nil {
		t.Fatalf("load AWS config: %v", err)
	}
	return cfg
}

// S3Client returns a client of the S3 test server (path-style addressing:
// a loopback address has no bucket subdomains).
func S3Client(t testing.TB) *s3.Client {
	t.Helper()
	srv := S3Endpoint(t)
	return s3.NewFromConfig(Config(t, srv.AccessKey, srv.SecretKey), func(o *s3.Options) {
		o.BaseEndpoint = aws.String(srv.Endpoint)
		o.UsePathStyle = true
	})
}

// S3 creates a fresh bucket on the S3 test server, removed (with its objects)
// when the test ends, and returns a client and the bucket's name.
func S3(t testing.TB) (*s3.Client, string) {
	t.Helper()
	client := S3Client(t)
	bucket := Name(t)
	ctx := context.Background()
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create bucket %s: %v", bucket, err)
	}
	t.Cleanup(func() { emptyAndDelete(t, client, bucket) })
	return client, bucket
}

func emptyAndDelete(t testing.TB, client *s3.Client, bucket string) {
	ctx := context.Background()
	p := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Logf("cleanup: list bucket %s: %v", bucket, err)
			return
		}
		for _, o := range page.Contents {
			if _, err := client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: o.Key}); err != nil {
				t.Logf("cleanup: delete s3://%s/%s: %v", bucket, aws.ToString(o.Key), err)
			}
		}
	}
	if _, err := client.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Logf("cleanup: delete bucket %s: %v", bucket, err)
	}
}

// SQSClient returns a client of the SQS test server.
func SQSClient(t testing.TB) *sqs.Client {
	t.Helper()
	endpoint := SQSEndpoint(t)
	return sqs.NewFromConfig(Config(t, sqsAccessKey, sqsSecretKey), func(o *sqs.Options) {
		o.BaseEndpoint = aws.String(endpoint)
	})
}

// QueueOptions shape the queue NewQueue creates.
type QueueOptions struct {
	// MaxReceiveCount is the redrive policy's: after this many receives SQS
	// moves the message to the dead-letter queue. 0 means 3.
	MaxReceiveCount int
	// NoDeadLetter creates the queue without a dead-letter queue.
	NoDeadLetter bool
	// VisibilityTimeout is the queue's default; 0 means SQS's 30 s.
	VisibilityTimeout time.Duration
	// MaxMessageSize is the queue's MaximumMessageSize in bytes (SQS allows
	// 1024 and up); 0 keeps the server's default.
	MaxMessageSize int
}

// Queue is a fresh queue on the SQS test server.
type Queue struct {
	Client *sqs.Client
	URL    string
	// DLQURL is its dead-letter queue ("" with NoDeadLetter).
	DLQURL string
}

// NewQueue creates a fresh queue (and dead-letter queue) on the SQS test
// server, deleted when the test ends.
func NewQueue(t testing.TB, opts QueueOptions) Queue {
	t.Helper()
	client := SQSClient(t)
	ctx := context.Background()
	name := Name(t)
	q := Queue{Client: client}
	attrs := map[string]string{}
	if opts.VisibilityTimeout > 0 {
		attrs[string(sqstypes.QueueAttributeNameVisibilityTimeout)] = strconv.Itoa(int(opts.VisibilityTimeout / time.Second))
	}
	if opts.MaxMessageSize > 0 {
		attrs[string(sqstypes.QueueAttributeNameMaximumMessageSize)] = strconv.Itoa(opts.MaxMessageSize)
	}
	if !opts.NoDeadLetter {
		q.DLQURL = createQueue(t, client, name+"-dlq", nil)
		out, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
			QueueUrl:       aws.String(q.DLQURL),
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
		})
		if err != nil {
			t.Fatalf("get the ARN of %s: %v", q.DLQURL, err)
		}
		n := opts.MaxReceiveCount
		if n == 0 {
			n = 3
		}
		policy, err := json.Marshal(map[string]string{
			"deadLetterTargetArn": out.Attributes[string(sqstypes.QueueAttributeNameQueueArn)],
			"maxReceiveCount":     strconv.Itoa(n),
		})
		if err != nil {
			t.Fatal(err)
		}
		attrs[string(sqstypes.QueueAttributeNameRedrivePolicy)] = string(policy)
	}
	q.URL = createQueue(t, client, name, attrs)
	return q
}

// SQS creates a fresh queue with a dead-letter queue (redrive after 3
// receives) and returns a client and both queues' URLs.
func SQS(t testing.TB) (client *sqs.Client, queueURL, dlqURL string) {
	t.Helper()
	q := NewQueue(t, QueueOptions{})
	return q.Client, q.URL, q.DLQURL
}

func createQueue(t testing.TB, client *sqs.Client, name string, attrs map[string]string) string {
	t.Helper()
	out, err := client.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		t.Fatalf("create queue %s: %v", name, err)
	}
	url := aws.ToString(out.QueueUrl)
	t.Cleanup(func() {
		if _, err := client.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: aws.String(url)}); err != nil {
			t.Logf("cleanup: delete queue %s: %v", url, err)
		}
	})
	return url
}

// Name is a fresh name for a bucket or queue: lower case, the test's name
// and a random suffix, within S3's 63 characters.
func Name(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	for _, r := range strings.ToLower(t.Name()) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	base := strings.Trim(b.String(), "-")
	if len(base) > 40 {
		base = strings.Trim(base[:40], "-")
	}
	suffix := make([]byte, 5)
	if _, err := rand.Read(suffix); err != nil {
		t.Fatal(err)
	}
	return "t-" + base + "-" + hex.EncodeToString(suffix)
}

// Env is the environment for a binary started as a subprocess that should
// use the test servers through the standard AWS variables (the SDK's
// service-specific endpoint variables, static keys) and path-style S3. Append
// it to os.Environ(); later entries win.
func Env(t testing.TB) []string {
	t.Helper()
	s3srv := S3Endpoint(t)
	sqsEndpoint := SQSEndpoint(t)
	return []string{
		"AWS_ENDPOINT_URL_S3=" + s3srv.Endpoint,
		"AWS_ENDPOINT_URL_SQS=" + sqsEndpoint,
		// One key pair signs for both servers: fauxqs accepts any.
		"AWS_ACCESS_KEY_ID=" + s3srv.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s3srv.SecretKey,
		"AWS_REGION=" + Region,
		"PARKING_S3_PATH_STYLE=true",
		// Keep the SDK away from the developer's ~/.aws and from instance metadata.
		"AWS_CONFIG_FILE=" + os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// Setenv sets Env's variables in this process for the rest of the test, for
// code that loads the default AWS configuration itself.
func Setenv(t *testing.T) {
	t.Helper()
	for _, kv := range Env(t) {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	// A profile or session token from the environment would override the keys.
	for _, k := range []string{"AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
}
