// Package ci says whether tests run under CI, where every test must run: a
// missing precondition (root, a test server, a built binary) fails a test
// there instead of skipping it.
package ci

import (
	"os"
	"strconv"
	"testing"
)

// Enabled reports whether the CI variable says so: CI=true or CI=1 (and
// anything else strconv.ParseBool reads as true: TRUE, True, t, T).
func Enabled() bool {
	ok, _ := strconv.ParseBool(os.Getenv("CI"))
	return ok
}

// SkipOrFail skips the test on a developer's machine and fails it under CI.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if Enabled() {
		t.Fatalf(format+" (CI: every test must run)", args...)
	}
	t.Skipf(format+" (skipped outside CI)", args...)
}
