package reliability

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	chaosIterations = flag.Int("chaos.iterations", 1, "rounds of each chaos scenario (each round: a fresh database, new kill points and delivery orders)")
	chaosSeed       = flag.Uint64("chaos.seed", 0, "seed of the chaos scenarios (0: from the clock; the seed is logged so a failure can be replayed)")
)

// binDir holds the extractor and loader, built once: the chaos and fault
// tests run them as real processes, so SIGKILL and exit codes are real.
var (
	binDir   string
	buildErr error
)

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "reliability-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cmd := exec.Command("go", "build", "-o", dir+string(os.PathSeparator), "../extractor", "../loader")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		// Only the tests that need the binaries fail; the in-process ones still run.
		buildErr = fmt.Errorf("build the binaries: %w\n%s", err, out.String())
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func bin(t testing.TB, name string) string {
	t.Helper()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, name)
}

// proc is a binary running in the background; its stderr (the JSON log) is
// read line by line, so tests synchronise on what the process says it did.
type proc struct {
	cmd   *exec.Cmd
	lines chan string
	mu    sync.Mutex
	all   strings.Builder
	done  chan struct{}
	code  int
}

func start(t testing.TB, env []string, name string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin(t, name), args...)
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{cmd: cmd, lines: make(chan string, 4096), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 4<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.all.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default: // nobody is reading: the line is kept in all
			}
		}
		close(p.lines)
		err := cmd.Wait()
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit):
			p.code = exit.ExitCode()
		case err != nil:
			p.code = -1
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	return p
}

func (p *proc) log() string { p.mu.Lock(); defer p.mu.Unlock(); return p.all.String() }

// next returns the next log line containing any of subs, or "" with false
// once the process has ended. The deadline only guards against a hung test.
func (p *proc) next(t testing.TB, subs ...string) (string, bool) {
	t.Helper()
	timeout := time.After(90 * time.Second)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				return "", false
			}
			for _, s := range subs {
				if strings.Contains(line, s) {
					return line, true
				}
			}
		case <-timeout:
			t.Fatalf("no log line with %q within 90s; log:\n%s", subs, p.log())
		}
	}
}

// exit waits for the process to end and returns its exit code (-9 style
// codes are reported by ExitCode as -1 for a signal).
func (p *proc) exit(t testing.TB) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(120 * time.Second):
		t.Fatalf("process did not exit within 120s; log:\n%s", p.log())
	}
	return p.code
}

// run runs a binary to completion and returns its exit code and stderr.
func run(t testing.TB, env []string, name string, args ...string) (int, string) {
	t.Helper()
	p := start(t, env, name, args...)
	for {
		if _, ok := p.next(t, "\x00never"); !ok {
			break
		}
	}
	return p.exit(t), p.log()
}

// baseEnv is a clean environment: nothing from the developer's shell leaks
// into the binaries (and nothing from it can appear in their logs).
func baseEnv(extra ...string) []string {
	return append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}, extra...)
}
