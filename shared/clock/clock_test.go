package clock

import (
	"testing"
	"time"
)

func TestParsePython(t *testing.T) {
	want := time.Date(2026, 1, 31, 23, 55, 0, 123456000, Taipei)
	for _, s := range []string{"2026-01-31T23:55:00.123456+08:00", "2026-01-31T23:55:00.123456", "2026-01-31 23:55:00.123456"} {
		got, err := ParsePython(s)
		if err != nil || !got.Equal(want) {
			t.Errorf("%q: %v, %v", s, got, err)
		}
	}
	if _, err := ParsePython("yesterday"); err == nil {
		t.Error("no error for a bad time")
	}
}
