// Package export writes what analysts and maps read: the original project's
// latest-availability JSON, a GeoJSON map of the active lots, and a CSV of the
// lots with their latest value. Files are replaced atomically, so a reader (a
// web server, a map) never sees half a file.
package export

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/parking-newtaipei/parking-newtaipei/shared/internal/atomicfile"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
)

// Format names an export.
type Format string

const (
	JSON    Format = "json"    // the original's availability.json
	GeoJSON Format = "geojson" // FeatureCollection of the active lots with a position
	CSV     Format = "csv"     // every active lot with its latest value
)

// ParseFormat validates a format name.
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case JSON, GeoJSON, CSV:
		return Format(s), nil
	}
	return "", fmt.Errorf("unknown export format %q (want json, geojson or csv)", s)
}

// Source is what the exports read; *sqlite.DB implements it.
type Source interface {
	LatestAvailability(ctx context.Context) (sqlite.LatestAvailability, error)
	ActiveLots(ctx context.Context) ([]sqlite.Lot, error)
}

// Write reads the database and writes one export to w.
func Write(ctx context.Context, src Source, f Format, w io.Writer) error {
	switch f {
	case JSON:
		latest, err := src.LatestAvailability(ctx)
		if err != nil {
			return fmt.Errorf("export %s: %w", f, err)
		}
		return WriteLatestJSON(w, latest)
	case GeoJSON, CSV:
		lots, err := src.ActiveLots(ctx)
		if err != nil {
			return fmt.Errorf("export %s: %w", f, err)
		}
		if f == GeoJSON {
			return WriteGeoJSON(w, lots)
		}
		return WriteCSV(w, lots)
	}
	return fmt.Errorf("export: unknown format %q", f)
}

// WriteFile reads the database and replaces path with one export, atomically.
func WriteFile(ctx context.Context, src Source, f Format, path string) error {
	// Read before creating the temporary file: a failed query leaves nothing behind.
	var buf bytes.Buffer
	if err := Write(ctx, src, f, &buf); err != nil {
		return err
	}
	// 0644: exports are read by others (a web server serving availability.json).
	if err := atomicfile.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("export %s to %s: %w", f, path, err)
	}
	return nil
}

// latestJSON is the original project's availability.json, field for field.
type latestJSON struct {
	// UpdatedAt is null before the first availability snapshot.
	UpdatedAt  *string         `json:"updated_at"`
	TotalCount int             `json:"total_count"`
	Data       []latestJSONRow `json:"data"`
}

type latestJSONRow struct {
	ParkingID    string `json:"parking_id"`
	AvailableCar int64  `json:"available_car"`
}

// WriteLatestJSON writes latest in the original's availability.json shape:
// {"updated_at": "...+08:00", "total_count": N, "data": [{"parking_id", "available_car"}]}.
func WriteLatestJSON(w io.Writer, latest sqlite.LatestAvailability) error {
	doc := latestJSON{TotalCount: len(latest.Rows), Data: make([]latestJSONRow, 0, len(latest.Rows))}
	if latest.UpdatedAt != "" {
		doc.UpdatedAt = &latest.UpdatedAt
	}
	for _, r := range latest.Rows {
		doc.Data = append(doc.Data, latestJSONRow{ParkingID: r.ParkingID, AvailableCar: r.AvailableCar})
	}
	return encodeJSON(w, doc)
}

// featureCollection and feature follow RFC 7946.
type featureCollection struct {
	Type     string    `json:"type"`
	Features []feature `json:"features"`
}

type feature struct {
	Type       string            `json:"type"`
	ID         string            `json:"id"`
	Geometry   point             `json:"geometry"`
	Properties featureProperties `json:"properties"`
}

type point struct {
	Type string `json:"type"`
	// Coordinates is [longitude, latitude] (RFC 7946 order), WGS84.
	Coordinates [2]float64 `json:"coordinates"`
}

type featureProperties struct {
	ParkingID  string `json:"parking_id"`
	Name       string `json:"name"`
	District   string `json:"district"`
	Address    string `json:"address"`
	Type       string `json:"type"`
	TotalCar   int64  `json:"total_car"`
	TotalMotor int64  `json:"total_motor"`
	TotalBike  int64  `json:"total_bike"`
	// AvailableCar is null when the lot has no known live value.
	AvailableCar *int64 `json:"available_car"`
	// ObservedAt is when AvailableCar (or the unknown) was observed; null
	// when the lot was never in the live feed.
	ObservedAt *string `json:"observed_at"`
}

// WriteGeoJSON writes a FeatureCollection of the lots that have a position;
// lots geo could not place are left out (the CSV lists them, with the reason).
func WriteGeoJSON(w io.Writer, lots []sqlite.Lot) error {
	fc := featureCollection{Type: "FeatureCollection", Features: []feature{}}
	for _, l := range lots {
		if !l.HasPosition {
			continue
		}
		p := featureProperties{
			ParkingID: l.ID, Name: l.Name, District: l.Area, Address: l.Address, Type: l.Type,
			TotalCar: l.TotalCar, TotalMotor: l.TotalMotor, TotalBike: l.TotalBike,
		}
		p.AvailableCar, p.ObservedAt = l.LiveValue()
		fc.Features = append(fc.Features, feature{
			Type: "Feature", ID: l.ID,
			Geometry:   point{Type: "Point", Coordinates: [2]float64{round6(l.Lon), round6(l.Lat)}},
			Properties: p,
		})
	}
	return encodeJSON(w, fc)
}

// round6 keeps 6 decimals (about 0.1 m), as RFC 7946 §11.2 advises: more
// digits only make the file bigger.
func round6(f float64) float64 { return math.Round(f*1e6) / 1e6 }

// CSVHeader is the CSV export's header row.
var CSVHeader = []string{"parking_id", "area", "name", "type", "address", "total_car", "total_motor", "total_bike",
	"lon", "lat", "coord_note", "available_car", "observed_at"}

// WriteCSV writes every active lot, with or without a position, as UTF-8 CSV
// with a byte-order mark: the city's own CSV has one, and Excel needs it to
// read Chinese text as UTF-8.
func WriteCSV(w io.Writer, lots []sqlite.Lot) error {
	if _, err := io.WriteString(w, "\ufeff"); err != nil {
		return fmt.Errorf("export csv: %w", err)
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return fmt.Errorf("export csv: %w", err)
	}
	for _, l := range lots {
		var lon, lat, avail string
		if l.HasPosition {
			lon = strconv.FormatFloat(round6(l.Lon), 'f', -1, 64)
			lat = strconv.FormatFloat(round6(l.Lat), 'f', -1, 64)
		}
		if l.HasAvailable {
			avail = strconv.FormatInt(l.AvailableCar, 10)
		}
		rec := []string{l.ID, l.Area, l.Name, l.Type, l.Address,
			strconv.FormatInt(l.TotalCar, 10), strconv.FormatInt(l.TotalMotor, 10), strconv.FormatInt(l.TotalBike, 10),
			lon, lat, l.CoordNote, avail, l.ObservedAt}
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("export csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("export csv: %w", err)
	}
	return nil
}

func encodeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	// Lot names and addresses are Chinese; keep them readable, and keep & < >
	// as they are in addresses.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("export: encode json: %w", err)
	}
	return nil
}
