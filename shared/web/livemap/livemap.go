// Package livemap is the live map of the parking lots: one page (HTML, CSS,
// JavaScript and a vendored Leaflet, all embedded) that the loader serves at
// /, and that can be published unchanged as a static site.
//
// The page reads its data by relative URL, so it works wherever it is put:
// from the loader's read API (api/v1/lots, api/v1/availability/latest and the
// per-lot history), or, with no API beside it, from the exports lots.geojson
// and availability.json in its own directory (no history chart then). By
// default it tries the API and falls back to the files; Config.Data fixes
// one. Files lists every file of the page for a publisher.
package livemap

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"sort"
	"strings"
	"testing/fstest"
	"time"
)

//go:embed assets
var assets embed.FS

// DefaultTiles is OpenStreetMap's standard tile layer.
const DefaultTiles = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"

// DefaultAttribution is what OpenStreetMap's tile usage policy asks for.
const DefaultAttribution = `&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors`

// NoTiles as Config.Tiles draws the markers on a plain background.
const NoTiles = "none"

// Data sources of the page.
const (
	DataAuto   = "auto"   // the API, else the static files
	DataAPI    = "api"    // api/v1/... only
	DataStatic = "static" // lots.geojson and availability.json only
)

// Config is what the page is told when it is served or written.
type Config struct {
	// Off leaves / unserved.
	Off bool
	// Tiles is the background's tile URL template ({z}/{x}/{y}, optionally
	// {s}); "" means DefaultTiles, NoTiles none at all.
	Tiles string
	// Attribution is the tiles' credit line (HTML); "" means
	// DefaultAttribution with the default tiles, nothing otherwise.
	Attribution string
	// Data is DataAuto (also ""), DataAPI or DataStatic.
	Data string
}

// Validate checks the settings a flag can get wrong.
func (c Config) Validate() error {
	switch c.Data {
	case "", DataAuto, DataAPI, DataStatic:
	default:
		return fmt.Errorf("map data %q: want auto, api or static", c.Data)
	}
	if t := c.Tiles; t != "" && t != NoTiles {
		if !strings.HasPrefix(t, "https://") && !strings.HasPrefix(t, "http://") && !strings.HasPrefix(t, "/") {
			return fmt.Errorf("map tiles %q: want an http(s) URL template like %s, or %q", t, DefaultTiles, NoTiles)
		}
		if !strings.Contains(t, "{z}") || !strings.Contains(t, "{x}") || !strings.Contains(t, "{y}") {
			return fmt.Errorf("map tiles %q: the template needs {z}, {x} and {y}", t)
		}
	}
	return nil
}

func (c Config) resolved() Config {
	if c.Data == "" {
		c.Data = DataAuto
	}
	if c.Tiles == "" {
		c.Tiles = DefaultTiles
		if c.Attribution == "" {
			c.Attribution = DefaultAttribution
		}
	}
	if c.Tiles == NoTiles {
		c.Tiles = ""
	}
	return c
}

// index is the page, with the settings as data attributes of <html>.
var index = template.Must(template.ParseFS(assets, "assets/index.html"))

func render(c Config) ([]byte, error) {
	var b bytes.Buffer
	if err := index.Execute(&b, c.resolved()); err != nil {
		return nil, fmt.Errorf("live map: render index.html: %w", err)
	}
	return b.Bytes(), nil
}

// Files returns every file of the page by its path relative to the page's
// directory (index.html rendered for c, app.js, vendor/leaflet/..., and the
// licences): what a static site holds beside lots.geojson and
// availability.json.
func Files(c Config) (map[string][]byte, error) {
	page, err := render(c)
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	err = fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel := strings.TrimPrefix(p, "assets/")
		if rel == "index.html" {
			out[rel] = page
			return nil
		}
		data, err := assets.ReadFile(p)
		out[rel] = data
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("live map: %w", err)
	}
	return out, nil
}

// Site is the page as a file system, for a publisher that writes it as a
// static site. The files live in memory (fstest.MapFS is the standard
// library's map-backed fs.FS; it imports no testing machinery).
func Site(c Config) (fs.FS, error) {
	files, err := Files(c)
	if err != nil {
		return nil, err
	}
	site := fstest.MapFS{}
	for name, body := range files {
		site[name] = &fstest.MapFile{Data: body, Mode: 0o644}
	}
	return site, nil
}

// Names returns the paths of Files, sorted.
func Names() []string {
	files, _ := Files(Config{})
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Handler serves the page at / (and /index.html) and its files; any other
// path is a 404.
func Handler(c Config) http.Handler {
	files, err := Files(c)
	if err != nil {
		// The template is parsed at start-up (template.Must); rendering
		// fixed data cannot fail after that but for a programming error.
		panic(err)
	}
	started := time.Now()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(path.Clean(r.URL.Path), "/")
		if name == "" {
			name = "index.html"
		}
		data, ok := files[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		// Revalidate every time (the assets change with the binary); the
		// modification time lets a browser's cache answer 304.
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		http.ServeContent(w, r, name, started, bytes.NewReader(data))
	})
}
