package sqlite

import (
	"fmt"
	"strings"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
)

// shapeRefusal is the shape guard (CONTRACTS.md, "Guards of the apply"): the
// reason to refuse a snapshot of d with rows usable rows, of which no row
// has a value for the columns missing, or "" when it passes. Applied, such a
// snapshot would delete every lot, or turn every latest value into an
// unknown.
func shapeRefusal(d feed.Dataset, rows int, missing []string) string {
	switch {
	case rows == 0:
		return fmt.Sprintf("no %s rows", d)
	case len(missing) > 0:
		feedName := "live"
		if d == feed.Lots {
			feedName = "lots"
		}
		return fmt.Sprintf("no row has a value for %s: not the %s feed (another dataset's rows, or a broken answer)",
			strings.Join(missing, ", "), feedName)
	}
	return ""
}
