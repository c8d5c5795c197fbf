// Command loader is the only writer of the parking database: it consumes the
// queue, reads each snapshot from the store, and applies it idempotently.
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
		"serve":         {"consume the queue and apply snapshots until stopped (-drain: until empty)", runServe},
		"local":         {"run the whole pipeline in one process: schedule, extractor, loader", runLocal},
		"stats":         {"print lots, availability and ledger statistics", runStats},
		"backfill":      {"apply stored snapshots of a time range straight from the store (no loader running)", runBackfill},
		"import-legacy": {"import the original Python project's databases", runImportLegacy},
		"export":        {"write the latest availability (json), the lots map (geojson) or a CSV", runExport},
		"backup":        {"write a consistent copy of the database (VACUUM INTO) while no loader runs", runBackup},
		"healthcheck":   {"exit 0 if the running loader answers /healthz, else 1 (for container health checks)", runHealthcheck},
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
		fmt.Fprintln(stdout, "loader", version)
		return cli.ExitOK
	}
	cmd, ok := commands()[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "loader: unknown command %q\n", args[0])
		usage(stderr)
		return cli.ExitError
	}
	return cmd.run(ctx, args[1:], stdout, stderr, env)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: loader <command> [flags]\n\ncommands:")
	cmds := commands()
	names := make([]string, 0, len(cmds))
	for name := range cmds {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-14s %s\n", name, cmds[name].summary)
	}
	fmt.Fprintln(w, "\nRun 'loader <command> -h' for its flags. Exit codes: 0 ok, 1 error.")
}

func usageError(stderr io.Writer, err error) int {
	fmt.Fprintln(stderr, "loader:", err)
	return cli.ExitError
}
