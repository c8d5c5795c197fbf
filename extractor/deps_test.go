package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestExtractorDoesNotLinkTheDatabase: the extractor and the loader share
// nothing but the store and the queue. The sqlite:// queue may link the
// SQLite driver itself; the database package (schema, apply, stats) and the
// loader's stages may not be linked into the extractor.
func TestExtractorDoesNotLinkTheDatabase(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	const module = "github.com/parking-newtaipei/parking-newtaipei/"
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, module+"shared/snapshot") {
		t.Fatalf("go list -deps does not list shared/snapshot; the listing is not what this test expects:\n%s", out)
	}
	for _, dep := range deps {
		pkg, ok := strings.CutPrefix(dep, module)
		if !ok {
			continue
		}
		if pkg == "shared/sqlite" || strings.HasPrefix(pkg, "shared/sqlite/") || strings.HasPrefix(pkg, "shared/load/") {
			t.Errorf("the extractor links %s", pkg)
		}
	}
}
