package extract_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/internal/feedtest"
	"github.com/parking-newtaipei/parking-newtaipei/shared/extract"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
)

var clock = time.Date(2026, 9, 20, 3, 4, 5, 0, time.FixedZone("CST", 8*3600))

// logBuf collects the client's JSON log lines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

// client returns a client of srv with fast backoff and a fixed clock.
func client(t *testing.T, base string, hc *http.Client, mod func(*extract.ClientConfig)) (*extract.Client, *logBuf) {
	t.Helper()
	logs := &logBuf{}
	cfg := extract.ClientConfig{
		BaseURL:     base,
		Timeout:     5 * time.Second,
		Retries:     3,
		BackoffBase: time.Millisecond,
		BackoffMax:  5 * time.Millisecond,
		HTTPClient:  hc,
		UserAgent:   "fetch-test",
		Logger:      slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:         func() time.Time { return clock },
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := extract.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, logs
}

func TestFetchJSONPages(t *testing.T) {
	srv := feedtest.NewServer(t)
	c, logs := client(t, srv.URL+"/", srv.Client(), nil) // a trailing slash is fine
	for _, tc := range []struct {
		d     feed.Dataset
		rows  int
		pages [][]byte
	}{
		{feed.Lots, feedtest.SampleLotsRows, feedtest.LotsJSONPages(feedtest.SampleLots(), 1000)},
		{feed.Availability, feedtest.SampleAvailabilityRows, feedtest.AvailabilityJSONPages(feedtest.SampleAvailability(1), 1000)},
	} {
		snap, rows, err := c.Fetch(context.Background(), tc.d, feed.JSON)
		if err != nil {
			t.Fatal(err)
		}
		if rows.Len() != tc.rows {
			t.Fatalf("%s: %d rows, want %d", tc.d, rows.Len(), tc.rows)
		}
		if snap.Format != snapshot.FormatName || snap.Version != snapshot.Version || snap.Dataset != tc.d ||
			snap.Source != feed.JSON || snap.Origin != "extractor" || !snap.FetchedAt.Equal(clock) || snap.FetchedAt.Location() != time.UTC {
			t.Fatalf("snapshot header %+v", snap)
		}
		if len(snap.Responses) != 2 {
			t.Fatalf("%d responses", len(snap.Responses))
		}
		for i, r := range snap.Responses {
			if r.Method != "GET" || r.Status != 200 || !bytes.Equal(r.Body, tc.pages[i]) || r.Header.Get("Content-Type") == "" || r.RequestedAt.IsZero() || r.ReceivedAt.IsZero() {
				t.Fatalf("response %d: %s %d %d bytes", i, r.URL, r.Status, len(r.Body))
			}
			if !strings.HasPrefix(r.URL, srv.URL+"/api/datasets/"+tc.d.UUID()+"/json?page=") || strings.Contains(r.URL, "//api") {
				t.Fatalf("URL %s", r.URL)
			}
		}
		// The snapshot survives its stored form and parses back to the served rows.
		enc, _, err := snapshot.Encode(snap)
		if err != nil {
			t.Fatal(err)
		}
		dec, err := snapshot.Decode(enc)
		if err != nil {
			t.Fatal(err)
		}
		if tc.d == feed.Lots {
			stored, err := dec.Lots()
			if err != nil || !reflect.DeepEqual(stored, feedtest.SampleLots()) {
				t.Fatalf("snapshot rows differ: %v", err)
			}
		}
		// The rows returned are the snapshot's, so nobody parses it again.
		lots, availability, err := dec.Rows()
		if err != nil || !reflect.DeepEqual(rows, extract.Rows{Lots: lots, Availability: availability}) {
			t.Fatalf("returned rows are not the snapshot's rows (%v)", err)
		}
	}
	want := []string{
		feedtest.JSONPath(feed.Lots) + "?page=0&size=1000", feedtest.JSONPath(feed.Lots) + "?page=1&size=1000",
		feedtest.JSONPath(feed.Availability) + "?page=0&size=1000", feedtest.JSONPath(feed.Availability) + "?page=1&size=1000",
	}
	if got := srv.Log(); !reflect.DeepEqual(got, want) {
		t.Fatalf("requests\n%q\nwant\n%q", got, want)
	}
	if logs.count(`"level":"WARN"`) != 0 || logs.count(`"msg":"fetch response"`) != 4 {
		t.Fatalf("logs: %s", logs.b.String())
	}
}

func TestFetchSmallerPages(t *testing.T) {
	srv := feedtest.NewServer(t)
	c, _ := client(t, srv.URL, srv.Client(), func(c *extract.ClientConfig) { c.PageSize = 500 })
	snap, rows, err := c.Fetch(context.Background(), feed.Lots, feed.JSON)
	if err != nil || rows.Len() != feedtest.SampleLotsRows || len(snap.Responses) != 3 {
		t.Fatalf("%v %d rows", err, rows.Len())
	}
	// Exactly one full page: the empty page after it ends the fetch.
	srv.SetAvailability(feedtest.SampleAvailability(1)[:1000])
	c, _ = client(t, srv.URL, srv.Client(), nil)
	snap, rows, err = c.Fetch(context.Background(), feed.Availability, feed.JSON)
	if err != nil || rows.Len() != 1000 || len(snap.Responses) != 2 || string(snap.Responses[1].Body) != "[]" {
		t.Fatalf("%v %d rows", err, rows.Len())
	}
}

func TestFetchCSV(t *testing.T) {
	srv := feedtest.NewServer(t)
	c, _ := client(t, srv.URL, srv.Client(), nil)
	snap, rows, err := c.Fetch(context.Background(), feed.Lots, feed.CSV)
	if err != nil || rows.Len() != feedtest.SampleLotsRows {
		t.Fatalf("%v %d", err, rows.Len())
	}
	if len(snap.Responses) != 1 || snap.Source != feed.CSV || !bytes.HasPrefix(snap.Responses[0].Body, []byte("\ufeff\"ID\"")) {
		t.Fatalf("responses %d", len(snap.Responses))
	}
	if got := srv.Log(); len(got) != 1 || got[0] != feedtest.CSVFilePath(feed.Lots) {
		t.Fatalf("requests %q", got)
	}
}

// The live feed's csv/file has answered the WAF page with status 200 since
// 2026-09: the fetch fails, names the URL and the page, and tries only once more.
func TestFetchRejected(t *testing.T) {
	srv := feedtest.NewServer(t, feedtest.WithRejectedCSVFile(feed.Availability))
	c, _ := client(t, srv.URL, srv.Client(), nil)
	_, _, err := c.Fetch(context.Background(), feed.Availability, feed.CSV)
	if err == nil {
		t.Fatal("the WAF page was accepted")
	}
	if !errors.Is(err, feed.ErrRejected) || !strings.Contains(err.Error(), "Request Rejected") ||
		!strings.Contains(err.Error(), srv.URL+feedtest.CSVFilePath(feed.Availability)) || !strings.Contains(err.Error(), "status 200") {
		t.Fatalf("error %v", err)
	}
	if got := srv.Requests(feedtest.CSVFilePath(feed.Availability)); got != 2 {
		t.Fatalf("%d requests, want 2 (one retry for a rejection)", got)
	}
	// A single rejection is retried away.
	srv.RejectNext(1)
	if _, rows, err := c.Fetch(context.Background(), feed.Availability, feed.JSON); err != nil || rows.Len() != feedtest.SampleAvailabilityRows {
		t.Fatalf("after one rejection: %v", err)
	}
}

func TestFetchRetries(t *testing.T) {
	srv := feedtest.NewServer(t)
	c, logs := client(t, srv.URL, srv.Client(), nil)
	path := feedtest.JSONPath(feed.Lots)

	srv.FailNext(2, 500)
	if _, rows, err := c.Fetch(context.Background(), feed.Lots, feed.JSON); err != nil || rows.Len() != feedtest.SampleLotsRows {
		t.Fatalf("500 twice then success: %v", err)
	}
	if got := srv.Requests(path); got != 4 {
		t.Fatalf("%d requests, want 2 failures + 2 pages", got)
	}
	if got := logs.count(`"msg":"fetch retry"`); got != 2 {
		t.Fatalf("%d retry warnings", got)
	}

	srv.FailNext(1, http.StatusTooManyRequests)
	if _, _, err := c.Fetch(context.Background(), feed.Lots, feed.JSON); err != nil {
		t.Fatalf("429 once: %v", err)
	}

	before := srv.Requests(path)
	srv.FailNext(1000, 503)
	_, _, err := c.Fetch(context.Background(), feed.Lots, feed.JSON)
	var se *extract.StatusError
	if !errors.As(err, &se) || se.Status != 503 || !strings.Contains(err.Error(), "gave up after 4 attempts") ||
		!strings.Contains(err.Error(), "page 0") || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("500 forever: %v", err)
	}
	if got := srv.Requests(path) - before; got != 4 {
		t.Fatalf("%d requests for 1 + 3 retries", got)
	}

	before = srv.Requests(path)
	srv.FailNext(1000, 404)
	if _, _, err := c.Fetch(context.Background(), feed.Lots, feed.JSON); !errors.As(err, &se) || se.Status != 404 {
		t.Fatalf("404: %v", err)
	}
	if got := srv.Requests(path) - before; got != 1 {
		t.Fatalf("404 was retried: %d requests", got)
	}
}

func TestFetchTruncatedAndTimeout(t *testing.T) {
	srv := feedtest.NewServer(t)
	c, _ := client(t, srv.URL, srv.Client(), func(c *extract.ClientConfig) { c.Timeout = 200 * time.Millisecond })
	path := feedtest.JSONPath(feed.Availability)

	srv.TruncateNext(1)
	if _, rows, err := c.Fetch(context.Background(), feed.Availability, feed.JSON); err != nil || rows.Len() != feedtest.SampleAvailabilityRows {
		t.Fatalf("truncated once: %v", err)
	}
	if got := srv.Requests(path); got != 3 {
		t.Fatalf("%d requests", got)
	}
	srv.HangNext(1)
	if _, rows, err := c.Fetch(context.Background(), feed.Availability, feed.JSON); err != nil || rows.Len() != feedtest.SampleAvailabilityRows {
		t.Fatalf("timed out once: %v", err)
	}
	if got := srv.Requests(path); got != 6 {
		t.Fatalf("%d requests", got)
	}
	// Truncated every time: bounded, and the error says what happened.
	srv.TruncateNext(1000)
	_, _, err := c.Fetch(context.Background(), feed.Availability, feed.JSON)
	if err == nil || !strings.Contains(err.Error(), "reading body") || !strings.Contains(err.Error(), "gave up after 4 attempts") {
		t.Fatalf("truncated forever: %v", err)
	}
}

func TestFetchBodyTooLarge(t *testing.T) {
	srv := feedtest.NewServer(t)
	c, _ := client(t, srv.URL, srv.Client(), func(c *extract.ClientConfig) { c.MaxBodyBytes = 64 << 10 })
	_, _, err := c.Fetch(context.Background(), feed.Lots, feed.CSV)
	if err == nil || !strings.Contains(err.Error(), "larger than") || !strings.Contains(err.Error(), srv.URL+feedtest.CSVFilePath(feed.Lots)) {
		t.Fatalf("declared length: %v", err)
	}
	if srv.TotalRequests() != 1 {
		t.Fatal("a too large body was retried")
	}
	// Without Content-Length the limit holds while reading.
	big := feedtest.JSONBody(feedtest.SampleLots()[:900])
	streaming := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < len(big); i += 4096 {
			_, _ = w.Write(big[i:min(i+4096, len(big))])
			w.(http.Flusher).Flush()
		}
	}))
	defer streaming.Close()
	c, _ = client(t, streaming.URL, streaming.Client(), func(c *extract.ClientConfig) { c.MaxBodyBytes = 64 << 10 })
	_, _, err = c.Fetch(context.Background(), feed.Lots, feed.JSON)
	if err == nil || !strings.Contains(err.Error(), "larger than the 65536 bytes allowed") || !strings.Contains(err.Error(), streaming.URL) {
		t.Fatalf("streamed: %v", err)
	}
}

func TestFetchBadBodies(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		want string
	}{
		{"error document", `{"status":"error","message":"busy"}`, "does not start with '['"},
		{"no ID", `[{"NAME":"x"}]`, "has no ID"},
		{"empty", ``, "empty body"},
		{"zero rows", `[]`, "no rows"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hits int
			var mu sync.Mutex
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				hits++
				mu.Unlock()
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			c, _ := client(t, srv.URL, srv.Client(), nil)
			_, _, err := c.Fetch(context.Background(), feed.Lots, feed.JSON)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if tc.body != "[]" && (!errors.Is(err, feed.ErrBadBody) || !strings.Contains(err.Error(), srv.URL)) {
				t.Fatalf("error %v does not wrap ErrBadBody or name the URL", err)
			}
			if tc.body == "[]" && !errors.Is(err, extract.ErrNoRows) {
				t.Fatalf("error %v is not ErrNoRows", err)
			}
			if hits != 1 {
				t.Fatalf("a bad body was retried: %d requests", hits)
			}
		})
	}
}

func TestFetchPagingGuards(t *testing.T) {
	srv := feedtest.NewServer(t)
	c, _ := client(t, srv.URL, srv.Client(), func(c *extract.ClientConfig) { c.MaxPages = 1 })
	if _, _, err := c.Fetch(context.Background(), feed.Lots, feed.JSON); err == nil || !strings.Contains(err.Error(), "MaxPages") {
		t.Fatalf("max pages: %v", err)
	}
	// A server that ignores page answers page 0 for ever.
	page0 := feedtest.LotsJSONPages(feedtest.SampleLots(), 1000)[0]
	same := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(page0) }))
	defer same.Close()
	c, _ = client(t, same.URL, same.Client(), nil)
	if _, _, err := c.Fetch(context.Background(), feed.Lots, feed.JSON); err == nil || !strings.Contains(err.Error(), "same body as page 0") {
		t.Fatalf("page ignored: %v", err)
	}
	// A server that ignores size answers more rows than asked for.
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(page0) }))
	defer big.Close()
	c, _ = client(t, big.URL, big.Client(), func(c *extract.ClientConfig) { c.PageSize = 10 })
	if _, _, err := c.Fetch(context.Background(), feed.Lots, feed.JSON); err == nil || !strings.Contains(err.Error(), "more than the size 10") {
		t.Fatalf("size ignored: %v", err)
	}
}

func TestFetchCancelDuringBackoff(t *testing.T) {
	srv := feedtest.NewServer(t)
	srv.FailNext(1000, 500)
	c, _ := client(t, srv.URL, srv.Client(), func(c *extract.ClientConfig) { c.BackoffBase, c.BackoffMax = time.Hour, time.Hour })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := c.Fetch(ctx, feed.Lots, feed.JSON)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Minute {
		t.Fatalf("%v after %v", err, time.Since(start))
	}
	if srv.TotalRequests() > 2 {
		t.Fatalf("%d requests", srv.TotalRequests())
	}
}

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  extract.ClientConfig
		ok   bool
	}{
		{"defaults", extract.ClientConfig{}, true},
		{"page size above the cap", extract.ClientConfig{PageSize: 5000}, false},
		{"negative page size", extract.ClientConfig{PageSize: -1}, false},
		{"no scheme", extract.ClientConfig{BaseURL: "data.ntpc.gov.tw"}, false},
		{"ftp", extract.ClientConfig{BaseURL: "ftp://data.ntpc.gov.tw"}, false},
		{"query", extract.ClientConfig{BaseURL: "https://data.ntpc.gov.tw/?x=1"}, false},
		{"path prefix", extract.ClientConfig{BaseURL: "http://127.0.0.1:8080/mirror"}, true},
		{"no retries", extract.ClientConfig{Retries: -1}, true},
		{"negative max pages", extract.ClientConfig{MaxPages: -1}, false},
		{"backoff max below base", extract.ClientConfig{BackoffBase: time.Second, BackoffMax: time.Millisecond}, false},
		{"negative body limit", extract.ClientConfig{MaxBodyBytes: -5}, false},
	} {
		err := tc.cfg.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v", tc.name, err)
		}
		if _, err := extract.NewClient(tc.cfg); (err == nil) != tc.ok {
			t.Errorf("%s: New() = %v", tc.name, err)
		}
	}
	c, _ := extract.NewClient(extract.ClientConfig{})
	if _, _, err := c.Fetch(context.Background(), "parking", feed.JSON); err == nil {
		t.Error("unknown dataset accepted")
	}
	if _, _, err := c.Fetch(context.Background(), feed.Lots, "xml"); err == nil {
		t.Error("unknown format accepted")
	}
}

func TestNoRetriesConfig(t *testing.T) {
	srv := feedtest.NewServer(t)
	srv.FailNext(1, 500)
	c, _ := client(t, srv.URL, srv.Client(), func(c *extract.ClientConfig) { c.Retries = -1 })
	if _, _, err := c.Fetch(context.Background(), feed.Lots, feed.JSON); err == nil || srv.TotalRequests() != 1 {
		t.Fatalf("%v, %d requests", err, srv.TotalRequests())
	}
}

// The client follows no redirect, to another host or its own: a redirect
// is an error naming the status and where it pointed (without its query),
// tried once, and no byte of what the other address would have answered
// reaches the error, the log or a snapshot (issue 13, item 7: it printed
// credentials from an internal address).
func TestFetchFollowsNoRedirect(t *testing.T) {
	const secret = `{"AccessKeyId":"ASIAINTERNAL","SecretAccessKey":"internal-secret"}`
	var internalHits sync.Map
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		internalHits.Store(r.URL.Path, true)
		w.Write([]byte(secret))
	}))
	defer internal.Close()
	var feedHits int
	var mu sync.Mutex
	feedSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		feedHits++
		mu.Unlock()
		target := internal.URL + "/latest/meta-data/iam/security-credentials/role?token=abc"
		if r.URL.Query().Get("same") != "" || strings.HasPrefix(r.URL.Path, "/same") {
			target = "/elsewhere/on/the/feed?token=abc"
		}
		http.Redirect(w, r, target, http.StatusFound)
	}))
	defer feedSrv.Close()

	for _, tc := range []struct{ name, base, location string }{
		{"another host", feedSrv.URL, internal.URL + "/latest/meta-data/iam/security-credentials/role"},
		{"the same host", feedSrv.URL + "/same", feedSrv.URL + "/elsewhere/on/the/feed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			feedHits = 0
			mu.Unlock()
			c, logs := client(t, tc.base, nil, nil)
			_, _, err := c.Fetch(context.Background(), feed.Lots, feed.JSON)
			var se *extract.StatusError
			if !errors.As(err, &se) || se.Status != http.StatusFound || se.Location != tc.location {
				t.Fatalf("fetch through a redirect: %v; want a StatusError 302 naming %s", err, tc.location)
			}
			if strings.Contains(err.Error(), "token=abc") || !strings.Contains(err.Error(), "does not follow") {
				t.Errorf("error %q: want the redirect named without its query, and said not followed", err)
			}
			for _, text := range []string{err.Error(), logs.b.String()} {
				if strings.Contains(text, "internal-secret") || strings.Contains(text, "ASIAINTERNAL") {
					t.Fatalf("the other address's answer was quoted: %s", text)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if feedHits != 1 {
				t.Errorf("%d requests to the feed, want 1: a redirect is not retried", feedHits)
			}
		})
	}
	internalHits.Range(func(k, _ any) bool {
		t.Errorf("the client followed a redirect to %s", k)
		return true
	})
}

// User info in the base URL is sent as Basic authentication and never
// written anywhere: not in the snapshot's responses[].url, the logs (debug
// included) or an error, whether the feed answers, fails, or cannot be
// reached (issue 13, item 8).
func TestFetchKeepsBaseURLCredentialsSecret(t *testing.T) {
	const user, password = "feeduser", "s3cr3t-pw"
	srv := feedtest.NewServer(t)
	upstream, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	var authed, refused int
	var mu sync.Mutex
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != password {
			refused++
			http.Error(w, "credentials required", http.StatusUnauthorized)
			return
		}
		authed++
		httputil.NewSingleHostReverseProxy(upstream).ServeHTTP(w, r)
	}))
	defer front.Close()
	withCredentials := func(base string) string {
		return strings.Replace(base, "http://", "http://"+user+":"+password+"@", 1)
	}
	secretIn := func(what, text string) {
		t.Helper()
		if strings.Contains(text, password) || strings.Contains(text, user) {
			t.Errorf("%s holds the base URL's credentials:\n%s", what, text)
		}
	}

	c, logs := client(t, withCredentials(front.URL), nil, nil)
	snap, _, err := c.Fetch(context.Background(), feed.Lots, feed.JSON)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if authed == 0 || refused != 0 {
		t.Errorf("%d requests authenticated, %d refused: the credentials were not sent", authed, refused)
	}
	mu.Unlock()
	for _, r := range snap.Responses {
		secretIn("a stored response URL", r.URL)
		if !strings.HasPrefix(r.URL, front.URL+"/api/datasets/") {
			t.Errorf("stored response URL %q, want the feed's URL without user info", r.URL)
		}
	}
	encoded, _, err := snapshot.Encode(snap)
	if err != nil {
		t.Fatal(err)
	}
	decoded, err := snapshot.Decode(encoded)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range decoded.Responses {
		secretIn("the encoded snapshot", r.URL)
	}

	// A failing feed (retried, then an error) and an unreachable one.
	srv.FailNext(100, http.StatusServiceUnavailable)
	_, _, err = c.Fetch(context.Background(), feed.Lots, feed.JSON)
	if err == nil {
		t.Fatal("a failing feed was accepted")
	}
	secretIn("the error of a failing feed", err.Error())
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	gone, goneLogs := client(t, withCredentials(closed.URL), nil, nil)
	_, _, err = gone.Fetch(context.Background(), feed.Lots, feed.JSON)
	if err == nil {
		t.Fatal("an unreachable feed was accepted")
	}
	if !strings.Contains(err.Error(), closed.URL) {
		t.Errorf("the error does not name the feed: %v", err)
	}
	secretIn("the error of an unreachable feed", err.Error())
	secretIn("the client's log", logs.b.String()+goneLogs.b.String())
	if !strings.Contains(logs.b.String(), `"msg":"fetch retry"`) || !strings.Contains(goneLogs.b.String(), `"msg":"fetch retry"`) {
		t.Errorf("the failures were not logged, so the check above read nothing:\n%s\n%s", logs.b.String(), goneLogs.b.String())
	}
	if _, err := extract.NewClient(extract.ClientConfig{BaseURL: "ftp://" + user + ":" + password + "@host"}); err == nil {
		t.Error("an ftp base URL was accepted")
	} else {
		secretIn("the error of a refused base URL", err.Error())
	}
}
