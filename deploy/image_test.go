package deploy

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/parking-newtaipei/parking-newtaipei/internal/ci"
)

// There is no Docker engine on the machines that run these tests, so the images are checked in parts:
// the Dockerfiles parse and say the right things (dockerfile_test.go), and the binaries they would
// contain are built here exactly as the Dockerfiles build them, then shown to be static and to start in
// an empty root as the image's user.

// programs are the main packages the two images ship, relative to the module root.
var programs = []string{"extractor", "loader"}

// testVersion is stamped with -X main.version, as the Dockerfiles stamp ${VERSION}.
const testVersion = "v0.0.0-deploytest"

const nonroot = 65532 // uid and gid of distroless's nonroot user, and of the EFS access point

var (
	buildRoot string // one temporary directory for every build of this test binary
	buildsMu  sync.Mutex
	builds    = map[string]*archBuild{}
)

type archBuild struct {
	once sync.Once
	dir  string
	out  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildRoot != "" {
		os.RemoveAll(buildRoot)
	}
	os.Exit(code)
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found above deploy/: %v", err)
	}
	return root
}

// requirePrograms fails the test when a main package the images ship is missing: the image would
// have nothing to build, which is a failure wherever it is found, not a reason to skip.
func requirePrograms(t *testing.T) {
	t.Helper()
	for _, p := range programs {
		files, _ := filepath.Glob(filepath.Join(moduleRoot(t), p, "*.go"))
		if len(files) == 0 {
			t.Fatalf("./%s has no Go files: the image would have nothing to build", p)
		}
	}
}

// buildFor cross-compiles both programs for linux/arch once per test binary, with the Dockerfiles'
// flags, and returns the directory holding them. One `go build` for both keeps the CPU cost down.
func buildFor(t *testing.T, arch string) string {
	t.Helper()
	requirePrograms(t)
	buildsMu.Lock()
	b, ok := builds[arch]
	if !ok {
		b = &archBuild{}
		builds[arch] = b
	}
	if buildRoot == "" {
		dir, err := os.MkdirTemp("", "deploy-binaries-")
		if err != nil {
			buildsMu.Unlock()
			t.Fatal(err)
		}
		buildRoot = dir
	}
	root := buildRoot
	buildsMu.Unlock()

	b.once.Do(func() {
		b.dir = filepath.Join(root, arch)
		if b.err = os.MkdirAll(b.dir, 0o755); b.err != nil {
			return
		}
		// The go command on PATH: the one running these tests.
		goTool := "go"
		args := []string{"build", "-trimpath", "-ldflags", "-s -w -X main.version=" + testVersion, "-o", b.dir + string(filepath.Separator)}
		for _, p := range programs {
			args = append(args, "./"+p)
		}
		cmd := exec.Command(goTool, args...)
		cmd.Dir = moduleRoot(t)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		b.err = cmd.Run()
		b.out = out.String()
	})
	if b.err != nil {
		t.Fatalf("CGO_ENABLED=0 GOOS=linux GOARCH=%s go build -trimpath ./extractor ./loader: %v\n%s", arch, b.err, b.out)
	}
	return b.dir
}

func TestBinariesBuildStaticForBothArchitectures(t *testing.T) {
	machines := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			dir := buildFor(t, arch)
			for _, p := range programs {
				f, err := elf.Open(filepath.Join(dir, p))
				if err != nil {
					t.Fatalf("%s: %v", p, err)
				}
				defer f.Close()
				if f.Machine != machines[arch] {
					t.Errorf("%s: ELF machine %v, want %v", p, f.Machine, machines[arch])
				}
				// A PT_INTERP header names the dynamic loader; distroless/static and scratch have none.
				for _, prog := range f.Progs {
					if prog.Type == elf.PT_INTERP {
						t.Errorf("%s/%s: has a PT_INTERP header: dynamically linked", arch, p)
					}
				}
				libs, err := f.ImportedLibraries()
				if err != nil {
					t.Fatalf("%s: %v", p, err)
				}
				if len(libs) > 0 {
					t.Errorf("%s/%s: needs shared libraries %v", arch, p, libs)
				}
				// -trimpath: the build machine's paths must not be in the binary.
				raw, err := os.ReadFile(filepath.Join(dir, p))
				if err != nil {
					t.Fatal(err)
				}
				if bytes.Contains(raw, []byte(moduleRoot(t))) {
					t.Errorf("%s/%s: contains the build directory %s (was -trimpath dropped?)", arch, p, moduleRoot(t))
				}
			}
		})
	}
}

// TestBinaryStartsInEmptyRootAsNonroot runs each binary the way the image does: alone in its root file
// system (no libc, no /etc, no shell) as uid/gid 65532. It needs root for chroot and setuid.
func TestBinaryStartsInEmptyRootAsNonroot(t *testing.T) {
	if runtime.GOOS != "linux" {
		ci.SkipOrFail(t, "chroot test needs linux, this is %s", runtime.GOOS)
	}
	if os.Geteuid() != 0 {
		ci.SkipOrFail(t, "chroot and setuid to %d need root; running as uid %d", nonroot, os.Geteuid())
	}
	dir := buildFor(t, runtime.GOARCH)
	for _, p := range programs {
		t.Run(p, func(t *testing.T) {
			jail := t.TempDir()
			// The jail is the process's "/": uid 65532 must be able to search it and run the binary.
			if err := os.Chmod(jail, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := copyFile(filepath.Join(dir, p), filepath.Join(jail, p), 0o755); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("/"+p, "-version")
			cmd.Dir = "/"
			cmd.Env = []string{} // the image sets nothing the binary needs to print its version
			cmd.SysProcAttr = &syscall.SysProcAttr{
				Chroot:     jail,
				Credential: &syscall.Credential{Uid: nonroot, Gid: nonroot, Groups: []uint32{}},
			}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if err != nil {
				t.Fatalf("%s -version in an empty root as %d: %v\nstdout: %s\nstderr: %s", p, nonroot, err, stdout.String(), stderr.String())
			}
			if out := stdout.String() + stderr.String(); !strings.Contains(out, testVersion) {
				t.Errorf("%s -version printed %q, want it to contain %q", p, out, testVersion)
			}
		})
	}
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}
