// Command extractor fetches one of New Taipei City's parking feeds, stores the
// raw snapshot, and enqueues a message for the loader. It never touches the database.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/parking-newtaipei/parking-newtaipei/shared/cli"
)

// version is stamped at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// command is one subcommand: it parses its own flags and returns an exit code.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer, env cli.Env) int
}

func commands() map[string]command {
	return map[string]command{
		"fetch": {"fetch one dataset, store the snapshot, enqueue it", runFetch},
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, env cli.Env) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return cli.ExitError
		}
		return cli.ExitOK
	}
	if args[0] == "-version" || args[0] == "--version" || args[0] == "version" {
		fmt.Fprintln(stdout, "extractor", version)
		return cli.ExitOK
	}
	cmd, ok := commands()[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "extractor: unknown command %q\n", args[0])
		usage(stderr)
		return cli.ExitError
	}
	return cmd.run(ctx, args[1:], stdout, stderr, env)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: extractor <command> [flags]\n\ncommands:")
	cmds := commands()
	names := make([]string, 0, len(cmds))
	for name := range cmds {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-17s %s\n", name, cmds[name].summary)
	}
	fmt.Fprintln(w, "\nRun 'extractor <command> -h' for its flags. Exit codes: 0 ok, 1 error, 2 skipped (lots unchanged).")
}
