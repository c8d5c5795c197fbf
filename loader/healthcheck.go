package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/cli"
	"github.com/parking-newtaipei/parking-newtaipei/shared/web"
)

// runHealthcheck asks the running loader's /healthz and exits 0 on 200, 1
// otherwise. It is the ECS container health check: the image has no shell
// and no curl, so the binary checks itself.
func runHealthcheck(ctx context.Context, f *cli.Flags, args []string) int {
	var (
		cfg     Config
		timeout time.Duration
	)
	cfg.bindHTTPAddr(f, "", "the running loader's HTTP address")
	f.Duration(&timeout, "timeout", "", 3*time.Second, "give up after this long (ECS's own timeout is 5s by default)")
	// No database, no logger: the answer is the exit code and one line.
	if _, err := f.Start(args, nil); err != nil {
		return f.UsageError(err)
	}
	if cfg.HTTPAddr == "" {
		return f.UsageError(errors.New("-http-addr (PARKING_HTTP_ADDR) is empty: the loader serves no /healthz"))
	}
	if err := web.Check(ctx, cfg.HTTPAddr, timeout); err != nil {
		fmt.Fprintln(f.Stderr, "loader healthcheck:", err)
		return cli.ExitError
	}
	return cli.ExitOK
}
