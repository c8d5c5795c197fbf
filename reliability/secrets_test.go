package reliability

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/parking-newtaipei/parking-newtaipei/internal/feedtest"
)

// TestSecretsStayOutOfLogsAndSnapshots (issue 13, item 8): the feed's base
// URL carries user:password@ and the healthcheck ping URLs carry their
// tokens. The real extractor and `loader local`, at debug level, fetch
// through it, fail against it (the feed answering 503, then unreachable),
// and ping a check that refuses and one that is unreachable. The secrets
// are still used (the feed sees the Basic credentials), but no log line
// and no stored snapshot holds any of them.
func TestSecretsStayOutOfLogsAndSnapshots(t *testing.T) {
	const user, password = "feeduser", "feed-s3cr3t"
	const lotsToken, availToken = "5bf66975-lots-token", "0c4e2b1a-availability-token"
	secrets := []string{user, password, lotsToken, availToken}

	fd := feedtest.NewServer(t)
	upstream, err := url.Parse(fd.URL)
	if err != nil {
		t.Fatal(err)
	}
	var authed, unauthed atomic.Int32
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != password {
			unauthed.Add(1)
			http.Error(w, "credentials required", http.StatusUnauthorized)
			return
		}
		authed.Add(1)
		httputil.NewSingleHostReverseProxy(upstream).ServeHTTP(w, r)
	}))
	defer front.Close()
	check := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no such check", http.StatusNotFound)
	}))
	defer check.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	withCredentials := func(base string) string {
		return strings.Replace(base, "http://", "http://"+user+":"+password+"@", 1)
	}

	w := newWorld(t)
	env := func(feedURL string) []string {
		return baseEnv("PARKING_STORE=file://"+w.store.Dir(), "PARKING_QUEUE=sqlite://"+w.queuePath(),
			"PARKING_FEED_BASE_URL="+feedURL, "LOG_LEVEL=debug",
			"HEALTHCHECK_PARKING_URL="+check.URL+"/"+lotsToken,
			"HEALTHCHECK_AVAILABILITY_URL="+gone.URL+"/"+availToken)
	}
	var logs []string
	var exits []int
	extractor := func(feedURL, dataset string) int {
		code, log := run(t, env(feedURL), "extractor", "fetch", "-dataset", dataset)
		logs, exits = append(logs, log), append(exits, code)
		return code
	}
	if code := extractor(withCredentials(front.URL), "lots"); code != 0 {
		t.Fatalf("extractor exited %d through the credentials; log:\n%s", code, logs[len(logs)-1])
	}
	fd.FailNext(100, http.StatusServiceUnavailable)
	if code := extractor(withCredentials(front.URL), "availability"); code != 1 {
		t.Fatalf("extractor exited %d against a failing feed, want 1; log:\n%s", code, logs[len(logs)-1])
	}
	fd.FailNext(0, 0)
	if code := extractor(withCredentials(gone.URL), "availability"); code != 1 {
		t.Fatalf("extractor exited %d against an unreachable feed, want 1; log:\n%s", code, logs[len(logs)-1])
	}

	// loader local: its own fetches, pings and debug configuration.
	dir := t.TempDir()
	local := start(t, append(loaderEnv(dir, "file://"+w.store.Dir(), "sqlite://"+filepath.Join(dir, "queue.db")),
		"PARKING_FEED_BASE_URL="+withCredentials(front.URL), "LOG_LEVEL=debug",
		"HEALTHCHECK_PARKING_URL="+check.URL+"/"+lotsToken,
		"HEALTHCHECK_AVAILABILITY_URL="+gone.URL+"/"+availToken), "loader", "local")
	for range 2 {
		if _, ok := local.next(t, "snapshot applied"); !ok {
			t.Fatalf("loader local ended before applying its fetches; log:\n%s", local.log())
		}
	}
	if err := local.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code := local.exit(t)
	logs, exits = append(logs, local.log()), append(exits, code)
	if code != 0 {
		t.Fatalf("loader local exited %d; log:\n%s", code, local.log())
	}

	// The logs said what happened (so the search below read something), and
	// the credentials were used.
	all := strings.Join(logs, "")
	for _, want := range []string{`"msg":"effective configuration"`, `"msg":"fetch failed"`, "healthcheck ping refused", "healthcheck ping failed", front.URL} {
		if !strings.Contains(all, want) {
			t.Errorf("no log line says %q; logs:\n%s", want, all)
		}
	}
	if authed.Load() == 0 || unauthed.Load() != 0 {
		t.Errorf("%d requests with the credentials, %d without: the credentials were not used", authed.Load(), unauthed.Load())
	}
	found := 0
	for i, l := range logs {
		for _, s := range secrets {
			if n := strings.Count(l, s); n > 0 {
				found += n
				t.Errorf("run %d logged %q %d times:\n%s", i+1, s, n, l)
			}
		}
	}
	snaps := storedSnapshots(t, w.store)
	if len(snaps) < 3 {
		t.Fatalf("%d snapshots stored, want the extractor's and loader local's (3)", len(snaps))
	}
	urls := 0
	for _, sn := range snaps {
		for _, r := range sn.Responses {
			urls++
			if !strings.HasPrefix(r.URL, front.URL+"/") {
				t.Errorf("stored response URL %q, want the feed's URL without user info", r.URL)
			}
		}
	}
	// Every stored byte, decoded, and the raw files too.
	err = filepath.Walk(w.store.Dir(), func(path string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, s := range secrets {
			if strings.Contains(string(raw), s) {
				found++
				t.Errorf("stored file %s holds %q", path, s)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, sn := range snaps {
		for _, r := range sn.Responses {
			for _, s := range secrets {
				if strings.Contains(r.URL, s) || strings.Contains(string(r.Body), s) {
					found++
					t.Errorf("a stored snapshot holds %q: %s", s, r.URL)
				}
			}
		}
	}
	report(t, "secrets: runs=%d exits=%v snapshots_checked=%d response_urls_checked=%d authenticated_requests=%d secrets_found=%d",
		len(logs), exits, len(snaps), urls, authed.Load(), found)
}
