package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
)

// Command is one subcommand of a binary. Run binds its flags on f, starts
// with f.Start(args, &cfg) and returns an exit code.
type Command struct {
	Summary string
	// Args names the positional arguments in the usage line ("DIR").
	Args string
	Run  func(ctx context.Context, f *Flags, args []string) int
}

// Program is a binary made of subcommands.
type Program struct {
	Name     string
	Version  string
	Commands map[string]Command
	// Footer ends the usage text (the exit codes, for example).
	Footer string
}

// Main runs the program as the process: with its arguments, environment and
// output streams, until SIGINT or SIGTERM cancels the context, exiting with
// the command's code.
func (p Program) Main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := p.Run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// Run runs the subcommand named by args[0], or prints the usage or version.
func (p Program) Run(ctx context.Context, args []string, stdout, stderr io.Writer, env Env) int {
	if len(args) == 0 {
		p.usage(stderr)
		return ExitError
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		p.usage(stdout)
		return ExitOK
	case "-version", "--version", "version":
		fmt.Fprintln(stdout, p.Name, p.Version)
		return ExitOK
	}
	cmd, ok := p.Commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "%s: unknown command %q\n", p.Name, args[0])
		p.usage(stderr)
		return ExitError
	}
	f := NewFlags(p.Name+" "+args[0], env, stdout, stderr)
	f.summary, f.args = cmd.Summary, cmd.Args
	return cmd.Run(ctx, f, args[1:])
}

func (p Program) usage(w io.Writer) {
	names := make([]string, 0, len(p.Commands))
	width := 0
	for name := range p.Commands {
		names = append(names, name)
		width = max(width, len(name))
	}
	slices.Sort(names)
	var b strings.Builder
	fmt.Fprintf(&b, "usage: %s <command> [flags]\n\ncommands:\n", p.Name)
	for _, name := range names {
		fmt.Fprintf(&b, "  %-*s  %s\n", width, name, p.Commands[name].Summary)
	}
	fmt.Fprintf(&b, "\nRun '%s <command> -h' for its flags. %s\n", p.Name, p.Footer)
	io.WriteString(w, b.String())
}
