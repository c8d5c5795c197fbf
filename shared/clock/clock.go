// Package clock holds time as this system reads and writes it: the zone its
// users live in and the time formats of the original Python project.
package clock

import (
	"fmt"
	"strings"
	"time"
)

// Taipei is Asia/Taipei, the zone of the city, its feeds and their users.
// Taiwan has had no daylight saving time since 1979, so a fixed zone needs no
// tzdata in the binary.
var Taipei = time.FixedZone("Asia/Taipei", 8*3600)

// ParsePython reads a time the original project wrote: Python's isoformat()
// with the +08:00 offset (and microseconds when not zero), or without an
// offset, which the original meant as Taipei time.
func ParsePython(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	for _, layout := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999", "20060102_150405"} {
		if t, err := time.ParseInLocation(layout, s, Taipei); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q: not ISO 8601", s)
}
