// Package healthping pings healthchecks.io-style URLs after a run, like the
// original project: the base URL on success or skip, URL + "/fail" on failure.
// A ping that fails is a warning, never a failure of the run. A ping URL is
// a credential (anyone holding it can report the job healthy), so a log line
// names only its scheme and host.
package healthping

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/ops/redact"
)

// Pinger sends pings. The zero value is usable.
type Pinger struct {
	Client *http.Client
	Logger *slog.Logger
}

// Ping reports a run to url (nothing when url is empty). detail, when given,
// is sent as the body so the check's log shows why.
func (p Pinger) Ping(ctx context.Context, url string, failed bool, detail string) {
	if url == "" {
		return
	}
	log := p.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	client := p.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	target := strings.TrimRight(url, "/")
	if failed {
		target += "/fail"
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if len(detail) > 10_000 {
		detail = detail[:10_000]
	}
	shown := redact.Path(target)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(detail))
	if err != nil {
		log.Warn("healthcheck ping: bad URL", "url", shown, "err", redact.Error(err, redact.Path))
		return
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := client.Do(req)
	if err != nil {
		log.Warn("healthcheck ping failed", "url", shown, "err", redact.Error(err, redact.Path))
		return
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		log.Warn("healthcheck ping refused", "status", resp.StatusCode, "url", shown)
		return
	}
	log.Debug("healthcheck pinged", "failed", failed)
}
