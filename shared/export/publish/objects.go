package publish

import (
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/clock"
)

// The published objects, their types and cache lifetimes, as
// /work/notes/PUBLICATION.md and docs/CONTRACTS.md fix them: the CloudFormation
// stack, the Glue tables and the documentation name the same keys.
const (
	KeyAvailability = "availability.json"
	KeyGeoJSON      = "lots.geojson"
	KeyDB           = "parking.db"
	KeyLotsParquet  = "parquet/lots/lots.parquet"

	TypeJSON    = "application/json"
	TypeGeoJSON = "application/geo+json"
	TypeSQLite  = "application/vnd.sqlite3"
	TypeParquet = "application/vnd.apache.parquet"

	CacheLive      = "public, max-age=60"
	CacheSite      = "public, max-age=300"
	CacheDB        = "public, max-age=300"
	CacheDaily     = "public, max-age=31536000, immutable"
	CacheOpenMonth = "public, max-age=300"
	CacheClosed    = "public, max-age=86400"
	CacheLots      = "public, max-age=300"
)

// Object names the kinds of published objects in metrics and logs.
const (
	ObjectAvailability = "availability.json"
	ObjectGeoJSON      = "lots.geojson"
	ObjectLotsParquet  = "parquet_lots"
	ObjectMonth        = "parquet_month"
	ObjectDB           = "parking.db"
	ObjectDaily        = "db_daily"
	ObjectSite         = "site"
)

// Objects lists every kind, for metrics that start at zero.
var Objects = []string{ObjectAvailability, ObjectGeoJSON, ObjectLotsParquet, ObjectMonth, ObjectDB, ObjectDaily, ObjectSite}

// DailyKey is the key of the database copy of a Taipei day.
func DailyKey(day string) string { return "db/parking-" + day + ".db" }

// MonthKey is the key of a month's availability history ("2026-11").
func MonthKey(month string) string {
	return "parquet/availability/month=" + month + "/availability-" + month + ".parquet"
}

// monthOf is the Taipei month of t, as "2006-01".
func monthOf(t time.Time) string { return t.In(clock.Taipei).Format("2006-01") }

// dayOf is the Taipei day of t, as "2006-01-02".
func dayOf(t time.Time) string { return t.In(clock.Taipei).Format("2006-01-02") }

// monthRange is [first instant, first instant of the next month) of a month.
func monthRange(month string) (from, to time.Time, err error) {
	from, err = time.ParseInLocation("2006-01", month, clock.Taipei)
	if err != nil {
		return from, to, fmt.Errorf("month %q: %w", month, err)
	}
	return from, from.AddDate(0, 1, 0), nil
}

// monthCache is a month file's Cache-Control: short while the month is
// still being filled, long once it is over (a late snapshot still rewrites
// it; caches then serve the old file for up to a day).
func monthCache(month string, now time.Time) string {
	if month >= monthOf(now) {
		return CacheOpenMonth
	}
	return CacheClosed
}

// siteTypes are the Content-Types of the map page's files by extension.
// The table is explicit: mime.TypeByExtension reads the host's mime files,
// and the image has none.
var siteTypes = map[string]string{
	".html":        "text/html; charset=utf-8",
	".css":         "text/css",
	".js":          "application/javascript",
	".mjs":         "application/javascript",
	".json":        "application/json",
	".geojson":     "application/geo+json",
	".map":         "application/json",
	".png":         "image/png",
	".jpg":         "image/jpeg",
	".jpeg":        "image/jpeg",
	".gif":         "image/gif",
	".svg":         "image/svg+xml",
	".webp":        "image/webp",
	".ico":         "image/vnd.microsoft.icon",
	".woff":        "font/woff",
	".woff2":       "font/woff2",
	".txt":         "text/plain; charset=utf-8",
	".md":          "text/markdown; charset=utf-8",
	".webmanifest": "application/manifest+json",
}

// siteType is the Content-Type of a site file (a file without an extension,
// such as a vendored library's LICENSE, is text), or an error for an
// extension the table lacks: a browser given application/octet-stream
// downloads the file instead of using it.
func siteType(name string) (string, error) {
	ext := strings.ToLower(path.Ext(name))
	if ext == "" {
		return "text/plain; charset=utf-8", nil
	}
	if t, ok := siteTypes[ext]; ok {
		return t, nil
	}
	return "", fmt.Errorf("site file %s: no Content-Type known for %q files", name, path.Ext(name))
}
