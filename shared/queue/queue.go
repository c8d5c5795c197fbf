// Package queue holds the contract of the queue between the extractor and the
// loader. Backends (an embedded SQLite queue, SQS) live in their own packages;
// package queuetest is the suite every backend must pass.
//
// The contract is SQS's standard queue, limits included, so that what works
// on the embedded queue works on AWS: at-least-once delivery in no
// guaranteed order, a visibility timeout per receive, a new receipt handle
// per receive, and a dead-letter queue.
package queue

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// SQS's limits, which every backend keeps.
const (
	// MaxBatch is the most messages one Receive returns.
	MaxBatch = 10
	// MaxWait is the longest a Receive waits for a first message.
	MaxWait = 20 * time.Second
	// MaxVisibility is the longest a received message can stay invisible.
	MaxVisibility = 12 * time.Hour
	// MaxBodyBytes caps a message body: SQS's limit for queues created before
	// 2025 (newer ones take 1 MiB), and so also what one SQS batch call may
	// carry in all. The v1 message is under 4 KiB.
	MaxBodyBytes = 256 << 10
)

var (
	// ErrStaleHandle: a receipt handle that is no longer the message's
	// current one (it was received again since, deleted or dead-lettered)
	// or that no receive ever returned. Its holder lost the message.
	ErrStaleHandle = errors.New("stale receipt handle")
	// ErrClosed: the queue was closed.
	ErrClosed = errors.New("queue closed")
	// ErrCorrupt: the queue's own storage is damaged (a local queue file that
	// is not a database or has damaged pages). Permanent: no retry helps, so
	// a consumer must stop with the error, which names the file, rather than
	// retry. Recovery is in docs/OPERATIONS.md.
	ErrCorrupt = errors.New("corrupt queue")
	// ErrUnsendable: a body SQS would refuse (empty, over MaxBodyBytes, not
	// UTF-8, or with characters outside SQS's set). Send refuses the whole
	// call before sending anything.
	ErrUnsendable = errors.New("message body cannot be sent")
)

// Delivery is one received message. Until it is deleted it comes back after
// its visibility timeout: delivery is at least once.
type Delivery struct {
	ID     string
	Handle string // the receipt handle that Delete and ChangeVisibility need
	Body   []byte
	// ReceiveCount counts this delivery too: 1 on the first receive.
	ReceiveCount int
	SentAt       time.Time
}

// Queue is what both binaries need of a queue.
type Queue interface {
	// Send enqueues each body (batched as the backend allows: ten per SQS
	// call). A body CheckBodies refuses fails the whole call with
	// ErrUnsendable before anything is sent. Otherwise nil means every body
	// was enqueued; after an error some may have been (SQS sends in batches).
	Send(ctx context.Context, bodies ...[]byte) error
	// Receive waits up to wait for at least one message and returns at most
	// max, each invisible to other receivers for visibility; it returns an
	// empty slice when none came. max must be 1 to MaxBatch, wait 0 to
	// MaxWait and visibility 0 to MaxVisibility (CheckReceive). Where the
	// queue has a redrive limit (SQS's maxReceiveCount, sqlitequeue's
	// MaxReceive), a message received that often without a delete is moved
	// to the dead-letter queue by the next receive instead of being delivered.
	Receive(ctx context.Context, max int, wait, visibility time.Duration) ([]Delivery, error)
	// Delete removes delivered messages for good (call only after their
	// effect is committed). A handle that is no longer current deletes
	// nothing and is not an error: the current holder owns the message.
	Delete(ctx context.Context, ds ...Delivery) error
	// ChangeVisibility makes the messages visible again after d (0: at
	// once); used both to extend in-flight work and to retry later with
	// backoff. Each message is changed on its own: the stale handles among
	// them are reported by an error wrapping ErrStaleHandle, and the others
	// are changed all the same.
	ChangeVisibility(ctx context.Context, d time.Duration, ds ...Delivery) error
	// DeadLetter moves a message that can never succeed to the dead-letter
	// queue with its reason. With a stale handle it moves nothing and
	// returns an error wrapping ErrStaleHandle.
	DeadLetter(ctx context.Context, d Delivery, reason string) error
	// Close releases the backend's resources; a Receive waiting at that
	// moment returns, and later calls fail, with ErrClosed. Closing twice is
	// not an error.
	Close() error
	// String is the queue's URL, for logs.
	String() string
	// Polling says how a consumer may wait on this backend: whether a long
	// poll can be interrupted safely, and how long a receive must wait for
	// an empty answer to mean that no message is visible.
	Polling() Polling
}

// Polling is what a consumer needs to know to stop, or to drain, promptly
// without stranding a message.
type Polling struct {
	// Interruptible: cancelling the context of a waiting Receive takes no
	// message. The Receive returns the context's error and every message it
	// had not returned stays as it was (visible, with its receive count);
	// a Receive whose context is already done takes nothing. When false
	// (SQS: a cancelled ReceiveMessage may already have taken messages,
	// which then stay hidden for their whole visibility timeout,
	// aws-sdk-go-v2 #2068), a consumer stopping gracefully must let the
	// long poll return and hand back what it brought.
	Interruptible bool
	// EmptyWait is the shortest wait with which a Receive that returns no
	// message means that none was visible: 0 where the backend can tell at
	// once, more where a receive without a wait looks at only part of the
	// queue (SQS's short poll samples some of its servers and may answer
	// empty while messages wait). A drain stops after one such receive.
	EmptyWait time.Duration
}

// CheckReceive refuses Receive arguments outside SQS's limits, rather than
// quietly clamp them into something the caller did not ask for.
func CheckReceive(max int, wait, visibility time.Duration) error {
	if max < 1 || max > MaxBatch {
		return fmt.Errorf("receive at most %d messages: want 1 to %d", max, MaxBatch)
	}
	if wait < 0 || wait > MaxWait {
		return fmt.Errorf("wait %s: want 0 to %s", wait, MaxWait)
	}
	return CheckVisibility(visibility)
}

// CheckVisibility refuses a visibility timeout outside 0 to MaxVisibility.
func CheckVisibility(d time.Duration) error {
	if d < 0 || d > MaxVisibility {
		return fmt.Errorf("visibility timeout %s: want 0 to %s", d, MaxVisibility)
	}
	return nil
}

// CheckBodies refuses, with ErrUnsendable naming the body's index, a body
// SQS would refuse: empty, over MaxBodyBytes, not UTF-8, or holding a
// character outside #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD |
// #x10000-#x10FFFF.
func CheckBodies(bodies [][]byte) error {
	for i, b := range bodies {
		if err := checkBody(b); err != nil {
			return fmt.Errorf("message %d of %d: %w: %v", i, len(bodies), ErrUnsendable, err)
		}
	}
	return nil
}

func checkBody(b []byte) error {
	if len(b) == 0 {
		return errors.New("empty body")
	}
	if len(b) > MaxBodyBytes {
		return fmt.Errorf("%d bytes, more than %d", len(b), MaxBodyBytes)
	}
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return fmt.Errorf("not UTF-8 at byte %d", i)
		}
		if !(r == '\t' || r == '\n' || r == '\r' || (r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || r >= 0x10000) {
			return fmt.Errorf("character %U at byte %d is not allowed in an SQS message", r, i)
		}
		i += n
	}
	return nil
}
