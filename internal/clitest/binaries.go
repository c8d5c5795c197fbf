package clitest

// This file reads the command lines of the built extractor and loader from
// their own -h output: the commands, each command's flags, and the
// environment variable of each flag. The docs and the stack are checked
// against this, so they cannot drift from the code.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// Programs are the two main packages, relative to the module root.
var Programs = []string{"extractor", "loader"}

// Flag is one flag of a command.
type Flag struct {
	Name string // without the dash
	Env  string // "" when the flag has no environment variable
	Bool bool   // takes no value
	// Default is the default -h prints ("" for a zero value, which -h leaves out).
	Default string
}

// Command is one subcommand and its flags.
type Command struct {
	Name  string
	Flags map[string]Flag
}

// Program is a built binary and its commands.
type Program struct {
	Name     string
	Path     string
	Commands map[string]*Command
}

// Env returns the environment variables of every flag of every command.
func (p *Program) Env() map[string]bool {
	env := map[string]bool{}
	for _, c := range p.Commands {
		for _, f := range c.Flags {
			if f.Env != "" {
				env[f.Env] = true
			}
		}
	}
	return env
}

// Build builds the programs of the module at root into a temporary
// directory and reads their command lines.
func Build(t testing.TB, root string) map[string]*Program {
	t.Helper()
	dir := t.TempDir()
	args := []string{"build", "-o", dir + string(os.PathSeparator)}
	for _, p := range Programs {
		args = append(args, "./"+p)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	progs := map[string]*Program{}
	for _, name := range Programs {
		p, err := Read(name, filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		progs[name] = p
	}
	return progs
}

// help runs the binary with args and returns everything it printed; the
// exit code is Help's business.
func help(path string, args ...string) string {
	cmd := exec.Command(path, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")} // the defaults, not this machine's settings
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	_ = cmd.Run()
	return out.String()
}

var (
	commandLine = regexp.MustCompile(`^  ([a-z][a-z0-9-]*)\s{2,}\S`)
	flagLine    = regexp.MustCompile(`^  -([A-Za-z0-9][A-Za-z0-9_.-]*)(?: (\S+))?$`)
	envInUsage  = regexp.MustCompile(`\(env ([A-Z][A-Z0-9_]*)\)`)
	defaultIn   = regexp.MustCompile(`\(default (.*)\)$`)
)

// Read reads the commands of the binary at path and the flags of each.
func Read(name, path string) (*Program, error) {
	p := &Program{Name: name, Path: path, Commands: map[string]*Command{}}
	out := help(path, "-h")
	inCommands := false
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "commands:") {
			inCommands = true
			continue
		}
		if inCommands {
			m := commandLine.FindStringSubmatch(line)
			if m == nil {
				if strings.TrimSpace(line) == "" {
					break
				}
				continue
			}
			p.Commands[m[1]] = &Command{Name: m[1], Flags: map[string]Flag{}}
		}
	}
	if len(p.Commands) == 0 {
		return nil, fmt.Errorf("%s -h lists no commands:\n%s", name, out)
	}
	for _, c := range p.Commands {
		out := help(path, c.Name, "-h")
		var cur *Flag
		flush := func() {
			if cur != nil {
				c.Flags[cur.Name] = *cur
			}
			cur = nil
		}
		for _, line := range strings.Split(out, "\n") {
			if m := flagLine.FindStringSubmatch(line); m != nil {
				flush()
				cur = &Flag{Name: m[1], Bool: m[2] == ""}
				continue
			}
			if cur != nil && strings.HasPrefix(line, "    ") {
				if m := envInUsage.FindStringSubmatch(line); m != nil {
					cur.Env = m[1]
				}
				if m := defaultIn.FindStringSubmatch(line); m != nil {
					cur.Default = strings.Trim(m[1], `"`)
				}
				continue
			}
			flush()
		}
		flush()
		if !strings.Contains(out, "usage: "+name+" "+c.Name) {
			return nil, fmt.Errorf("%s %s -h printed no usage:\n%s", name, c.Name, out)
		}
	}
	return p, nil
}

var envLiteral = regexp.MustCompile(`"((?:PARKING|HEALTHCHECK)_[A-Z0-9_]+)"`)

// SourceEnv returns the PARKING_* and HEALTHCHECK_* names that appear as
// string literals in the non-test Go files under dirs (relative to root):
// the environment variables read without a flag, like the healthcheck
// ping URLs, as well as those with one.
func SourceEnv(t testing.TB, root string, dirs ...string) []string {
	t.Helper()
	seen := map[string]bool{}
	for _, d := range dirs {
		err := filepath.WalkDir(filepath.Join(root, d), func(path string, e os.DirEntry, err error) error {
			if err != nil || e.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range envLiteral.FindAllSubmatch(b, -1) {
				seen[string(m[1])] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var out []string
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Run runs a built binary to completion and returns its exit code and
// output. A binary that cannot be started fails the test.
func Run(t testing.TB, cmd *exec.Cmd) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run %s: %v", cmd.Path, err)
	}
	return code, out.String(), errOut.String()
}
