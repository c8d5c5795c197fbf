package livemap_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/parking-newtaipei/parking-newtaipei/shared/web/livemap"
)

func TestFiles(t *testing.T) {
	files, err := livemap.Files(livemap.Config{Tiles: "https://tiles.example/{z}/{x}/{y}.png", Data: livemap.DataStatic})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"index.html", "app.js", "app.css", "vendor/leaflet/leaflet.js", "vendor/leaflet/leaflet.css", "vendor/leaflet/LICENSE"} {
		if len(files[name]) == 0 {
			t.Errorf("%s missing or empty", name)
		}
	}
	page := string(files["index.html"])
	for _, want := range []string{`data-tiles="https://tiles.example/{z}/{x}/{y}.png"`, `data-source="static"`, `data-attribution=""`} {
		if !strings.Contains(page, want) {
			t.Errorf("index.html lacks %s", want)
		}
	}
	if !strings.Contains(string(files["vendor/leaflet/LICENSE"]), "BSD") {
		t.Error("Leaflet's licence is not vendored with it")
	}
	// No file may load anything from another host at run time but the tiles.
	for name, data := range files {
		if strings.HasSuffix(name, ".html") || strings.HasSuffix(name, ".js") && !strings.HasPrefix(name, "vendor/") {
			for _, bad := range []string{"unpkg.com", "cdnjs", "jsdelivr", "<script src=\"http"} {
				if strings.Contains(string(data), bad) {
					t.Errorf("%s loads from a CDN (%s)", name, bad)
				}
			}
		}
	}
	if names := livemap.Names(); len(names) != len(files) || names[0] > names[len(names)-1] {
		t.Errorf("Names() = %v", names)
	}
}

func TestDefaultsAndNoTiles(t *testing.T) {
	files, _ := livemap.Files(livemap.Config{})
	page := string(files["index.html"])
	if !strings.Contains(page, `data-tiles="`+livemap.DefaultTiles+`"`) || !strings.Contains(page, "openstreetmap.org/copyright") || !strings.Contains(page, `data-source="auto"`) {
		t.Errorf("default page: OpenStreetMap tiles with their credit and the auto source expected:\n%.600s", page)
	}
	files, _ = livemap.Files(livemap.Config{Tiles: livemap.NoTiles})
	if !strings.Contains(string(files["index.html"]), `data-tiles=""`) {
		t.Error("-map-tiles none still names tiles")
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []livemap.Config{{}, {Tiles: "none"}, {Tiles: "https://a.tile.example/{z}/{x}/{y}.png", Data: "api"}} {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	for c, want := range map[livemap.Config]string{
		{Tiles: "ftp://x/{z}/{x}/{y}"}:           "http(s) URL",
		{Tiles: "https://x/tiles.png"}:           "{z}, {x} and {y}",
		{Data: "s3"}:                             `"s3"`,
		{Tiles: "javascript:alert(1)/{z}{x}{y}"}: "http(s) URL",
	} {
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: %v, want an error saying %s", c, err, want)
		}
	}
}

func TestHandler(t *testing.T) {
	ts := httptest.NewServer(livemap.Handler(livemap.Config{}))
	defer ts.Close()
	for path, ct := range map[string]string{"/": "text/html", "/index.html": "text/html", "/app.js": "javascript",
		"/vendor/leaflet/leaflet.css": "text/css", "/vendor/leaflet/images/layers.png": "image/png"} {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), ct) || len(body) == 0 {
			t.Errorf("GET %s: %s %q, %d bytes", path, resp.Status, resp.Header.Get("Content-Type"), len(body))
		}
	}
	for _, path := range []string{"/nothing.js", "/../livemap.go", "/assets/app.js"} {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("GET %s: %s, want 404", path, resp.Status)
		}
	}
}
