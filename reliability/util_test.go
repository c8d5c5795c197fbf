package reliability

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

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
