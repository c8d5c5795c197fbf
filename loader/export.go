package main

import (
	"context"
	"errors"
	"io"

	"github.com/parking-newtaipei/parking-newtaipei/shared/cli"
)

// STUB: to be replaced by its implementation.
func runExport(ctx context.Context, args []string, stdout, stderr io.Writer, env cli.Env) int {
	return usageError(stderr, errors.New("not implemented yet"))
}
