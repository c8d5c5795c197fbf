// Package clitest holds what tests know of the two binaries' command lines:
// what every subcommand owes its users whatever it does (help on request, a
// clear refusal of a flag it does not have), and the commands, flags and
// environment variables read from the built binaries' own -h output, which
// the docs and the stack are checked against.
package clitest

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/parking-newtaipei/parking-newtaipei/shared/cli"
)

// Help runs every command of p with -h, -help and --help, in an environment
// whose settings are all invalid (help must not depend on them), and checks
// that each prints its usage and flags on stdout, nothing on stderr, and
// exits 0.
func Help(t *testing.T, p cli.Program) {
	t.Helper()
	bad := func(k string) string { return "not-a-valid-value" }
	for name := range p.Commands {
		for _, h := range []string{"-h", "-help", "--help"} {
			var stdout, stderr bytes.Buffer
			code := p.Run(context.Background(), []string{name, h}, &stdout, &stderr, bad)
			usage := "usage: " + p.Name + " " + name + " [flags]"
			if code != cli.ExitOK || stderr.Len() != 0 || !strings.HasPrefix(stdout.String(), usage) ||
				!strings.Contains(stdout.String(), "\nflags:\n  -") {
				t.Errorf("%s %s %s: exit %d, want 0 with %q and the flags on stdout\nstdout:\n%s\nstderr:\n%s",
					p.Name, name, h, code, usage, stdout.String(), stderr.String())
			}
		}
	}
}

// UnknownFlag runs every command of p with a flag none has and checks that
// it exits 1 with one message on stderr naming the flag, and prints nothing
// on stdout (where results go).
func UnknownFlag(t *testing.T, p cli.Program) {
	t.Helper()
	for name := range p.Commands {
		var stdout, stderr bytes.Buffer
		code := p.Run(context.Background(), []string{name, "-no-such-flag"}, &stdout, &stderr, func(string) string { return "" })
		if code != cli.ExitError || stdout.Len() != 0 || !strings.Contains(stderr.String(), "-no-such-flag") ||
			!strings.HasPrefix(stderr.String(), p.Name+" "+name+": ") {
			t.Errorf("%s %s -no-such-flag: exit %d, want 1 with a message naming the flag on stderr\nstdout:\n%s\nstderr:\n%s",
				p.Name, name, code, stdout.String(), stderr.String())
		}
	}
}
