// Package geo converts the feed's TWD97 TM2 coordinates to WGS84, and decides
// which raw coordinate pairs deserve a position at all.
//
// The lots feed gives TW97X/TW97Y as strings in EPSG:3826 (TWD97 TM2 zone 121).
// Real rows carry garbage: 0/0, X and Y swapped, X == Y, 22000/22000, and
// WGS84 degrees in one or both columns. Locate repairs what can be repaired
// unambiguously and says why a row has no position otherwise.
package geo

import (
	"math"
	"strconv"
	"strings"
)

// TM2 zone 121 on GRS80 (EPSG:3826). TWD97 and WGS84 agree to well under a
// metre, so no datum shift is applied.
const (
	semiMajor     = 6378137.0         // GRS80 a
	invFlattening = 298.257222101     // GRS80 1/f
	scale         = 0.9999            // k0
	falseEasting  = 250000.0          // x_0
	centralMerid  = 121.0             // lon_0, degrees
	radToDeg      = 180.0 / math.Pi   // for the result
	degToRad      = math.Pi / 180.0   // for the central meridian
	flattening    = 1 / invFlattening // f
)

// Plausible ranges for New Taipei City (from the feed reference).
const (
	minX, maxX     = 150000.0, 360000.0
	minY, maxY     = 2.60e6, 2.85e6
	minLat, maxLat = 24.5, 25.4
	minLon, maxLon = 121.2, 122.1
)

// Notes Locate gives.
const (
	NoteOK         = "ok"
	NoteSwapped    = "swapped"
	NoteWGS84      = "wgs84"
	NoteEmpty      = "empty"
	NoteNotNumber  = "not a number"
	NoteZero       = "zero"
	NoteXEqualsY   = "x equals y"
	NoteOutOfRange = "out of range"
)

// Position is a validated WGS84 point derived from a lot's raw TW97X/TW97Y.
type Position struct {
	Lon, Lat float64
	// X, Y are the raw values parsed as numbers (NaN when not a number).
	X, Y float64
	// Note says how the position was obtained ("ok", "swapped", "wgs84") or,
	// when OK is false, why there is none ("empty", "not a number", "zero",
	// "x equals y", "out of range").
	Note string
	OK   bool
}

// Locate validates (and repairs the recognisable cases of) a raw coordinate pair.
//
// Repairs are made only where the raw values leave no doubt: a pair that is
// plausible TWD97 once swapped, or a pair of degrees that falls in the city
// (in either order). A single column in degrees cannot be repaired: the
// other column's metres say nothing exact about the missing coordinate.
func Locate(rawX, rawY string) Position {
	p := Position{X: math.NaN(), Y: math.NaN()}
	sx, sy := strings.TrimSpace(rawX), strings.TrimSpace(rawY)
	if sx == "" || sy == "" {
		p.Note = NoteEmpty
		return p
	}
	x, errX := strconv.ParseFloat(sx, 64)
	y, errY := strconv.ParseFloat(sy, 64)
	if errX == nil && !isFinite(x) {
		errX = strconv.ErrRange
	}
	if errY == nil && !isFinite(y) {
		errY = strconv.ErrRange
	}
	if errX == nil {
		p.X = x
	}
	if errY == nil {
		p.Y = y
	}
	if errX != nil || errY != nil {
		p.Note = NoteNotNumber
		return p
	}
	switch {
	case x == 0 || y == 0:
		p.Note = NoteZero
		return p
	case x == y:
		// Both columns filled from one value (22000/22000, 298296.63751 twice):
		// at most one of them can be right and we cannot tell which.
		p.Note = NoteXEqualsY
		return p
	}
	switch {
	case plausibleTM2(x, y):
		return p.at(TWD97ToWGS84(x, y), NoteOK)
	case plausibleTM2(y, x):
		return p.at(TWD97ToWGS84(y, x), NoteSwapped)
	case inCity(x, y):
		return p.at([2]float64{x, y}, NoteWGS84)
	case inCity(y, x):
		return p.at([2]float64{y, x}, NoteWGS84)
	}
	p.Note = NoteOutOfRange
	return p
}

// at fills in a position from a (lon, lat) pair, refusing it when it falls
// outside the city: the TWD97 box is a rectangle in metres, the city is not.
func (p Position) at(lonLat [2]float64, note string) Position {
	if !inCity(lonLat[0], lonLat[1]) {
		p.Note = NoteOutOfRange
		return p
	}
	p.Lon, p.Lat, p.Note, p.OK = lonLat[0], lonLat[1], note, true
	return p
}

func isFinite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

func plausibleTM2(x, y float64) bool { return minX < x && x < maxX && minY < y && y < maxY }

func inCity(lon, lat float64) bool {
	return minLon <= lon && lon <= maxLon && minLat <= lat && lat <= maxLat
}

// TWD97ToWGS84 converts TWD97 TM2 zone 121 metres (EPSG:3826) to WGS84
// degrees, returned as {lon, lat}. It is the exact inverse transverse Mercator
// in Krüger's series (third order in n), accurate to well under a millimetre
// across Taiwan; no input is validated.
func TWD97ToWGS84(x, y float64) [2]float64 {
	n := flattening / (2 - flattening)
	n2, n3 := n*n, n*n*n
	// Rectifying radius A: the meridian arc per radian of rectifying latitude.
	A := semiMajor / (1 + n) * (1 + n2/4 + n2*n2/64)
	beta := [3]float64{
		n/2 - 2*n2/3 + 37*n3/96,
		n2/48 + n3/15,
		17 * n3 / 480,
	}
	delta := [3]float64{
		2*n - 2*n2/3 - 2*n3,
		7*n2/3 - 8*n3/5,
		56 * n3 / 15,
	}
	xi := y / (scale * A)
	eta := (x - falseEasting) / (scale * A)
	xi1, eta1 := xi, eta
	for j := 1; j <= 3; j++ {
		k := 2 * float64(j)
		xi1 -= beta[j-1] * math.Sin(k*xi) * math.Cosh(k*eta)
		eta1 -= beta[j-1] * math.Cos(k*xi) * math.Sinh(k*eta)
	}
	chi := math.Asin(math.Sin(xi1) / math.Cosh(eta1))
	lat := chi
	for j := 1; j <= 3; j++ {
		lat += delta[j-1] * math.Sin(2*float64(j)*chi)
	}
	lon := centralMerid*degToRad + math.Atan2(math.Sinh(eta1), math.Cos(xi1))
	return [2]float64{lon * radToDeg, lat * radToDeg}
}
