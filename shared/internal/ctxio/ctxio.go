// Package ctxio holds I/O that ends with its context: a copy of gigabytes
// (a restore on EFS, a published database copy) must stop when the command
// or the stop's deadline says so, and io.Copy takes no context.
package ctxio

import (
	"context"
	"io"
)

// Reader returns r reading only while ctx is live: once ctx is done, Read
// returns ctx's error instead of reading on.
func Reader(ctx context.Context, r io.Reader) io.Reader { return reader{ctx, r} }

type reader struct {
	ctx context.Context
	r   io.Reader
}

func (c reader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
