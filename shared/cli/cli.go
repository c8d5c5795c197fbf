// Package cli is the command plumbing both binaries share: subcommands
// (dispatch.go), flags that fall back to environment variables and the
// settings both binaries have (settings.go), starting a command the same way
// every time (parse, validate, JSON logger), help and usage errors, JSON
// results, exit codes, and opening a store or queue from its URL (backend.go).
package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/clock"
	"github.com/parking-newtaipei/parking-newtaipei/shared/ops/redact"
)

// Exit codes, the same as the original project's.
const (
	ExitOK      = 0
	ExitError   = 1
	ExitSkipped = 2 // unchanged (extractor) or another process holds the lock
)

// Env reads environment variables; tests pass their own.
type Env func(string) string

// Config is a binary's configuration: Start validates it before a command runs.
type Config interface {
	Validate() error
}

// Flags is one command's flag set and what the command runs with: its output
// streams and environment. Every flag bound with an environment variable
// takes its default from it, so a setting has one name on the command line
// and one in the environment, and the flag wins.
type Flags struct {
	*flag.FlagSet
	Stdout, Stderr io.Writer

	env      Env
	errs     []error
	summary  string   // one line saying what the command does
	args     string   // the positional arguments of the usage line
	level    *string  // bound by LogLevel
	required []string // flags Start refuses to leave empty
}

// NewFlags starts the flag set of the command name ("loader serve").
func NewFlags(name string, env Env, stdout, stderr io.Writer) *Flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// Start prints help and errors itself: help on stdout, errors once.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if env == nil {
		env = os.Getenv
	}
	return &Flags{FlagSet: fs, Stdout: stdout, Stderr: stderr, env: env}
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

// Require marks flags, already bound, that a command cannot run without:
// Start refuses to leave them empty, and the usage says so.
func (f *Flags) Require(names ...string) {
	for _, name := range names {
		f.Lookup(name).Usage += " (required)"
		f.required = append(f.required, name)
	}
}

// Parse parses args and reports bad environment values and missing
// required flags too.
func (f *Flags) Parse(args []string) error {
	if err := f.FlagSet.Parse(args); err != nil {
		return err
	}
	errs := f.errs
	for _, name := range f.required {
		if f.Lookup(name).Value.String() == "" {
			errs = append(errs, fmt.Errorf("-%s is required", name))
		}
	}
	return errors.Join(errs...)
}

// Env returns the environment the flags were bound from.
func (f *Flags) Env() Env { return f.env }

// Start begins a command the way every command begins: it parses args,
// validates cfg (nil: nothing to validate) and returns the command's JSON
// logger on Stderr, at the level bound with LogLevel (info without one). The
// effective configuration is logged at debug, as the original's --debug
// printed it. An error goes to UsageError; after -h it is flag.ErrHelp and the
// usage is already on Stdout.
func (f *Flags) Start(args []string, cfg Config) (*slog.Logger, error) {
	if err := f.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			f.PrintUsage(f.Stdout)
		}
		return nil, err
	}
	if cfg != nil {
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
	}
	level := DefaultLogLevel
	if f.level != nil {
		level = *f.level
	}
	log, err := NewLogger(f.Stderr, level)
	if err != nil {
		return nil, err
	}
	if cfg != nil {
		log.Debug("effective configuration", "config", redacted(cfg))
	}
	return log, nil
}

// redacted is cfg as its JSON says it, with the user info of every URL in it
// removed (a feed URL may carry user:password@); secrets that are not URLs
// are kept out by their json:"-" tags.
func redacted(cfg Config) any {
	b, err := json.Marshal(cfg)
	if err != nil {
		return fmt.Sprintf("(configuration not shown: %v)", err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Sprintf("(configuration not shown: %v)", err)
	}
	var walk func(any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case string:
			return redact.URL(x)
		case map[string]any:
			for k, e := range x {
				x[k] = walk(e)
			}
		case []any:
			for i, e := range x {
				x[i] = walk(e)
			}
		}
		return v
	}
	return walk(v)
}

// UsageError ends a command refused for how it was called: it prints err on
// Stderr and returns ExitError. Help (flag.ErrHelp) is success: ExitOK.
func (f *Flags) UsageError(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	fmt.Fprintf(f.Stderr, "%s: %v\nRun '%s -h' for usage.\n", f.Name(), err, f.Name())
	return ExitError
}

// PrintUsage writes the command's usage line, summary and flags to w.
func (f *Flags) PrintUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: %s [flags]", f.Name())
	if f.args != "" {
		fmt.Fprintf(w, " %s", f.args)
	}
	fmt.Fprintln(w)
	if f.summary != "" {
		fmt.Fprintf(w, "\n%s\n", f.summary)
	}
	fmt.Fprintf(w, "\nflags:\n")
	f.SetOutput(w)
	f.PrintDefaults()
	f.SetOutput(io.Discard)
}

// PrintJSON writes a command's result to w, indented, for people and
// scripts alike.
func PrintJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// ParseLevel reads a log level name: debug, info, warn or error.
func ParseLevel(level string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return l, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	return l, nil
}

// NewLogger returns a JSON logger at the named level (debug, info, warn, error).
func NewLogger(w io.Writer, level string) (*slog.Logger, error) {
	l, err := ParseLevel(level)
	if err != nil {
		return nil, err
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// ParseTime reads a -from/-to value: RFC 3339, or a date (YYYY-MM-DD) or
// minute (YYYY-MM-DDTHH:MM) in Asia/Taipei, the users' time.
func ParseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, clock.Taipei); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q: want RFC 3339 (2026-11-26T18:00:00Z) or a Taipei date (2026-11-26) or minute (2026-11-26T18:00)", s)
}

// ParseRange reads -from (required) and -to (empty: now): the half-open
// range of fetch times a replay or a backfill covers.
func ParseRange(fromS, toS string, now time.Time) (from, to time.Time, err error) {
	if fromS == "" {
		return from, to, errors.New("-from is required")
	}
	if from, err = ParseTime(fromS); err != nil {
		return from, to, fmt.Errorf("-from: %w", err)
	}
	to = now
	if toS != "" {
		if to, err = ParseTime(toS); err != nil {
			return from, to, fmt.Errorf("-to: %w", err)
		}
	}
	if !from.Before(to) {
		return from, to, fmt.Errorf("-from %s is not before -to %s", fromS, to.Format(time.RFC3339))
	}
	return from, to, nil
}
