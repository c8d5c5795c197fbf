package reliability

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
)

// lockingModes are the database's two ways of sharing its file: the crash,
// kill and disk-full tests must hold in both (exclusive is what EFS gets,
// shared what a local disk gets).
var lockingModes = []sqlite.Locking{sqlite.LockingExclusive, sqlite.LockingShared}

// forEachLocking runs f as one subtest per locking mode.
func forEachLocking(t *testing.T, f func(t *testing.T, mode sqlite.Locking)) {
	for _, mode := range lockingModes {
		t.Run(string(mode), func(t *testing.T) { f(t, mode) })
	}
}

// checkLocking fails unless a loader's log says it ran in mode.
func checkLocking(t testing.TB, log string, mode sqlite.Locking) {
	t.Helper()
	if !strings.Contains(log, `"locking":"`+string(mode)+`"`) {
		t.Fatalf("the loader did not run in %s mode; log:\n%.2000s", mode, log)
	}
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// report logs a RESULT line, the figures a test measured, once the test has
// passed: docs/RELIABILITY.md quotes these lines, so a test that failed
// prints none. Every figure in it must be a value the test measured.
func report(t testing.TB, format string, args ...any) {
	t.Helper()
	t.Cleanup(func() {
		if !t.Failed() {
			t.Logf("RESULT "+format, args...)
		}
	})
}

// lostRows counts the rows of the clean run's dump (one per line) that are
// missing from got: the rows a fault lost.
func lostRows(want, got string) int {
	have := map[string]int{}
	for _, l := range strings.Split(got, "\n") {
		have[l]++
	}
	lost := 0
	for _, l := range strings.Split(want, "\n") {
		if have[l] > 0 {
			have[l]--
		} else {
			lost++
		}
	}
	return lost
}
