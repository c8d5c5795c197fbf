package main

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// maintenanceLimit bounds maintenance work: a backup or reconcile still
// running after this long is abandoned and consuming goes on, so that
// reporting liveness during maintenance cannot hide a stuck loader for
// longer. A VACUUM INTO of a few GB on EFS takes minutes, not half an hour.
const maintenanceLimit = 30 * time.Minute

// maintenance tracks work that keeps the consume loop from polling while it
// runs: the start-up backup and reconcile (before the loop starts) and the
// periodic backup (which holds the database, so applies wait). The HTTP
// server's /healthz asks it (web.Config.Busy), so that a large database on
// EFS never makes a healthy loader look dead and ECS restart it in a loop.
type maintenance struct {
	mu      sync.Mutex
	running []string
	ended   time.Time
}

// state is web.Config.Busy.
func (m *maintenance) state() (string, time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return strings.Join(m.running, ", "), m.ended
}

// run runs fn as maintenance named what, within limit. Work cut off by the
// limit is logged and abandoned, and run returns nil: the loader consumes on.
// Any other error, a stop of the loader's ctx included, is fn's to return.
func (m *maintenance) run(ctx context.Context, log *slog.Logger, what string, limit time.Duration, fn func(context.Context) error) error {
	m.mu.Lock()
	m.running = append(m.running, what)
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		for i, w := range m.running {
			if w == what {
				m.running = append(m.running[:i], m.running[i+1:]...)
				break
			}
		}
		m.ended = time.Now()
	}()
	wctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	err := fn(wctx)
	if err != nil && ctx.Err() == nil && errors.Is(wctx.Err(), context.DeadlineExceeded) {
		log.Error(what+" abandoned: it ran past the maintenance limit; consuming goes on", "limit", limit.String(), "err", err)
		return nil
	}
	return err
}
