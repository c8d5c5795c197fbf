package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/cli"
	"github.com/parking-newtaipei/parking-newtaipei/shared/export"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
)

// Reads is what the read API reads from; *sqlite.DB implements it. Read
// gives fn a consistent view: its own read-only connection in shared mode,
// the writer's connection (taking turns with the applies) in exclusive mode.
type Reads interface {
	Read(ctx context.Context, fn func(r *sqlite.DB) error) error
}

// apiTimeout bounds one API request's queries. Each is bounded by a key
// range or the lots table, so this is only a guard.
const apiTimeout = 10 * time.Second

// defaultHistory is the range of a history request without from and to: the
// map's chart.
const defaultHistory = 24 * time.Hour

// registerAPI adds the read API to mux. Only GET (and HEAD) are routed, so
// every other method answers 405 with an Allow header.
func (s *Server) registerAPI(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/lots", s.apiLots)
	mux.HandleFunc("GET /api/v1/lots/{id}", s.apiLot)
	mux.HandleFunc("GET /api/v1/lots/{id}/availability", s.apiHistory)
	mux.HandleFunc("GET /api/v1/availability/latest", s.apiLatest)
	mux.HandleFunc("GET /api/v1/stats", s.stats) // the same document as /stats
	mux.HandleFunc("GET /api/", func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path+
			" (see /api/v1/lots, /api/v1/lots/{id}, /api/v1/lots/{id}/availability, /api/v1/availability/latest, /api/v1/stats)")
	})
}

// cors lets any page read the API: the data is public and the API read-only.
// A CORS preflight (OPTIONS with Access-Control-Request-Method) is answered
// here; any other OPTIONS goes on to the 405 of the mux.
func cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") {
			w.Header().Set("Access-Control-Allow-Origin", "*")
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				w.Header().Set("Access-Control-Allow-Methods", "GET, HEAD")
				w.Header().Set("Access-Control-Allow-Headers", "If-None-Match")
				w.Header().Set("Access-Control-Max-Age", "86400")
				w.WriteHeader(http.StatusNoContent)
				return
			}
			w.Header().Set("Access-Control-Expose-Headers", "ETag")
		}
		next.ServeHTTP(w, r)
	})
}

// read runs fn on a view of the database, or answers 404 when the server
// has none.
func (s *Server) read(w http.ResponseWriter, r *http.Request, fn func(ctx context.Context, db *sqlite.DB) error) bool {
	if s.cfg.Reads == nil {
		apiError(w, http.StatusNotFound, "this server has no database")
		return false
	}
	ctx, cancel := context.WithTimeout(r.Context(), apiTimeout)
	defer cancel()
	err := s.cfg.Reads.Read(ctx, func(db *sqlite.DB) error { return fn(ctx, db) })
	switch {
	case err == nil:
		return true
	case errors.Is(err, sqlite.ErrNotFound):
		apiError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, sqlite.ErrRange):
		apiError(w, http.StatusBadRequest, err.Error())
	default:
		s.log.Warn("api read failed", "path", r.URL.Path, "err", err)
		apiError(w, http.StatusInternalServerError, "database: "+err.Error())
	}
	return false
}

// lotProperties are a lot's fields in the API. The map reads them, and
// understands the export's lots.geojson (parking_id, district) too.
type lotProperties struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Area        string `json:"area"`
	Type        string `json:"type"`
	Summary     string `json:"summary"`
	Address     string `json:"address"`
	Tel         string `json:"tel"`
	PayEx       string `json:"pay_ex"`
	ServiceTime string `json:"service_time"`
	TotalCar    int64  `json:"total_car"`
	TotalMotor  int64  `json:"total_motor"`
	TotalBike   int64  `json:"total_bike"`
	// AvailableCar is null when unknown (-9) or never observed; ObservedAt
	// is null only when the lot was never in the live feed.
	AvailableCar *int64  `json:"available_car"`
	ObservedAt   *string `json:"observed_at"`
}

func propertiesOf(l sqlite.Lot) lotProperties {
	p := lotProperties{ID: l.ID, Name: l.Name, Area: l.Area, Type: l.Type, Summary: l.Summary, Address: l.Address,
		Tel: l.Tel, PayEx: l.PayEx, ServiceTime: l.ServiceTime,
		TotalCar: l.TotalCar, TotalMotor: l.TotalMotor, TotalBike: l.TotalBike}
	p.AvailableCar, p.ObservedAt = l.LiveValue()
	return p
}

type lotFeature struct {
	Type       string        `json:"type"`
	ID         string        `json:"id"`
	Geometry   point         `json:"geometry"`
	Properties lotProperties `json:"properties"`
}

type point struct {
	Type        string     `json:"type"`
	Coordinates [2]float64 `json:"coordinates"` // [lon, lat], WGS84
}

func (s *Server) apiLots(w http.ResponseWriter, r *http.Request) {
	var lots []sqlite.Lot
	if !s.read(w, r, func(ctx context.Context, db *sqlite.DB) (err error) {
		lots, err = db.MapLots(ctx)
		return err
	}) {
		return
	}
	fc := struct {
		Type     string       `json:"type"`
		Features []lotFeature `json:"features"`
	}{Type: "FeatureCollection", Features: make([]lotFeature, 0, len(lots))}
	for _, l := range lots {
		fc.Features = append(fc.Features, lotFeature{Type: "Feature", ID: l.ID,
			Geometry:   point{Type: "Point", Coordinates: [2]float64{round6(l.Lon), round6(l.Lat)}},
			Properties: propertiesOf(l)})
	}
	writeJSON(w, r, "application/geo+json", fc, true)
}

// lotDetail is one lot: its properties and what the map leaves out.
type lotDetail struct {
	lotProperties
	Lon       *float64 `json:"lon"`
	Lat       *float64 `json:"lat"`
	CoordNote string   `json:"coord_note"`
	CreatedAt string   `json:"created_at"`
	UpdatedAt string   `json:"updated_at"`
	DeletedAt *string  `json:"deleted_at"`
	// AvailableRaw is the feed's text of the newest live value ("-9").
	AvailableRaw *string `json:"available_raw"`
}

func (s *Server) apiLot(w http.ResponseWriter, r *http.Request) {
	var l sqlite.Lot
	id := r.PathValue("id")
	if !s.read(w, r, func(ctx context.Context, db *sqlite.DB) (err error) {
		l, err = db.Lot(ctx, id)
		return err
	}) {
		return
	}
	d := lotDetail{lotProperties: propertiesOf(l), CoordNote: l.CoordNote, CreatedAt: l.CreatedAt, UpdatedAt: l.UpdatedAt}
	if l.HasPosition {
		lon, lat := round6(l.Lon), round6(l.Lat)
		d.Lon, d.Lat = &lon, &lat
	}
	if l.DeletedAt != "" {
		d.DeletedAt = &l.DeletedAt
	}
	if l.ObservedAt != "" {
		d.AvailableRaw = &l.Raw
	}
	writeJSON(w, r, "application/json", d, true)
}

// timeParam reads a time parameter as the command line does (RFC 3339, or a
// Taipei date or minute); empty means def.
func timeParam(v, name string, def time.Time) (time.Time, error) {
	if v == "" {
		return def, nil
	}
	t, err := cli.ParseTime(v)
	if err != nil {
		return t, fmt.Errorf("%s: %w", name, err)
	}
	return t, nil
}

type observationJSON struct {
	ObservedAt   string `json:"observed_at"`
	AvailableCar int64  `json:"available_car"`
}

func (s *Server) apiHistory(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	q := r.URL.Query()
	format := q.Get("format")
	if format != "" && format != "json" && format != "csv" {
		apiError(w, http.StatusBadRequest, fmt.Sprintf("format %q: want json or csv", format))
		return
	}
	to, err := timeParam(q.Get("to"), "to", s.cfg.Now())
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	from, err := timeParam(q.Get("from"), "from", to.Add(-defaultHistory))
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	var obs []sqlite.HistoryPoint
	if !s.read(w, r, func(ctx context.Context, db *sqlite.DB) (err error) {
		obs, err = db.History(ctx, id, from, to)
		return err
	}) {
		return
	}
	if format == "csv" {
		var buf bytes.Buffer
		cw := csv.NewWriter(&buf)
		cw.Write([]string{"parking_id", "observed_at", "available_car"})
		for _, o := range obs {
			cw.Write([]string{id, sqlite.FormatTime(o.At), strconv.FormatInt(o.AvailableCar, 10)})
		}
		cw.Flush()
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-availability.csv"`, safeName(id)))
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(buf.Bytes())
		return
	}
	out := make([]observationJSON, len(obs))
	for i, o := range obs {
		out[i] = observationJSON{ObservedAt: sqlite.FormatTime(o.At), AvailableCar: o.AvailableCar}
	}
	writeJSON(w, r, "application/json", out, false)
}

func (s *Server) apiLatest(w http.ResponseWriter, r *http.Request) {
	var latest sqlite.LatestAvailability
	if !s.read(w, r, func(ctx context.Context, db *sqlite.DB) (err error) {
		latest, err = db.LatestAvailability(ctx)
		return err
	}) {
		return
	}
	var buf bytes.Buffer
	if err := export.WriteLatestJSON(&buf, latest); err != nil {
		apiError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeBody(w, r, "application/json", buf.Bytes(), true)
}

func writeJSON(w http.ResponseWriter, r *http.Request, contentType string, v any, etag bool) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Names and addresses are Chinese, and & < > appear in them: keep them as they are.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		apiError(w, http.StatusInternalServerError, "encode: "+err.Error())
		return
	}
	writeBody(w, r, contentType, buf.Bytes(), etag)
}

// writeBody answers body, or 304 when etag is wanted and the client's
// If-None-Match already names this body. The tag is the body's hash, so it
// changes exactly when the answer does.
func writeBody(w http.ResponseWriter, r *http.Request, contentType string, body []byte, etag bool) {
	h := w.Header()
	h.Set("Content-Type", contentType+"; charset=utf-8")
	// Clients may cache, but must ask again (cheaply, with the tag) each time.
	h.Set("Cache-Control", "no-cache")
	if etag {
		sum := sha256.Sum256(body)
		tag := `"` + hex.EncodeToString(sum[:16]) + `"`
		h.Set("ETag", tag)
		if matchesETag(r.Header.Get("If-None-Match"), tag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

// matchesETag reports whether an If-None-Match header names tag (weak
// comparison, RFC 9110 §13.1.2).
func matchesETag(header, tag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == tag {
			return true
		}
	}
	return false
}

func apiError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(struct {
		Error string `json:"error"`
	}{msg})
}

// round6 keeps 6 decimals (about 0.1 m), as RFC 7946 §11.2 advises.
func round6(f float64) float64 { return math.Round(f*1e6) / 1e6 }

// safeName keeps a lot ID usable in a file name.
func safeName(id string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, id)
}
