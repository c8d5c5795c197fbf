// Package queue holds the contract of the queue between the extractor and the
// loader. Backends (an embedded SQLite queue, SQS) live in their own packages.
package queue

import (
	"context"
	"time"
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
	// Send enqueues each body (batched as the backend allows: 10 per SQS call).
	Send(ctx context.Context, bodies ...[]byte) error
	// Receive waits up to wait for at least one message and returns at most
	// max, each invisible to other receivers for visibility.
	Receive(ctx context.Context, max int, wait, visibility time.Duration) ([]Delivery, error)
	// Delete removes delivered messages for good (call only after their effect is committed).
	Delete(ctx context.Context, ds ...Delivery) error
	// ChangeVisibility makes the messages visible again after d (0: at once);
	// used both to extend in-flight work and to retry later with backoff.
	ChangeVisibility(ctx context.Context, d time.Duration, ds ...Delivery) error
	// DeadLetter moves a message that can never succeed out of the way, with its reason.
	DeadLetter(ctx context.Context, d Delivery, reason string) error
	// Close releases the backend's resources.
	Close() error
	// String is the queue's URL, for logs.
	String() string
}
