package awstest_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/parking-newtaipei/parking-newtaipei/internal/awstest"
)

func TestS3BucketIsFresh(t *testing.T) {
	client, bucket := awstest.S3(t)
	out, err := client.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Contents) != 0 {
		t.Fatalf("new bucket %s holds %d objects", bucket, len(out.Contents))
	}
}

func TestSQSQueueHasRedrivePolicy(t *testing.T) {
	client, url, dlq := awstest.SQS(t)
	out, err := client.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameRedrivePolicy},
	})
	if err != nil {
		t.Fatal(err)
	}
	policy := out.Attributes[string(sqstypes.QueueAttributeNameRedrivePolicy)]
	name := dlq[strings.LastIndex(dlq, "/")+1:]
	if !strings.Contains(policy, ":"+name) {
		t.Fatalf("redrive policy %q does not name the dead-letter queue %s", policy, dlq)
	}
}

func TestNameFitsBuckets(t *testing.T) {
	n := awstest.Name(t)
	if len(n) > 63 || strings.ToLower(n) != n {
		t.Fatalf("name %q is not a valid bucket name", n)
	}
}
