package s3store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
)

// This file makes a bucket and prefix a publication destination
// (s3://bucket/prefix): objects overwritten in place with their
// Content-Type and Cache-Control. The handling is as strict as for
// snapshots: every body goes up with its SHA-256 (S3 refuses damaged bytes),
// and the loader needs s3:PutObject under the prefix and nothing else: no
// read, no list, no delete.

var _ store.Destination = (*Store)(nil)

const (
	// multipartAbove: larger bodies go up in parts. One PutObject takes at
	// most 5 GiB, and a published database copy grows past that with years of
	// history; parts also make a failed transfer cheaper to redo.
	multipartAbove = 512 << 20
	// partSize is the size of each part but the last (S3: 5 MiB to 5 GiB,
	// at most 10,000 parts, so up to 640 GiB).
	partSize = 64 << 20
)

// PutObject replaces the object at key (under the prefix) with body. A
// reader sees the old object or the new one: S3 makes an object visible only
// once PutObject (or CompleteMultipartUpload) has all of it. With
// opts.IfAbsent the write carries If-None-Match: *, and an existing object
// is store.ErrExists (not read: the loader may not read the destination).
func (s *Store) PutObject(ctx context.Context, key string, body io.ReadSeeker, opts store.ObjectOptions) error {
	return s.putObject(ctx, key, body, opts, multipartAbove, partSize)
}

func (s *Store) putObject(ctx context.Context, key string, body io.ReadSeeker, opts store.ObjectOptions, above, part int64) error {
	name := "s3://" + s.bucket + "/" + s.root() + key
	if err := snapshot.CheckObject(key, opts); err != nil {
		return fmt.Errorf("publish %s: %w", name, err)
	}
	size, sum, err := hashBody(body)
	if err != nil {
		return fmt.Errorf("publish %s: %w", name, err)
	}
	if size > above {
		err = s.putMultipart(ctx, s.root()+key, body, size, sum, opts, part)
	} else {
		_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket:         aws.String(s.bucket),
			Key:            aws.String(s.root() + key),
			Body:           body,
			ContentLength:  aws.Int64(size),
			ContentType:    aws.String(opts.ContentType),
			CacheControl:   nonEmpty(opts.CacheControl),
			ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(sum)),
			IfNoneMatch:    ifAbsent(opts),
			Metadata:       map[string]string{MetaContentSHA256: hex.EncodeToString(sum)},
		})
	}
	if err != nil {
		if opts.IfAbsent && isConditionFailed(err) {
			return fmt.Errorf("publish %s: %w", name, store.ErrExists)
		}
		return fmt.Errorf("publish %s: %w", name, err)
	}
	return nil
}

// hashBody reads body once for its size and SHA-256 and rewinds it.
func hashBody(body io.ReadSeeker) (int64, []byte, error) {
	if _, err := body.Seek(0, io.SeekStart); err != nil {
		return 0, nil, fmt.Errorf("rewind body: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(h, body)
	if err != nil {
		return 0, nil, fmt.Errorf("read body: %w", err)
	}
	if _, err := body.Seek(0, io.SeekStart); err != nil {
		return 0, nil, fmt.Errorf("rewind body: %w", err)
	}
	return n, h.Sum(nil), nil
}

// putMultipart uploads body in parts of partSize, each with its SHA-256,
// and completes the upload (conditionally with IfAbsent). On failure the
// upload is aborted, best effort: without s3:AbortMultipartUpload the parts
// stay until the bucket's lifecycle rule for incomplete uploads removes them.
func (s *Store) putMultipart(ctx context.Context, key string, body io.ReadSeeker, size int64, sum []byte, opts store.ObjectOptions, partSize int64) (err error) {
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:            aws.String(s.bucket),
		Key:               aws.String(key),
		ContentType:       aws.String(opts.ContentType),
		CacheControl:      nonEmpty(opts.CacheControl),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
		Metadata:          map[string]string{MetaContentSHA256: hex.EncodeToString(sum)},
	})
	if err != nil {
		return fmt.Errorf("create multipart upload: %w", err)
	}
	defer func() {
		if err == nil {
			return
		}
		// The abort must run even when ctx has ended (a stop's deadline).
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
		defer cancel()
		if _, aerr := s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket: aws.String(s.bucket), Key: aws.String(key), UploadId: created.UploadId,
		}); aerr != nil {
			err = errors.Join(err, fmt.Errorf("abort multipart upload %s: %w", aws.ToString(created.UploadId), aerr))
		}
	}()
	buf := make([]byte, min(partSize, size))
	var parts []types.CompletedPart
	for off, n := int64(0), int32(1); off < size; off, n = off+partSize, n+1 {
		chunk := buf[:min(partSize, size-off)]
		if _, err := io.ReadFull(body, chunk); err != nil {
			return fmt.Errorf("read part %d: %w", n, err)
		}
		ps := sha256.Sum256(chunk)
		psum := base64.StdEncoding.EncodeToString(ps[:])
		out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
			Bucket:         aws.String(s.bucket),
			Key:            aws.String(key),
			UploadId:       created.UploadId,
			PartNumber:     aws.Int32(n),
			Body:           bytes.NewReader(chunk),
			ContentLength:  aws.Int64(int64(len(chunk))),
			ChecksumSHA256: aws.String(psum),
		})
		if err != nil {
			return fmt.Errorf("upload part %d: %w", n, err)
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(n), ChecksumSHA256: aws.String(psum)})
	}
	if _, err := s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(s.bucket),
		Key:             aws.String(key),
		UploadId:        created.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		IfNoneMatch:     ifAbsent(opts),
	}); err != nil {
		return fmt.Errorf("complete multipart upload: %w", err)
	}
	return nil
}

// abortTimeout bounds the clean-up of a failed multipart upload.
const abortTimeout = 10 * time.Second

func ifAbsent(opts store.ObjectOptions) *string {
	if opts.IfAbsent {
		return aws.String("*")
	}
	return nil
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}
