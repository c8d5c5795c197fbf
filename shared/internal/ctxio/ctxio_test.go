package ctxio_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/parking-newtaipei/parking-newtaipei/shared/internal/ctxio"
)

// A copy reads while the context is live and stops, with its error, once
// it is done, whatever is left to read.
func TestReaderStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	src := ctxio.Reader(ctx, bytes.NewReader(make([]byte, 1<<20)))
	var dst bytes.Buffer
	if _, err := io.CopyN(&dst, src, 1000); err != nil {
		t.Fatalf("reading while live: %v", err)
	}
	cancel()
	n, err := io.Copy(&dst, src)
	if !errors.Is(err, context.Canceled) || n != 0 {
		t.Fatalf("after cancel: copied %d more bytes, err %v; want none and context.Canceled", n, err)
	}
}
