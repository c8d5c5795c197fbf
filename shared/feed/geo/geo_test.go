package geo

import (
	"math"
	"testing"
)

// Published TWD97 TM2 points (docs: ntpc-feeds.md), agreeing to about 1 cm.
var published = []struct {
	x, y, lat, lon float64
	source         string
}{
	{248170.787, 2652129.936, 23.97387462949, 120.98202461951, "yychen/twd97 README"},
	{320516.475, 2778024.419, 25.10892003, 121.69920444, "snexuz/TWD97TM2toWGS84 README"},
	{296882, 2767068, 25.0109252, 121.4644919, "lot 010056, pyproj"},
}

func TestTWD97ToWGS84(t *testing.T) {
	for _, p := range published {
		got := TWD97ToWGS84(p.x, p.y)
		if math.Abs(got[0]-p.lon) > 1e-6 || math.Abs(got[1]-p.lat) > 1e-6 {
			t.Errorf("%s: (%v, %v) -> lon %.9f lat %.9f, want lon %.9f lat %.9f", p.source, p.x, p.y, got[0], got[1], p.lon, p.lat)
		}
	}
	// On the central meridian at the false easting the longitude is exactly lon_0.
	if got := TWD97ToWGS84(250000, 2700000); got[0] != 121 {
		t.Errorf("central meridian: lon %v", got[0])
	}
}

func TestLocate(t *testing.T) {
	for _, tc := range []struct {
		name         string
		x, y         string
		note         string
		ok           bool
		lon, lat     float64 // checked when ok
		rawX, rawY   float64 // NaN: expect NaN
		checkRawNaNs bool
	}{
		{name: "lot 010056", x: "296882", y: "2767068", note: "ok", ok: true, lon: 121.4644919, lat: 25.0109252},
		{name: "decimals and spaces", x: " 320516.475 ", y: "2778024.419", note: "ok", ok: true, lon: 121.69920444, lat: 25.10892003},
		// Real 2019 rows 140039, 010173: X and Y swapped.
		{name: "swapped", x: "2767068", y: "296882", note: "swapped", ok: true, lon: 121.4644919, lat: 25.0109252},
		{name: "swapped 140039", x: "2775456", y: "296387.1", note: "swapped", ok: true},
		{name: "wgs84 lon,lat", x: "121.4644919", y: "25.0109252", note: "wgs84", ok: true, lon: 121.4644919, lat: 25.0109252},
		{name: "wgs84 lat,lon", x: "25.0109252", y: "121.4644919", note: "wgs84", ok: true, lon: 121.4644919, lat: 25.0109252},
		// Real 2019 row 270005: Y in degrees, X in metres.
		{name: "degrees in one column", x: "315148.7", y: "25.22236", note: "out of range"},
		{name: "degrees in the other column", x: "121.5", y: "2767068", note: "out of range"},
		{name: "zero", x: "0", y: "0", note: "zero"},
		{name: "one zero", x: "296882", y: "0", note: "zero"},
		{name: "x equals y", x: "298296.63751", y: "298296.63751", note: "x equals y"},
		{name: "22000/22000", x: "22000", y: "22000", note: "x equals y"},
		{name: "empty", x: "", y: "2767068", note: "empty"},
		{name: "blank", x: "296882", y: "  ", note: "empty"},
		{name: "not a number", x: "29688二", y: "2767068", note: "not a number", checkRawNaNs: true, rawX: math.NaN(), rawY: 2767068},
		{name: "NaN", x: "NaN", y: "2767068", note: "not a number"},
		{name: "Inf", x: "296882", y: "+Inf", note: "not a number"},
		{name: "far away", x: "250000", y: "2500000", note: "out of range"},
		// Inside the TWD97 box but outside the WGS84 city box (north-east corner).
		{name: "box corner", x: "359000", y: "2849000", note: "out of range"},
		{name: "degrees outside the city", x: "120.5", y: "23.9", note: "out of range"},
		{name: "negative", x: "-296882", y: "-2767068", note: "out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Locate(tc.x, tc.y)
			if p.Note != tc.note || p.OK != tc.ok {
				t.Fatalf("Locate(%q, %q) = %+v, want note %q ok %v", tc.x, tc.y, p, tc.note, tc.ok)
			}
			if tc.ok && tc.lat != 0 && (math.Abs(p.Lon-tc.lon) > 1e-6 || math.Abs(p.Lat-tc.lat) > 1e-6) {
				t.Fatalf("position lon %.8f lat %.8f, want %.8f %.8f", p.Lon, p.Lat, tc.lon, tc.lat)
			}
			if tc.ok && (p.Lat < 24.5 || p.Lat > 25.4 || p.Lon < 121.2 || p.Lon > 122.1) {
				t.Fatalf("position outside the city: %+v", p)
			}
			if !tc.ok && (p.Lon != 0 || p.Lat != 0) {
				t.Fatalf("no position but coordinates set: %+v", p)
			}
			if tc.checkRawNaNs && (!math.IsNaN(p.X) || p.Y != tc.rawY) {
				t.Fatalf("raw X, Y = %v, %v", p.X, p.Y)
			}
		})
	}
}

func TestLocateRawNumbers(t *testing.T) {
	p := Locate("2775456", "296387.1")
	if p.X != 2775456 || p.Y != 296387.1 {
		t.Fatalf("raw values not kept as given: %+v", p)
	}
	if p := Locate("", ""); !math.IsNaN(p.X) || !math.IsNaN(p.Y) {
		t.Fatalf("empty raw values should be NaN: %+v", p)
	}
}

func BenchmarkLocate(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if p := Locate("296882", "2767068"); !p.OK {
			b.Fatal(p.Note)
		}
	}
}
