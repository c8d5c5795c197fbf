// Package reliability holds the project's reliability and security proof:
// crash, duplicate, reorder, fault and hostile-input tests of the real
// binaries and packages (see docs/RELIABILITY.md). Only the fault-injecting
// proxy below is not a test file, so that it could serve other tests too.
package reliability

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"time"
)

// Fault is what the proxy does to one request instead of passing it on faithfully.
type Fault int

const (
	// Status5xx answers 503 without asking the upstream.
	Status5xx Fault = iota + 1
	// Reset closes the connection with a TCP RST before any answer.
	Reset
	// Slow waits SlowDelay, then passes the request on.
	Slow
	// Truncate passes the request on, announces the whole body's length,
	// sends half of it and closes the connection.
	Truncate
)

func (f Fault) String() string {
	return map[Fault]string{Status5xx: "5xx", Reset: "reset", Slow: "slow", Truncate: "truncate"}[f]
}

// Proxy is a fault-injecting HTTP proxy on 127.0.0.1 in front of one
// upstream (a feed, S3 or SQS server). It records every request it sees.
type Proxy struct {
	URL       string
	SlowDelay time.Duration

	upstream *url.URL
	client   *http.Client
	srv      *httptest.Server

	mu       sync.Mutex
	rules    []*rule
	seen     []Request
	injected map[Fault]int
}

// Request is what the proxy saw of one request.
type Request struct {
	Method, Path, Query string
	Header              http.Header
	Fault               Fault
}

type rule struct {
	match func(*http.Request) bool
	fault Fault
	left  int
}

// NewProxy starts a proxy in front of upstream (scheme://host:port).
func NewProxy(upstream string) (*Proxy, error) {
	u, err := url.Parse(upstream)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("proxy upstream %q: not a URL", upstream)
	}
	p := &Proxy{
		upstream: u, SlowDelay: 2 * time.Second, injected: map[Fault]int{},
		// No redirects, no compression: the client's bytes and the server's
		// bytes pass through as they are (signatures cover them).
		client: &http.Client{
			Transport:     &http.Transport{DisableCompression: true, Proxy: nil},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	p.URL = p.srv.URL
	return p, nil
}

// Close stops the proxy.
func (p *Proxy) Close() { p.srv.CloseClientConnections(); p.srv.Close() }

// Inject makes the next n requests for which match is true (nil: any) suffer f.
func (p *Proxy) Inject(f Fault, n int, match func(*http.Request) bool) {
	if match == nil {
		match = func(*http.Request) bool { return true }
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, &rule{match: match, fault: f, left: n})
}

// Clear drops the faults not yet injected.
func (p *Proxy) Clear() { p.mu.Lock(); p.rules = nil; p.mu.Unlock() }

// Requests returns every request seen so far.
func (p *Proxy) Requests() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Request(nil), p.seen...)
}

// Injected returns how many faults of each kind were injected.
func (p *Proxy) Injected() map[Fault]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[Fault]int{}
	for k, v := range p.injected {
		out[k] = v
	}
	return out
}

func (p *Proxy) pick(r *http.Request) Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	var f Fault
	for _, ru := range p.rules {
		if ru.left > 0 && ru.match(r) {
			ru.left--
			f = ru.fault
			p.injected[f]++
			break
		}
	}
	p.seen = append(p.seen, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Fault: f})
	return f
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "proxy: read request: "+err.Error(), http.StatusBadGateway)
		return
	}
	// The fault is chosen after the body is read, so matchers may look at headers only.
	f := p.pick(r)
	switch f {
	case Status5xx:
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "fault injected by the reliability proxy: 503\n")
		return
	case Reset:
		reset(w)
		return
	case Slow:
		select {
		case <-time.After(p.SlowDelay):
		case <-r.Context().Done():
			return
		}
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, p.upstream.Scheme+"://"+p.upstream.Host+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, "proxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	out.Header = r.Header.Clone()
	// The client signed the Host it sent (AWS SigV4); keep it.
	out.Host = r.Host
	out.ContentLength = int64(len(body))
	resp, err := p.client.Do(out)
	if err != nil {
		http.Error(w, "proxy: upstream: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		http.Error(w, "proxy: upstream body: "+err.Error(), http.StatusBadGateway)
		return
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(data)))
	w.WriteHeader(resp.StatusCode)
	if f == Truncate && len(data) > 1 {
		w.Write(data[:len(data)/2])
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
		reset(w)
		return
	}
	w.Write(data)
}

// reset closes the client's connection abruptly (RST, not FIN).
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("proxy: response writer cannot be hijacked")
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}
