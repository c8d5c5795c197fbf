package deploy

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

type dockerfile struct {
	name   string
	ast    *parser.Result
	stages []instructions.Stage
}

// parseDockerfile parses with BuildKit's own parser, the one `docker buildx build` uses, so a file
// that passes here is one BuildKit accepts (syntax, flags, --mount options).
func parseDockerfile(t *testing.T, name string) dockerfile {
	t.Helper()
	f, err := os.Open(filepath.Join(moduleRoot(t), name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for _, w := range res.Warnings {
		t.Errorf("%s: parser warning: %s", name, w.Short)
	}
	stages, _, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	// RUN --mount options are only decoded when the command is expanded; an identity expander keeps
	// the text as written (ARGs unresolved) so the test sees what the file says.
	identity := func(word string) (string, error) { return word, nil }
	for _, st := range stages {
		for _, c := range st.Commands {
			if r, ok := c.(*instructions.RunCommand); ok {
				if err := r.Expand(identity); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
			}
		}
	}
	return dockerfile{name, res, stages}
}

func TestDockerfiles(t *testing.T) {
	for _, p := range programs {
		name := "Dockerfile." + p
		t.Run(name, func(t *testing.T) {
			d := parseDockerfile(t, name)
			raw, err := os.ReadFile(filepath.Join(moduleRoot(t), name))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(raw), "# syntax=docker/dockerfile:1\n") {
				t.Error("first line should pin the frontend: # syntax=docker/dockerfile:1")
			}
			if len(d.stages) < 2 {
				t.Fatalf("%d stages: want a build stage and a separate runtime stage", len(d.stages))
			}
			build, final := d.stages[0], d.stages[len(d.stages)-1]

			// Build stage: Go 1.26 on the builder's platform, cross-compiling for the target.
			if !strings.HasPrefix(build.BaseName, "golang:1.26") {
				t.Errorf("build stage FROM %s, want golang:1.26", build.BaseName)
			}
			if build.Platform != "$BUILDPLATFORM" {
				t.Errorf("build stage --platform=%q, want $BUILDPLATFORM (cross-compile, no emulation)", build.Platform)
			}
			args := map[string]bool{}
			var goBuild *instructions.RunCommand
			for _, c := range build.Commands {
				switch c := c.(type) {
				case *instructions.ArgCommand:
					for _, a := range c.Args {
						args[a.Key] = true
					}
				case *instructions.RunCommand:
					line := strings.Join(c.CmdLine, " ")
					if strings.Contains(line, "go build") {
						goBuild = c
					}
				case *instructions.AddCommand:
					t.Errorf("ADD in the build stage: %v (use COPY)", c.SourcePaths)
				}
			}
			for _, a := range []string{"TARGETOS", "TARGETARCH", "VERSION"} {
				if !args[a] {
					t.Errorf("build stage does not declare ARG %s", a)
				}
			}
			if goBuild == nil {
				t.Fatal("no RUN ... go build in the build stage")
			}
			line := strings.Join(goBuild.CmdLine, " ")
			for _, want := range []string{"CGO_ENABLED=0", "GOOS=$TARGETOS", "GOARCH=$TARGETARCH", "-trimpath",
				"-X main.version=${VERSION}", "-o /out/" + p, "./" + p} {
				if !strings.Contains(line, want) {
					t.Errorf("go build line lacks %q: %s", want, line)
				}
			}
			var buildCaches []string
			for _, m := range instructions.GetMounts(goBuild) {
				if m.Type == instructions.MountTypeCache {
					buildCaches = append(buildCaches, m.Target)
				}
			}
			for _, want := range []string{"/go/pkg/mod", "/root/.cache/go-build"} {
				if !slices.Contains(buildCaches, want) {
					t.Errorf("go build does not mount a cache at %s (has %v)", want, buildCaches)
				}
			}

			// Final stage: a static, non-root base with only the binary added.
			if final.BaseName != "gcr.io/distroless/static-debian12:nonroot" && final.BaseName != "scratch" {
				t.Errorf("final stage FROM %s, want distroless static nonroot (or scratch)", final.BaseName)
			}
			var user string
			var entrypoint *instructions.EntrypointCommand
			var health *instructions.HealthCheckCommand
			envs := map[string]string{}
			for _, c := range final.Commands {
				switch c := c.(type) {
				case *instructions.UserCommand:
					user = c.User
				case *instructions.EntrypointCommand:
					entrypoint = c
				case *instructions.HealthCheckCommand:
					health = c
				case *instructions.EnvCommand:
					for _, kv := range c.Env {
						envs[kv.Key] = kv.Value
					}
				case *instructions.RunCommand:
					t.Errorf("RUN in the final stage (%s): the runtime image has no shell", strings.Join(c.CmdLine, " "))
				case *instructions.AddCommand:
					t.Errorf("ADD in the final stage: %v", c.SourcePaths)
				case *instructions.CopyCommand:
					if c.From != build.Name {
						t.Errorf("final stage copies %v from %q, want only the build stage's binary", c.SourcePaths, c.From)
					}
				}
			}
			if user != "65532:65532" {
				t.Errorf("final USER %q, want 65532:65532", user)
			}
			if entrypoint == nil || entrypoint.PrependShell || !slices.Equal(entrypoint.CmdLine, []string{"/" + p}) {
				t.Errorf("ENTRYPOINT should be the exec form [\"/%s\"], got %+v", p, entrypoint)
			}
			if p == "loader" {
				if health == nil || health.Health == nil || !slices.Equal(health.Health.Test, []string{"CMD", "/loader", "healthcheck"}) {
					t.Errorf("loader HEALTHCHECK should be exec form CMD [\"/loader\", \"healthcheck\"], got %+v", health)
				}
				if envs["PARKING_HTTP_ADDR"] != "127.0.0.1:8080" {
					t.Errorf("loader image PARKING_HTTP_ADDR %q, want 127.0.0.1:8080", envs["PARKING_HTTP_ADDR"])
				}
			}

			// No stage may ADD from a URL: unpinned bytes from the network into the image.
			for _, st := range d.stages {
				for _, c := range st.Commands {
					if a, ok := c.(*instructions.AddCommand); ok {
						for _, src := range a.SourcePaths {
							if strings.Contains(src, "://") || strings.HasPrefix(src, "git@") {
								t.Errorf("ADD of a URL: %s", src)
							}
						}
					}
				}
			}
		})
	}
}

// The build context must leave out local data and tool caches (and the .git directory), so images never
// contain a developer's database or credentials and builds stay quick.
func TestDockerignore(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(moduleRoot(t), ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, l := range strings.Split(string(raw), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, strings.TrimSuffix(l, "/"))
		}
	}
	for _, want := range []string{".git", "data", ".tools"} {
		if !slices.Contains(patterns, want) {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
	for _, keep := range []string{"go.mod", "go.sum", "shared", "extractor", "loader"} {
		if slices.Contains(patterns, keep) {
			t.Errorf(".dockerignore excludes %s, which the build needs", keep)
		}
	}
}
