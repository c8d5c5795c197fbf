package cli

import (
	"io"
	"strings"
	"testing"
	"time"
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
