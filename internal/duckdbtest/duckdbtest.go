// Package duckdbtest runs SQL with DuckDB (tools/duckdb/query.mjs, installed
// by scripts/test), so tests read published Parquet files as analysts do,
// with an engine that is not the one that wrote them.
//
// Without scripts/test's environment a test is skipped with a message; under
// CI (CI=true) it fails instead, as internal/awstest does.
package duckdbtest

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// EnvScript names the query script scripts/test installs.
const EnvScript = "PARKING_TEST_DUCKDB"

// Query runs the statements in one DuckDB session and returns each
// statement's rows as objects (BIGINTs as strings, as DuckDB converts them).
func Query(t testing.TB, statements ...string) [][]map[string]any {
	t.Helper()
	script := os.Getenv(EnvScript)
	if script == "" {
		if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
			t.Fatalf("%s not set: under CI the DuckDB checks must run; run them through scripts/test", EnvScript)
		}
		t.Skipf("%s not set: run scripts/test, which installs DuckDB", EnvScript)
	}
	cmd := exec.Command("node", append([]string{script}, statements...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("duckdb: %v\n%s", err, errb.String())
	}
	var results [][]map[string]any
	if err := json.Unmarshal(out.Bytes(), &results); err != nil {
		t.Fatalf("duckdb answered %q: %v", out.String(), err)
	}
	return results
}
