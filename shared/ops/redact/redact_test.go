package redact

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	for raw, want := range map[string]string{
		"https://feeduser:s3cr3t@data.ntpc.gov.tw/api?page=0": "https://data.ntpc.gov.tw/api?page=0",
		"https://token@example.com":                           "https://example.com",
		"https://data.ntpc.gov.tw":                            "https://data.ntpc.gov.tw",
		"sqlite://./data/queue.db":                            "sqlite://./data/queue.db",
		"./data/parking.db":                                   "./data/parking.db",
		"info":                                                "info",
		// Does not parse (a space in the host, a bad escape): cut by hand.
		"http://us er:pa%zz@host:80/p?q=1": "http://host:80/p?q=1",
		"http://user:p@ss@bad host/x":      "http://bad host/x",
	} {
		if got := URL(raw); got != want {
			t.Errorf("URL(%q) = %q, want %q", raw, got, want)
		}
	}
}

func TestPath(t *testing.T) {
	for raw, want := range map[string]string{
		"https://hc-ping.com/5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278":     "https://hc-ping.com/REDACTED",
		"https://hc-ping.com/ping-key/backup-job/fail?create=1":        "https://hc-ping.com/REDACTED",
		"https://user:pw@hc.example:8000/uuid":                         "https://hc.example:8000/REDACTED",
		"not a url at all 5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278":        "REDACTED",
		"https://hc-ping.com/%zz-5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278": "REDACTED",
	} {
		if got := Path(raw); got != want {
			t.Errorf("Path(%q) = %q, want %q", raw, got, want)
		}
	}
}

// A transport error of net/http quotes the request URL; Error rewrites it,
// and what wraps it afterwards says no more.
func TestError(t *testing.T) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://user:s3cr3t@127.0.0.1:1/x", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = http.DefaultClient.Do(req)
	if err == nil {
		t.Fatal("a request to port 1 succeeded")
	}
	err = fmt.Errorf("fetch: %w", Error(err, URL))
	if strings.Contains(err.Error(), "user") || strings.Contains(err.Error(), "s3cr3t") || !strings.Contains(err.Error(), "127.0.0.1:1/x") {
		t.Fatalf("redacted error: %v", err)
	}
	var ue interface{ Timeout() bool }
	if !errors.As(err, &ue) {
		t.Fatal("the error is no longer a *url.Error")
	}
}
