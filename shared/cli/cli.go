// Package cli holds what both binaries' command lines share: flags that fall
// back to environment variables, the JSON logger, and the exit codes.
package cli

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"
)

// Exit codes, the same as the original project's.
const (
	ExitOK      = 0
	ExitError   = 1
	ExitSkipped = 2 // unchanged (extractor) or another process holds the lock
)

// Env reads environment variables; tests pass their own.
type Env func(string) string

// Flags binds flags whose defaults come from the environment, so every
// setting has one name on the command line and one in the environment.
type Flags struct {
	*flag.FlagSet
	env  Env
	errs []error
}

// NewFlags starts a flag set for one command.
func NewFlags(name string, env Env, out io.Writer) *Flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	if env == nil {
		env = os.Getenv
	}
	return &Flags{FlagSet: fs, env: env}
}

func (f *Flags) usage(usage, env string) string {
	if env == "" {
		return usage
	}
	return usage + " (env " + env + ")"
}

// String binds a string flag to p.
func (f *Flags) String(p *string, name, env, def, usage string) {
	if v := f.lookup(env); v != "" {
		def = v
	}
	f.StringVar(p, name, def, f.usage(usage, env))
}

// Bool binds a boolean flag to p.
func (f *Flags) Bool(p *bool, name, env string, def bool, usage string) {
	if v := f.lookup(env); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s=%q: not a boolean", env, v))
		}
		def = b
	}
	f.BoolVar(p, name, def, f.usage(usage, env))
}

// Duration binds a duration flag to p.
func (f *Flags) Duration(p *time.Duration, name, env string, def time.Duration, usage string) {
	if v := f.lookup(env); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s=%q: not a duration (like 25s or 5m)", env, v))
		}
		def = d
	}
	f.DurationVar(p, name, def, f.usage(usage, env))
}

// Int binds an integer flag to p.
func (f *Flags) Int(p *int, name, env string, def int, usage string) {
	if v := f.lookup(env); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s=%q: not an integer", env, v))
		}
		def = n
	}
	f.IntVar(p, name, def, f.usage(usage, env))
}

func (f *Flags) lookup(env string) string {
	if env == "" {
		return ""
	}
	return strings.TrimSpace(f.env(env))
}

// Parse parses args and reports bad environment values too.
func (f *Flags) Parse(args []string) error {
	if err := f.FlagSet.Parse(args); err != nil {
		return err
	}
	if len(f.errs) > 0 {
		return f.errs[0]
	}
	return nil
}

// Env returns the environment the flags were bound from.
func (f *Flags) Env() Env { return f.env }

// NewLogger returns a JSON logger at the named level (debug, info, warn, error).
func NewLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// ParseTime reads a -from/-to value: RFC 3339, or a date (YYYY-MM-DD) or
// minute (YYYY-MM-DDTHH:MM) in Asia/Taipei, the users' time.
func ParseTime(s string) (time.Time, error) {
	taipei := time.FixedZone("Asia/Taipei", 8*3600)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, taipei); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q: want RFC 3339 (2026-11-26T18:00:00Z) or a Taipei date (2026-11-26) or minute (2026-11-26T18:00)", s)
}
