// Package web is the loader's HTTP server: for operators /healthz (the
// consume loop is alive), /readyz (the database is open and checked, and
// not failing),
// /metrics (Prometheus text format) and /stats (the database statistics as
// JSON, which `loader stats` asks for when the running loader holds the
// database's exclusive lock); for programs the read API under /api/v1/; for
// people the live map at / (package livemap). It also holds the client side
// of the operators' endpoints, for `loader healthcheck` and `loader stats`.
package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/load/consume"
	"github.com/parking-newtaipei/parking-newtaipei/shared/ops/metrics"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
	"github.com/parking-newtaipei/parking-newtaipei/shared/web/livemap"
)

// Config configures a Server.
type Config struct {
	// Addr is the listen address, like 127.0.0.1:8080 (port 0 picks one).
	Addr    string
	Logger  *slog.Logger
	Metrics *metrics.Registry
	// LiveWithin is how recent the loop's last activity must be for /healthz
	// to answer 200. Use LiveWindow(poll wait).
	LiveWithin time.Duration
	// Busy reports maintenance that keeps the consume loop from reporting
	// while it runs (the start-up backup, a reconcile, a backup that holds
	// the database): what runs ("" when nothing does) and when such work last
	// ended. /healthz answers 200 naming the work while it runs and counts its
	// end as activity, so maintenance never makes a healthy loader look dead.
	// The caller bounds that work with a deadline; nil: no maintenance.
	Busy func() (what string, ended time.Time)
	// Stats reads the database statistics for /stats and /api/v1/stats; nil
	// serves 404.
	Stats func(ctx context.Context) (sqlite.Stats, error)
	// Reads serves the read API; nil answers 404 there.
	Reads Reads
	// Map is the live map's settings; Map.Off leaves / unserved.
	Map livemap.Config
	// Now is the clock (nil: time.Now); it must agree with the registry's.
	Now func() time.Time
}

// LiveWindow is how long the consume loop may go without reporting anything
// before it counts as stuck: an empty long poll reports every pollWait, so
// two of them plus a margin for a slow batch and a slow receive retry.
func LiveWindow(pollWait time.Duration) time.Duration {
	return 2*pollWait + 30*time.Second
}

// ShutdownGrace is how long a stop gives requests in flight (Shutdown's
// context): they are short reads, and the stop has a deadline.
const ShutdownGrace = 5 * time.Second

// Server serves the endpoints. Start it after the database is open.
type Server struct {
	cfg   Config
	log   *slog.Logger
	ready atomic.Bool
	// failing is why the loader cannot do its work now ("" when it can).
	failing atomic.Pointer[string]
	srv     *http.Server

	mu   sync.Mutex
	ln   net.Listener
	done chan struct{}
}

// New returns a server that is not ready until SetReady(true).
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New(cfg.Now)
	}
	if cfg.LiveWithin <= 0 {
		cfg.LiveWithin = LiveWindow(consume.DefaultWait)
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      30 * time.Second,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	return s
}

// SetReady says whether /readyz answers 200: true once the database is open
// and its start-up checks passed, false again when the loader begins to stop.
func (s *Server) SetReady(ok bool) { s.ready.Store(ok) }

// SetFailing says why the loader cannot do its work for now, its database
// failing (a full disk, an I/O error), or "" once it can again. Meanwhile
// /readyz answers 503 with the reason, whatever SetReady said, while
// /healthz still answers 200: the loop is alive and retrying, and a restart
// would not help.
func (s *Server) SetFailing(reason string) { s.failing.Store(&reason) }

// Handler returns the endpoints' handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /metrics", s.metrics)
	mux.HandleFunc("GET /stats", s.stats)
	s.registerAPI(mux)
	if !s.cfg.Map.Off {
		mux.Handle("GET /", livemap.Handler(s.cfg.Map))
	}
	return cors(mux)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	last := s.cfg.Metrics.LastActivity()
	if s.cfg.Busy != nil {
		what, ended := s.cfg.Busy()
		if what != "" {
			text(w, http.StatusOK, "ok: "+what+" running\n")
			return
		}
		if ended.After(last) {
			last = ended
		}
	}
	idle := s.cfg.Now().Sub(last)
	if idle > s.cfg.LiveWithin {
		text(w, http.StatusServiceUnavailable, fmt.Sprintf("consume loop silent for %s (limit %s)\n", idle.Round(time.Second), s.cfg.LiveWithin))
		return
	}
	text(w, http.StatusOK, "ok\n")
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if !s.ready.Load() {
		text(w, http.StatusServiceUnavailable, "not ready\n")
		return
	}
	if why := s.failing.Load(); why != nil && *why != "" {
		text(w, http.StatusServiceUnavailable, "not ready: "+*why+"\n")
		return
	}
	text(w, http.StatusOK, "ok\n")
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	if err := s.cfg.Metrics.WritePrometheus(w); err != nil {
		s.log.Debug("metrics response not written", "err", err)
	}
}

func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Stats == nil {
		http.NotFound(w, r)
		return
	}
	// Stats waits for the database connection, which an apply may hold.
	ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
	defer cancel()
	st, err := s.cfg.Stats(ctx)
	if err != nil {
		s.log.Warn("stats for /stats failed", "err", err)
		text(w, http.StatusInternalServerError, "stats: "+err.Error()+"\n")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(st); err != nil {
		s.log.Debug("stats response not written", "err", err)
	}
}

func text(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body)
}

// Start listens on the configured address and serves in the background. It
// returns once the address is bound, so a bad or taken address fails the
// start rather than a later request.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("http server: listen %s: %w", s.cfg.Addr, err)
	}
	done := make(chan struct{})
	s.mu.Lock()
	s.ln, s.done = ln, done
	s.mu.Unlock()
	go func() {
		defer close(done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	s.log.Info("http server listening", "addr", ln.Addr().String())
	return nil
}

// Addr returns the bound address (useful with port 0), or "" before Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Shutdown stops accepting connections and waits, until ctx is done, for
// requests in flight.
func (s *Server) Shutdown(ctx context.Context) error {
	s.SetReady(false)
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done == nil {
		return nil
	}
	if err := s.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("http server: shutdown: %w", err)
	}
	<-done
	return nil
}

// get makes one request bounded by timeout: a health check that hangs is a failed one.
func get(ctx context.Context, addr, path string, timeout time.Duration) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("GET http://%s%s: %w", addr, path, err)
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// Check asks a running loader's /healthz and returns nil on 200.
func Check(ctx context.Context, addr string, timeout time.Duration) error {
	resp, err := get(ctx, addr, "/healthz", timeout)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET http://%s/healthz: %s: %s", addr, resp.Status, body)
	}
	return nil
}

// FetchStats asks a running loader for its database statistics.
func FetchStats(ctx context.Context, addr string, timeout time.Duration) (sqlite.Stats, error) {
	var st sqlite.Stats
	resp, err := get(ctx, addr, "/stats", timeout)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return st, fmt.Errorf("GET http://%s/stats: %s: %s", addr, resp.Status, body)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&st); err != nil {
		return st, fmt.Errorf("GET http://%s/stats: decode: %w", addr, err)
	}
	return st, nil
}
