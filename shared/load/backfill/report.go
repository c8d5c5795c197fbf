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
//
// The total is what the lister has found so far: exact once the listing has
// ended (it runs ahead, so soon), "at least" before, when no ETA is shown
// rather than a guess.
func (b *Backfill) draw(ctx context.Context, p *progress, final bool) {
	total, done, listed := p.total.Load(), p.done.Load(), p.listed.Load()
	elapsed := p.now().Sub(p.start)
	rate := 0.0
	if elapsed > 0 {
		rate = float64(done) / elapsed.Seconds()
	}
	eta := "after the listing"
	if listed {
		var d time.Duration
		if rate > 0 && total > done {
			d = time.Duration(float64(total-done) / rate * float64(time.Second))
		}
		eta = d.Round(time.Second).String()
	}
	if !b.cfg.Terminal {
		if !final {
			b.log.InfoContext(ctx, "backfill progress", "done", done, "total", total, "total_final", listed,
				"listed_until", time.Unix(p.listedUntil.Load(), 0).UTC().Format(time.RFC3339),
				"snapshots_per_second", round1(rate), "rows", p.rows.Load(),
				"elapsed", elapsed.Round(time.Second).String(), "eta", eta)
		}
		return
	}
	fmt.Fprint(b.cfg.Progress, "\r"+bar(done, total, listed, rate, elapsed, eta))
	if final {
		fmt.Fprintln(b.cfg.Progress)
	}
}

// bar renders "[#####.....]  512/8640  5.9%  96.1/s  elapsed 5s  ETA 1m25s",
// or, while the listing goes on, "512/≥8640 ... ETA after the listing".
func bar(done, total int64, final bool, rate float64, elapsed time.Duration, eta string) string {
	const width = 30
	frac := 1.0
	if total > 0 {
		frac = min(float64(done)/float64(total), 1)
	}
	filled := int(frac * width)
	atLeast := ""
	if !final {
		atLeast = "≥"
	}
	return fmt.Sprintf("[%s%s] %d/%s%d %5.1f%% %7.1f/s elapsed %s ETA %s ",
		strings.Repeat("#", filled), strings.Repeat(".", width-filled), done, atLeast, total, frac*100, rate,
		elapsed.Round(time.Second), eta)
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }
