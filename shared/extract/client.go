package extract

// The feed client: the HTTP client for the city's two feeds. It pages through
// the JSON endpoint (or downloads the CSV file), checks every body, retries
// what may be transient, and returns every accepted response byte for byte as
// a *snapshot.Snapshot.
//
// On data.ntpc.gov.tw an HTTP 200 is not success: the F5 WAF answers some
// requests with a "Request Rejected" HTML page and status 200. Every body is
// therefore validated and parsed before it counts.
//
// The client follows no redirect. The platform's endpoints answer where they
// are asked (docs: shared/reference/ntpc-feeds.md lists no redirect), and a
// snapshot records each response with the URL it was asked of: a followed
// redirect would store another host's bytes under the feed's URL and put
// another host's answer in the logs (it once printed credentials from an
// internal address). A redirect is an error naming where it pointed, without
// its query or user info; an operator whose platform moved sets the new
// -feed-base-url.
//
// User info in the base URL (https://user:password@host) is sent as Basic
// authentication, as net/http sends it, but never logged, quoted in an error
// or stored: every URL the client writes anywhere is the base without it.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/clock"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/ops/redact"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
)

// DefaultBaseURL is the city's open-data platform.
const DefaultBaseURL = "https://data.ntpc.gov.tw"

// MaxPageSize is the most rows the platform puts in one page, whatever size asks for.
const MaxPageSize = 1000

// OriginExtractor is the snapshot origin of a fetch made by this client.
const OriginExtractor = "extractor"

// rejectedRetries is how often a rejection page (HTML with status 200) is
// tried again. Once: the WAF may have rejected one request by chance, but the
// live feed's csv/file has answered with it for every request since 2026-09,
// and the full retry budget with backoff would only delay the caller's
// fallback to the JSON endpoint.
const rejectedRetries = 1

// ErrNoRows is returned when a fetch succeeds but holds no rows at all: the
// feeds are never legitimately empty, so storing such a snapshot would later
// read as "every lot is gone".
var ErrNoRows = errors.New("no rows")

// StatusError is a response whose status is not 2xx.
type StatusError struct {
	URL    string
	Status int
	// Head is the first bytes of the body.
	Head string
	// Location is where a redirect pointed: scheme, host and path only.
	Location string
}

func (e *StatusError) Error() string {
	if e.Status >= 300 && e.Status < 400 {
		return fmt.Sprintf("GET %s: status %d, a redirect to %s, which the feed client does not follow (is -feed-base-url still the platform's address?)",
			e.URL, e.Status, e.Location)
	}
	return fmt.Sprintf("GET %s: status %d (body starts with %q)", e.URL, e.Status, e.Head)
}

// ClientConfig configures a Client. Zero values take the defaults documented on each field.
type ClientConfig struct {
	// BaseURL is the platform's root, DefaultBaseURL if empty.
	BaseURL string
	// PageSize is the size asked for on each JSON page: 1000 if 0, at most MaxPageSize.
	PageSize int
	// MaxPages bounds the JSON pages of one fetch (20 if 0); reaching it is an
	// error, as the feed would then have grown past anything seen (~1,400 rows).
	MaxPages int
	// Timeout bounds one request, body included (30s if 0).
	Timeout time.Duration
	// Retries is how often a failed request is tried again: 4 if 0, none if negative.
	Retries int
	// BackoffBase is the first retry's backoff ceiling (500ms if 0); it doubles per
	// attempt up to BackoffMax (30s if 0). The wait is drawn uniformly below the ceiling.
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// MaxBodyBytes bounds one response body (16 MiB if 0). Real pages are ~0.5 MB.
	MaxBodyBytes int64
	// UserAgent is sent with every request.
	UserAgent string
	// HTTPClient makes the requests (a client without its own timeout if nil:
	// Timeout is applied per request through the context).
	HTTPClient *http.Client
	// Logger receives debug lines per request and warnings per retry (discarded if nil).
	Logger *slog.Logger
	// Now is the clock for fetch and response times (time.Now if nil).
	Now func() time.Time
}

// withDefaults returns c with every zero field set to its default.
func (c ClientConfig) withDefaults() ClientConfig {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	if c.PageSize == 0 {
		c.PageSize = MaxPageSize
	}
	if c.MaxPages == 0 {
		c.MaxPages = 20
	}
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Second
	}
	if c.Retries == 0 {
		c.Retries = 4
	} else if c.Retries < 0 {
		c.Retries = 0
	}
	if c.BackoffBase == 0 {
		c.BackoffBase = 500 * time.Millisecond
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = 30 * time.Second
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 16 << 20
	}
	if c.UserAgent == "" {
		c.UserAgent = "parking-newtaipei"
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports whether c, with its defaults applied, is usable.
func (c ClientConfig) Validate() error {
	c = c.withDefaults()
	shown := redact.URL(c.BaseURL)
	u, err := url.Parse(c.BaseURL)
	if err != nil {
		return fmt.Errorf("base URL %q: not a URL", shown)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("base URL %q: want http(s)://host[/path]", shown)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("base URL %q: must not carry a query or fragment", shown)
	}
	switch {
	case c.PageSize < 1 || c.PageSize > MaxPageSize:
		// A larger size would be silently capped at 1000 by the platform, and
		// "page shorter than size" would then end the fetch after the first page.
		return fmt.Errorf("page size %d: want 1 to %d", c.PageSize, MaxPageSize)
	case c.MaxPages < 1:
		return fmt.Errorf("max pages %d: want at least 1", c.MaxPages)
	case c.Timeout < 0:
		return fmt.Errorf("timeout %v is negative", c.Timeout)
	case c.BackoffBase < 0 || c.BackoffMax < c.BackoffBase:
		return fmt.Errorf("backoff base %v, max %v: want 0 <= base <= max", c.BackoffBase, c.BackoffMax)
	case c.MaxBodyBytes < 1:
		return fmt.Errorf("max body bytes %d: want at least 1", c.MaxBodyBytes)
	}
	return nil
}

// Client fetches the feeds. It is safe for concurrent use.
type Client struct {
	cfg ClientConfig
	// base is the base URL without user info: every URL built from it may
	// be logged and stored.
	base string
	// user is the base URL's user info, set on each request only.
	user *url.Userinfo
	// http is cfg.HTTPClient, following no redirect.
	http *http.Client
}

// NewClient returns a client for cfg.
func NewClient(cfg ClientConfig) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("fetch config: %w", err)
	}
	cfg = cfg.withDefaults()
	u, err := url.Parse(cfg.BaseURL)
	if err != nil { // Validate parsed it
		return nil, fmt.Errorf("fetch config: base URL %q: not a URL", redact.URL(cfg.BaseURL))
	}
	user := u.User
	u.User = nil
	hc := *cfg.HTTPClient
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Client{cfg: cfg, base: strings.TrimRight(u.String(), "/"), user: user, http: &hc}, nil
}

// Fetch fetches the whole of dataset d in format f and returns the snapshot of
// every accepted response and the rows they hold (parsed once, to accept each body).
//
// JSON pages through /api/datasets/{uuid}/json from page 0 with size always
// sent, stopping at the first page shorter than the page size. CSV downloads
// /api/datasets/{uuid}/csv/file once. Zero rows in all is ErrNoRows.
func (c *Client) Fetch(ctx context.Context, d feed.Dataset, f feed.Format) (*snapshot.Snapshot, Rows, error) {
	if d.UUID() == "" {
		return nil, Rows{}, fmt.Errorf("fetch: unknown dataset %q", d)
	}
	if _, err := feed.ParseFormat(string(f)); err != nil {
		return nil, Rows{}, fmt.Errorf("fetch %s: %w", d, err)
	}
	snap := &snapshot.Snapshot{
		Format:    snapshot.FormatName,
		Version:   snapshot.Version,
		Dataset:   d,
		Source:    f,
		FetchedAt: c.cfg.Now().UTC(),
		Origin:    OriginExtractor,
	}
	var rows Rows
	switch f {
	case feed.CSV:
		u := fmt.Sprintf("%s/api/datasets/%s/csv/file", c.base, d.UUID())
		resp, page, err := c.get(ctx, u, d, f)
		if err != nil {
			return nil, Rows{}, fmt.Errorf("fetch %s csv file: %w", d, err)
		}
		snap.Responses = append(snap.Responses, resp)
		rows = page
	case feed.JSON:
		for page := 0; ; page++ {
			if page >= c.cfg.MaxPages {
				return nil, Rows{}, fmt.Errorf("fetch %s: %d pages of %d rows and still more: the feed is larger than expected (raise MaxPages)", d, page, c.cfg.PageSize)
			}
			u := fmt.Sprintf("%s/api/datasets/%s/json?page=%d&size=%d", c.base, d.UUID(), page, c.cfg.PageSize)
			resp, rs, err := c.get(ctx, u, d, f)
			if err != nil {
				return nil, Rows{}, fmt.Errorf("fetch %s page %d: %w", d, page, err)
			}
			n := rs.Len()
			if n > c.cfg.PageSize {
				return nil, Rows{}, fmt.Errorf("fetch %s page %d: GET %s returned %d rows, more than the size %d asked for", d, page, u, n, c.cfg.PageSize)
			}
			if page > 0 && n > 0 && bytes.Equal(resp.Body, snap.Responses[page-1].Body) {
				// A server that ignores page would otherwise be read as MaxPages
				// copies of page 0.
				return nil, Rows{}, fmt.Errorf("fetch %s page %d: GET %s returned the same body as page %d (is page ignored?)", d, page, u, page-1)
			}
			snap.Responses = append(snap.Responses, resp)
			rows.Lots = append(rows.Lots, rs.Lots...)
			rows.Availability = append(rows.Availability, rs.Availability...)
			if n < c.cfg.PageSize {
				break
			}
		}
	}
	if rows.Len() == 0 {
		return nil, Rows{}, fmt.Errorf("fetch %s %s from %s: %w", d, f, c.base, ErrNoRows)
	}
	c.cfg.Logger.Debug("fetched", "dataset", string(d), "format", string(f), "responses", len(snap.Responses), "rows", rows.Len())
	return snap, rows, nil
}

// get fetches u until a response is accepted or the retries are spent, and
// returns that response and its rows.
func (c *Client) get(ctx context.Context, u string, d feed.Dataset, f feed.Format) (snapshot.Response, Rows, error) {
	rejections := 0
	for attempt := 0; ; attempt++ {
		resp, retryAfter, err := c.once(ctx, u)
		var rows Rows
		retry := false
		if err != nil {
			var re *retryable
			if errors.As(err, &re) {
				retry, err = true, re.err
			}
		} else {
			rows, err = parse(d, f, resp.Body)
			if err != nil {
				err = fmt.Errorf("GET %s: status %d: %w", u, resp.Status, err)
				if errors.Is(err, feed.ErrRejected) && rejections < rejectedRetries {
					rejections++
					retry = true
				}
			}
		}
		if err == nil {
			return resp, rows, nil
		}
		if !retry || attempt >= c.cfg.Retries {
			if retry {
				return snapshot.Response{}, Rows{}, fmt.Errorf("gave up after %d attempts: %w", attempt+1, err)
			}
			return snapshot.Response{}, Rows{}, err
		}
		wait := c.backoff(attempt, retryAfter)
		c.cfg.Logger.Warn("fetch retry", "url", u, "attempt", attempt+1, "wait", wait.String(), "err", err.Error())
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return snapshot.Response{}, Rows{}, fmt.Errorf("waiting to retry after %w: %w", err, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// parse validates a body and parses its rows.
func parse(d feed.Dataset, f feed.Format, body []byte) (Rows, error) {
	if err := feed.ValidateBody(f, body); err != nil {
		return Rows{}, err
	}
	var rows Rows
	var err error
	if d == feed.Lots {
		rows.Lots, err = feed.ParseLots(f, body)
	} else {
		rows.Availability, err = feed.ParseAvailability(f, body)
	}
	return rows, err
}

// backoff is the wait before retry attempt+1: "full jitter", uniform in
// [0, min(max, base*2^attempt)), so that clients failing together do not
// retry together. A server's Retry-After is honoured up to the same maximum.
func (c *Client) backoff(attempt int, retryAfter time.Duration) time.Duration {
	wait := clock.Backoff{First: c.cfg.BackoffBase, Max: c.cfg.BackoffMax, FullJitter: true}.Delay(attempt + 1)
	if retryAfter > wait {
		wait = min(retryAfter, c.cfg.BackoffMax)
	}
	return wait
}

// retryable marks an error worth another attempt.
type retryable struct{ err error }

func (r *retryable) Error() string { return r.err.Error() }
func (r *retryable) Unwrap() error { return r.err }

// once makes one request. Errors worth retrying come wrapped in *retryable;
// the duration is the server's Retry-After, if any.
func (c *Client) once(ctx context.Context, u string) (snapshot.Response, time.Duration, error) {
	rctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u, nil)
	if err != nil {
		return snapshot.Response{}, 0, fmt.Errorf("GET %s: %w", u, err)
	}
	req.URL.User = c.user // Basic authentication; u itself never carries it
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	req.Header.Set("Accept", "application/json, text/csv;q=0.9, */*;q=0.1")
	requested := c.cfg.Now().UTC()
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return snapshot.Response{}, 0, c.transportError(ctx, u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		// Not followed, not read, not retried: see the file comment.
		return snapshot.Response{}, 0, &StatusError{URL: u, Status: resp.StatusCode, Location: location(resp)}
	}
	limit := c.cfg.MaxBodyBytes
	if resp.ContentLength > limit {
		return snapshot.Response{}, 0, fmt.Errorf("GET %s: status %d: body of %d bytes is larger than the %d allowed", u, resp.StatusCode, resp.ContentLength, limit)
	}
	// The limit is enforced while reading: a server that lies about, or
	// omits, Content-Length cannot make us hold more than limit+1 bytes.
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return snapshot.Response{}, 0, c.transportError(ctx, u, fmt.Errorf("reading body after %d bytes: %w", len(body), err))
	}
	if int64(len(body)) > limit {
		return snapshot.Response{}, 0, fmt.Errorf("GET %s: status %d: body is larger than the %d bytes allowed", u, resp.StatusCode, limit)
	}
	c.cfg.Logger.Debug("fetch response", "url", u, "status", resp.StatusCode, "bytes", len(body), "duration", time.Since(start))
	r := snapshot.Response{
		Method:      http.MethodGet,
		URL:         u,
		Status:      resp.StatusCode,
		Header:      resp.Header.Clone(),
		RequestedAt: requested,
		ReceivedAt:  c.cfg.Now().UTC(),
		Body:        body,
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return r, 0, nil
	}
	err = &StatusError{URL: u, Status: resp.StatusCode, Head: feed.Head(body)}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		return r, retryAfter(resp.Header.Get("Retry-After")), &retryable{err}
	}
	return r, 0, err
}

// location is where a redirect points, as far as a log may say: scheme,
// host and path, without user info, query or fragment.
func location(resp *http.Response) string {
	loc, err := resp.Location()
	if err != nil {
		return "an unreadable Location"
	}
	loc.User, loc.RawQuery, loc.ForceQuery, loc.Fragment = nil, "", false, ""
	return loc.String()
}

// transportError classifies a failed request or body read. Timeouts, resets
// and cut-off bodies are retried; a cancelled caller and a certificate the
// verifier refuses are not: neither changes by asking again. net/http quotes
// the request URL, user info included, in its errors: it is replaced by u.
func (c *Client) transportError(ctx context.Context, u string, err error) error {
	err = fmt.Errorf("GET %s: %w", u, redact.Error(err, func(string) string { return u }))
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%w)", err, context.Cause(ctx))
	}
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	if errors.As(err, &certErr) || errors.As(err, &unknownAuth) || errors.As(err, &hostErr) || errors.As(err, &invalid) {
		return err
	}
	return &retryable{err}
}

// retryAfter reads a Retry-After header given in seconds; dates are ignored.
func retryAfter(h string) time.Duration {
	secs, err := strconv.Atoi(strings.TrimSpace(h))
	if err != nil || secs < 0 {
		return 0
	}
	return time.Duration(secs) * time.Second
}
