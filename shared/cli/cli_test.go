package cli

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
)

func TestFlagsFallBackToTheEnvironmentAndFlagsWin(t *testing.T) {
	env := map[string]string{"PARKING_DB": "/env/parking.db", "PARKING_WAIT": "5s", "PARKING_DRAIN": "true"}
	var db string
	var wait time.Duration
	var drain bool
	f := NewFlags("t", func(k string) string { return env[k] }, io.Discard, io.Discard)
	f.String(&db, "db", "PARKING_DB", "./data/parking.db", "")
	f.Duration(&wait, "wait", "PARKING_WAIT", time.Second, "")
	f.Bool(&drain, "drain", "PARKING_DRAIN", false, "")
	if err := f.Parse([]string{"-wait", "7s"}); err != nil {
		t.Fatal(err)
	}
	if db != "/env/parking.db" || wait != 7*time.Second || !drain {
		t.Fatalf("db=%q wait=%s drain=%v", db, wait, drain)
	}
}

func TestBadEnvironmentValuesAreErrorsNamingTheVariable(t *testing.T) {
	var d time.Duration
	f := NewFlags("t", func(k string) string { return map[string]string{"PARKING_WAIT": "soon"}[k] }, io.Discard, io.Discard)
	f.Duration(&d, "wait", "PARKING_WAIT", time.Second, "")
	err := f.Parse(nil)
	if err == nil || !strings.Contains(err.Error(), "PARKING_WAIT") {
		t.Fatalf("error = %v, want one naming PARKING_WAIT", err)
	}
}

func TestParseTimeReadsTaipeiDatesAndRFC3339(t *testing.T) {
	cases := map[string]time.Time{
		"2026-11-26":           time.Date(2026, 11, 25, 16, 0, 0, 0, time.UTC),
		"2026-11-26T18:00":     time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC),
		"2026-11-26T18:00:00Z": time.Date(2026, 11, 26, 18, 0, 0, 0, time.UTC),
	}
	for in, want := range cases {
		got, err := ParseTime(in)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseTime("yesterday"); err == nil {
		t.Error("ParseTime accepted nonsense")
	}
}

func TestNewLoggerRefusesUnknownLevels(t *testing.T) {
	if _, err := NewLogger(io.Discard, "loud"); err == nil {
		t.Fatal("level loud accepted")
	}
	if _, err := NewLogger(io.Discard, "debug"); err != nil {
		t.Fatal(err)
	}
}

// A required flag left empty, and a dataset that is not one, are refused
// when the flags are parsed, naming the flag; help still wins.
func TestRequiredFlagsAndDatasetsAreCheckedAtParse(t *testing.T) {
	parse := func(args ...string) (feed.Dataset, string, error) {
		var d feed.Dataset
		var out string
		f := NewFlags("t", func(string) string { return "" }, io.Discard, io.Discard)
		f.Dataset(&d, "a dataset")
		f.String(&out, "out", "", "", "a file")
		f.Require("dataset", "out")
		return d, out, f.Parse(args)
	}
	if d, out, err := parse("-dataset", "lots", "-out", "x"); err != nil || d != feed.Lots || out != "x" {
		t.Fatalf("parse = %q %q %v", d, out, err)
	}
	for args, want := range map[string][]string{
		"-dataset lots":           {"-out is required"},
		"-out x":                  {"-dataset is required"},
		"":                        {"-dataset is required", "-out is required"},
		"-dataset weather":        {`-dataset`, `unknown dataset "weather"`},
		"-dataset lots -out x -h": {"help requested"},
	} {
		_, _, err := parse(strings.Fields(args)...)
		for _, w := range want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error %v, want one saying %q", args, err, w)
			}
		}
	}
}

func TestParseRangeNeedsAFromBeforeTheToAndDefaultsToNow(t *testing.T) {
	now := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	from, to, err := ParseRange("2026-11-26", "", now)
	if err != nil || !from.Equal(time.Date(2026, 11, 25, 16, 0, 0, 0, time.UTC)) || !to.Equal(now) {
		t.Fatalf("ParseRange = %v %v %v", from, to, err)
	}
	for _, c := range [][3]string{
		{"", "", "-from is required"},
		{"yesterday", "", "-from: "},
		{"2026-11-26", "soon", "-to: "},
		{"2026-11-26", "2026-11-26", "is not before"},
	} {
		if _, _, err := ParseRange(c[0], c[1], now); err == nil || !strings.Contains(err.Error(), c[2]) {
			t.Errorf("ParseRange(%q, %q): %v, want an error saying %q", c[0], c[1], err, c[2])
		}
	}
}

type urlConfig struct {
	FeedBaseURL string
	Store       string
	Mirrors     []string
	Nested      struct{ Queue string }
}

func (urlConfig) Validate() error { return nil }

// The effective configuration logged at debug shows every setting but no
// URL's user info (issue 13, item 8: a feed URL with user:password@ was
// printed whole).
func TestDebugConfigurationHasNoUserInfo(t *testing.T) {
	var logs strings.Builder
	var level string
	f := NewFlags("t", func(string) string { return "" }, io.Discard, &logs)
	f.LogLevel(&level)
	cfg := urlConfig{FeedBaseURL: "https://feeduser:s3cr3t@data.example/base", Store: "file://./data/snapshots",
		Mirrors: []string{"http://mirror:m1rr0r@mirror.example/"}}
	cfg.Nested.Queue = "https://sqs.example/1/q"
	if _, err := f.Start([]string{"-log-level", "debug"}, cfg); err != nil {
		t.Fatal(err)
	}
	log := logs.String()
	for _, want := range []string{`"msg":"effective configuration"`, "https://data.example/base", "file://./data/snapshots", "http://mirror.example/", "https://sqs.example/1/q"} {
		if !strings.Contains(log, want) {
			t.Errorf("the debug configuration lacks %q:\n%s", want, log)
		}
	}
	for _, secret := range []string{"feeduser", "s3cr3t", "m1rr0r"} {
		if strings.Contains(log, secret) {
			t.Errorf("the debug configuration holds %q:\n%s", secret, log)
		}
	}
}
