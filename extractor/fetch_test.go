package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/parking-newtaipei/parking-newtaipei/internal/feedtest"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
)

// pings records the healthcheck pings a run sends.
type pings struct {
	mu    sync.Mutex
	paths []string
}

func (p *pings) server(t *testing.T, status int) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.paths = append(p.paths, r.URL.Path)
		p.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func (p *pings) got() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.paths)
}

func fetchEnv(dir, feedURL, lotsPing, availPing string) func(string) string {
	env := map[string]string{
		"PARKING_STORE":                "file://" + filepath.Join(dir, "snapshots"),
		"PARKING_QUEUE":                "sqlite://" + filepath.Join(dir, "queue.db"),
		"PARKING_FEED_BASE_URL":        feedURL,
		"HEALTHCHECK_PARKING_URL":      lotsPing,
		"HEALTHCHECK_AVAILABILITY_URL": availPing,
	}
	return func(k string) string { return env[k] }
}

// Like the original: a stored or skipped run pings the check's URL, a failed
// one pings URL/fail, and a ping that fails never fails the run.
func TestFetchPingsLikeTheOriginal(t *testing.T) {
	fd := feedtest.NewServer(t)
	var lots, avail pings
	lotsSrv, availSrv := lots.server(t, http.StatusOK), avail.server(t, http.StatusInternalServerError)
	env := fetchEnv(t.TempDir(), fd.URL, lotsSrv.URL+"/check-lots", availSrv.URL+"/check-avail")
	fetch := func(want int, args ...string) {
		t.Helper()
		var out, errb bytes.Buffer
		if code := program().Run(context.Background(), append([]string{"fetch"}, args...), &out, &errb, env); code != want {
			t.Fatalf("fetch %v: exit %d, want %d\n%s", args, code, want, errb.String())
		}
	}
	fetch(0, "-dataset", "lots")
	fetch(2, "-dataset", "lots") // unchanged: skipped, still pinged as a success
	if got := lots.got(); !slices.Equal(got, []string{"/check-lots", "/check-lots"}) {
		t.Fatalf("lots pings = %v, want two success pings", got)
	}
	// The availability check's server answers 500: a warning, not a failed run.
	fetch(0, "-dataset", "availability")
	fd.RejectCSVFile(feed.Availability, true)
	fetch(1, "-dataset", "availability", "-format", "csv")
	if got := avail.got(); !slices.Equal(got, []string{"/check-avail", "/check-avail/fail"}) {
		t.Fatalf("availability pings = %v, want a success then /fail", got)
	}
	fetch(0, "-dataset", "availability", "-dry-run")
	if got := avail.got(); len(got) != 2 {
		t.Fatalf("a dry run pinged: %v", got)
	}
}

// A misspelt log level is a usage error, not a silent default.
func TestFetchRefusesAnUnknownLogLevel(t *testing.T) {
	var out, errb bytes.Buffer
	env := fetchEnv(t.TempDir(), "http://127.0.0.1:1", "", "")
	if code := program().Run(context.Background(), []string{"fetch", "-dataset", "lots", "-log-level", "fo"}, &out, &errb, env); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(errb.String(), `log level "fo"`) {
		t.Fatalf("error does not name the level: %s", errb.String())
	}
}

// -log-level debug logs the effective configuration, as the original's
// --debug printed it, but never the healthcheck ping URLs.
func TestDebugLogsTheConfigurationButNotThePingURLs(t *testing.T) {
	fd := feedtest.NewServer(t)
	var out, errb bytes.Buffer
	env := fetchEnv(t.TempDir(), fd.URL, "https://hc-ping.example/secret-lots", "https://hc-ping.example/secret-availability")
	if code := program().Run(context.Background(), []string{"fetch", "-dataset", "lots", "-dry-run", "-log-level", "debug"}, &out, &errb, env); code != 0 {
		t.Fatalf("exit %d\n%s", code, errb.String())
	}
	if !strings.Contains(errb.String(), `"msg":"effective configuration"`) || !strings.Contains(errb.String(), fd.URL) {
		t.Fatalf("no effective configuration in the debug log:\n%s", errb.String())
	}
	if strings.Contains(errb.String(), "secret") {
		t.Fatalf("a ping URL reached the log:\n%s", errb.String())
	}
}
