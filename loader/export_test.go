package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `loader export` beside a running loader: in shared mode (WAL) it reads
// through a read-only open, as `loader stats` does, and writes what the
// loader would; in exclusive mode, which lets no other open in, it is
// refused with exit 2 and says why.
func TestExportBesideARunningLoader(t *testing.T) {
	for _, mode := range []string{"exclusive", "shared"} {
		t.Run(mode, func(t *testing.T) { testExportBesideARunningLoader(t, mode) })
	}
}

func testExportBesideARunningLoader(t *testing.T, mode string) {
	p := newPipeline(t)
	p.extra = []string{"PARKING_DB_LOCKING=" + mode}
	p.mustRun(0, "extractor", "fetch", "-dataset", "lots")
	p.mustRun(0, "extractor", "fetch", "-dataset", "availability")
	p.mustRun(0, "loader", "serve", "-drain")
	alone := p.mustRun(0, "loader", "export", "-format", "json").stdout

	running := p.serve(t, mode)
	csv := filepath.Join(p.dir, "lots.csv")
	switch mode {
	case "shared":
		r := p.mustRun(0, "loader", "export", "-format", "json")
		var latest struct {
			TotalCount int `json:"total_count"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &latest); err != nil || latest.TotalCount == 0 {
			t.Fatalf("export beside the loader printed %.300q (%v)", r.stdout, err)
		}
		if r.stdout != alone {
			t.Errorf("export beside the loader differs from the export without it")
		}
		p.mustRun(0, "loader", "export", "-format", "csv", "-out", csv)
		if b, err := os.ReadFile(csv); err != nil || !strings.Contains(string(b), "\n") {
			t.Errorf("-out %s beside the loader: %q (%v)", csv, b, err)
		}
	case "exclusive":
		r := p.mustRun(2, "loader", "export", "-format", "csv", "-out", csv)
		for _, want := range []string{"refused", "exclusive mode", "-latest-json"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("refusal lacks %q:\n%s", want, r.stderr)
			}
		}
		if _, err := os.Stat(csv); err == nil {
			t.Error("a refused export wrote its file")
		}
	}
	running.stop(t)
}
