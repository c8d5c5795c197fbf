package healthping_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/ops/healthping"
)

// ping is one request a test server received.
type ping struct {
	method, path, body, contentType string
}

// checkServer is a local healthchecks.io stand-in that records every ping
// and answers with status.
func checkServer(t *testing.T, status int) (*httptest.Server, func() []ping) {
	t.Helper()
	var (
		mu    sync.Mutex
		pings []ping
	)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		pings = append(pings, ping{r.Method, r.URL.Path, string(b), r.Header.Get("Content-Type")})
		mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(ts.Close)
	return ts, func() []ping {
		mu.Lock()
		defer mu.Unlock()
		return append([]ping(nil), pings...)
	}
}

func logger(buf *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestPingSuccessSkipAndFail(t *testing.T) {
	ts, pings := checkServer(t, http.StatusOK)
	var logs bytes.Buffer
	p := healthping.Pinger{Logger: logger(&logs)}
	ctx := context.Background()
	base := ts.URL + "/ping/abc-123"

	p.Ping(ctx, base, false, "stored availability/2026/11/26/x.json.gz")
	p.Ping(ctx, base+"/", false, "lots unchanged; skipped") // a trailing slash is not doubled
	p.Ping(ctx, base, true, "fetch: HTTP 503")

	got := pings()
	want := []ping{
		{"POST", "/ping/abc-123", "stored availability/2026/11/26/x.json.gz", "text/plain; charset=utf-8"},
		{"POST", "/ping/abc-123", "lots unchanged; skipped", "text/plain; charset=utf-8"},
		{"POST", "/ping/abc-123/fail", "fetch: HTTP 503", "text/plain; charset=utf-8"},
	}
	if len(got) != len(want) {
		t.Fatalf("pings = %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("ping %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if strings.Contains(logs.String(), `"level":"WARN"`) {
		t.Errorf("successful pings logged a warning: %s", logs.String())
	}
}

func TestPingEmptyURLSendsNothing(t *testing.T) {
	_, pings := checkServer(t, http.StatusOK)
	healthping.Pinger{}.Ping(context.Background(), "", true, "x")
	if n := len(pings()); n != 0 {
		t.Errorf("%d pings for an empty URL", n)
	}
}

func TestPingDetailIsCapped(t *testing.T) {
	ts, pings := checkServer(t, http.StatusOK)
	healthping.Pinger{}.Ping(context.Background(), ts.URL, true, strings.Repeat("x", 50_000))
	if got := pings(); len(got) != 1 || len(got[0].body) != 10_000 {
		t.Errorf("body of %d bytes, want 10000", len(pings()[0].body))
	}
}

// A failed ping is a warning in the log and nothing more: Ping returns, and
// the run it reports on goes on.
func TestFailedPingIsOnlyAWarning(t *testing.T) {
	ctx := context.Background()

	t.Run("refused", func(t *testing.T) {
		ts, pings := checkServer(t, http.StatusInternalServerError)
		var logs bytes.Buffer
		healthping.Pinger{Logger: logger(&logs)}.Ping(ctx, ts.URL, false, "stored")
		if len(pings()) != 1 {
			t.Fatal("no ping sent")
		}
		if !strings.Contains(logs.String(), `"level":"WARN","msg":"healthcheck ping refused","status":500,"url":"http://`+strings.TrimPrefix(ts.URL, "http://")+`/REDACTED"`) {
			t.Errorf("log = %s", logs.String())
		}
		if strings.Contains(logs.String(), `"level":"ERROR"`) {
			t.Errorf("a failed ping must not be an error: %s", logs.String())
		}
	})

	t.Run("unreachable", func(t *testing.T) {
		ts, _ := checkServer(t, http.StatusOK)
		url := ts.URL
		ts.Close()
		var logs bytes.Buffer
		healthping.Pinger{Logger: logger(&logs)}.Ping(ctx, url, true, "failed")
		if !strings.Contains(logs.String(), `"level":"WARN","msg":"healthcheck ping failed"`) {
			t.Errorf("log = %s", logs.String())
		}
	})

	t.Run("bad URL", func(t *testing.T) {
		var logs bytes.Buffer
		healthping.Pinger{Logger: logger(&logs)}.Ping(ctx, "http://bad host/", false, "")
		if !strings.Contains(logs.String(), `"level":"WARN"`) {
			t.Errorf("log = %s", logs.String())
		}
	})

	t.Run("slow server", func(t *testing.T) {
		release := make(chan struct{})
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		defer ts.Close()
		defer close(release)
		var logs bytes.Buffer
		p := healthping.Pinger{Logger: logger(&logs), Client: &http.Client{Timeout: 100 * time.Millisecond}}
		p.Ping(ctx, ts.URL, false, "stored")
		if !strings.Contains(logs.String(), `"level":"WARN","msg":"healthcheck ping failed"`) {
			t.Errorf("log = %s", logs.String())
		}
	})
}

// A ping URL is a credential: no log line of a failed ping holds its path,
// whether the check refuses it, cannot be reached or times out, nor user
// info in it (issue 13, item 8: a failing ping logged its full URL).
func TestFailedPingNeverLogsTheURL(t *testing.T) {
	const token = "5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278"
	ctx := context.Background()
	refusing, _ := checkServer(t, http.StatusNotFound)
	gone, _ := checkServer(t, http.StatusOK)
	gone.Close()
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer slow.Close()
	defer close(release)
	for name, url := range map[string]string{
		"refused":     refusing.URL + "/" + token,
		"unreachable": strings.Replace(gone.URL, "http://", "http://pinguser:pingpass@", 1) + "/" + token,
		"timed out":   slow.URL + "/" + token,
		"bad URL":     "http://bad host/" + token,
	} {
		var logs bytes.Buffer
		p := healthping.Pinger{Logger: logger(&logs), Client: &http.Client{Timeout: 100 * time.Millisecond}}
		p.Ping(ctx, url, true, "fetch failed")
		log := logs.String()
		if !strings.Contains(log, `"level":"WARN"`) {
			t.Errorf("%s: no warning for a failed ping: %s", name, log)
		}
		if strings.Contains(log, token) || strings.Contains(log, "pingpass") || strings.Contains(log, "pinguser") {
			t.Errorf("%s: the log holds the ping URL's secret: %s", name, log)
		}
	}
}
