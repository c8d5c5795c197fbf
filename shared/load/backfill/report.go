package backfill

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// IsTerminal reports whether w is a terminal, where a progress bar redrawn in
// place is readable. A file that is merely a character device (/dev/null) is
// not: only one that answers the terminal ioctl.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// report starts the progress reporter and returns its stop function, which
// draws the last state (so the bar ends at its final count).
func (b *Backfill) report(ctx context.Context, p *progress) (stop func()) {
	every := b.cfg.LogEvery
	if b.cfg.Terminal {
		every = 250 * time.Millisecond
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := b.cfg.Clock.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C():
				b.draw(ctx, p, false)
			case <-done:
				b.draw(ctx, p, true)
				return
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// draw shows progress: a bar on a terminal, a log line otherwise (the final
// state is left to the summary line).
func (b *Backfill) draw(ctx context.Context, p *progress, final bool) {
	total, done := p.total.Load(), p.done.Load()
	elapsed := p.now().Sub(p.start)
	rate := 0.0
	if elapsed > 0 {
		rate = float64(done) / elapsed.Seconds()
	}
	var eta time.Duration
	if rate > 0 && total > done {
		eta = time.Duration(float64(total-done) / rate * float64(time.Second))
	}
	if !b.cfg.Terminal {
		if !final {
			b.log.InfoContext(ctx, "backfill progress", "done", done, "total", total,
				"snapshots_per_second", round1(rate), "rows", p.rows.Load(),
				"elapsed", elapsed.Round(time.Second).String(), "eta", eta.Round(time.Second).String())
		}
		return
	}
	fmt.Fprint(b.cfg.Progress, "\r"+bar(done, total, rate, elapsed, eta))
	if final {
		fmt.Fprintln(b.cfg.Progress)
	}
}

// bar renders "[#####.....]  512/8640  5.9%  96.1/s  elapsed 5s  ETA 1m25s".
func bar(done, total int64, rate float64, elapsed, eta time.Duration) string {
	const width = 30
	frac := 1.0
	if total > 0 {
		frac = min(float64(done)/float64(total), 1)
	}
	filled := int(frac * width)
	return fmt.Sprintf("[%s%s] %d/%d %5.1f%% %7.1f/s elapsed %s ETA %s ",
		strings.Repeat("#", filled), strings.Repeat(".", width-filled), done, total, frac*100, rate,
		elapsed.Round(time.Second), eta.Round(time.Second))
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }
