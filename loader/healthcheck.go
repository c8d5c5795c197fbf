package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/cli"
	"github.com/parking-newtaipei/parking-newtaipei/shared/web"
)

// runHealthcheck asks the running loader's /healthz and exits 0 on 200, 1
// otherwise. It is the ECS container health check: the image has no shell
// and no curl, so the binary checks itself.
func runHealthcheck(ctx context.Context, args []string, stdout, stderr io.Writer, env cli.Env) int {
	var (
		addr    string
		timeout time.Duration
	)
	f := cli.NewFlags("loader healthcheck", env, stderr)
	f.String(&addr, "http-addr", "PARKING_HTTP_ADDR", "", "the running loader's HTTP address")
	f.Duration(&timeout, "timeout", "", 3*time.Second, "give up after this long (ECS's own timeout is 5s by default)")
	if err := f.Parse(args); err != nil {
		return usageError(stderr, err)
	}
	if addr == "" {
		return usageError(stderr, errors.New("healthcheck: -http-addr (PARKING_HTTP_ADDR) is empty: the loader serves no /healthz"))
	}
	if err := web.Check(ctx, addr, timeout); err != nil {
		fmt.Fprintln(stderr, "loader healthcheck:", err)
		return cli.ExitError
	}
	return cli.ExitOK
}
