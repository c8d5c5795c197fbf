// Package geo converts the feed's TWD97 TM2 coordinates to WGS84.
package geo

// STUB: replaced by the geo work. Signatures are the contract.

// Position is a validated WGS84 point derived from a lot's raw TW97X/TW97Y.
type Position struct {
	Lon, Lat float64
	// X, Y are the raw values parsed as numbers (NaN when not a number).
	X, Y float64
	// Note says how the position was obtained ("ok", "swapped", "wgs84") or,
	// when OK is false, why there is none ("empty", "not a number", "zero", "out of range", ...).
	Note string
	OK   bool
}

// Locate validates (and repairs the recognisable cases of) a raw coordinate pair.
func Locate(rawX, rawY string) Position { return Position{Note: "not implemented"} }
