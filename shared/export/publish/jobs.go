package publish

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/export"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
)

// do runs one job with a time limit.
func (p *Publisher) do(ctx context.Context, job string) error {
	limit := bulkTimeout
	if isLive(job) {
		limit = liveTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	switch {
	case job == jobAvailability:
		return p.publishExport(ctx, export.JSON, KeyAvailability, ObjectAvailability, TypeJSON)
	case job == jobGeoJSON:
		return p.publishExport(ctx, export.GeoJSON, KeyGeoJSON, ObjectGeoJSON, TypeGeoJSON)
	case job == jobLotsParquet:
		return p.publishLotsParquet(ctx)
	case job == jobScan:
		return p.scan(ctx)
	case job == jobSite:
		return p.publishSite(ctx)
	case job == jobDB:
		return p.publishDB(ctx)
	case strings.HasPrefix(job, jobMonth):
		return p.publishMonth(ctx, strings.TrimPrefix(job, jobMonth))
	}
	return fmt.Errorf("publish: unknown job %q", job)
}

// put uploads one object and counts it.
func (p *Publisher) put(ctx context.Context, object, key string, body io.ReadSeeker, size int64, opts store.ObjectOptions) error {
	start := time.Now()
	if err := p.cfg.Destination.PutObject(ctx, key, body, opts); err != nil {
		if !errors.Is(err, store.ErrExists) {
			p.cfg.Metrics.PublishFailed(object)
		}
		return err
	}
	p.cfg.Metrics.PublishSucceeded(object, size)
	p.log.Info("published", "key", key, "bytes", size, "cache_control", opts.CacheControl,
		"duration_ms", time.Since(start).Milliseconds())
	return nil
}

func sum256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// publishLive uploads a small live file unless this process already
// published the same bytes (an apply that changed nothing it shows).
func (p *Publisher) publishLive(ctx context.Context, object, key string, data []byte, opts store.ObjectOptions) error {
	sum := sum256(data)
	p.mu.Lock()
	same := p.liveSHA[key] == sum
	p.mu.Unlock()
	if same {
		return nil
	}
	if err := p.put(ctx, object, key, bytes.NewReader(data), int64(len(data)), opts); err != nil {
		return err
	}
	p.mu.Lock()
	p.liveSHA[key] = sum
	p.mu.Unlock()
	return nil
}

// publishExport publishes availability.json or lots.geojson, written by the
// same code as the loader's export files.
func (p *Publisher) publishExport(ctx context.Context, f export.Format, key, object, contentType string) error {
	var buf bytes.Buffer
	if err := export.Write(ctx, p.cfg.DB, f, &buf); err != nil {
		return err
	}
	return p.publishLive(ctx, object, key, buf.Bytes(), store.ObjectOptions{ContentType: contentType, CacheControl: CacheLive})
}

func (p *Publisher) publishLotsParquet(ctx context.Context) error {
	lots, err := p.cfg.DB.LotRecords(ctx)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := export.WriteLotsParquet(&buf, lots); err != nil {
		return err
	}
	return p.publishLive(ctx, ObjectLotsParquet, KeyLotsParquet, buf.Bytes(), store.ObjectOptions{ContentType: TypeParquet, CacheControl: CacheLots})
}

// scan compares each month the database holds with what was published of
// it, and queues the months the destination lacks or holds stale: after a
// restart, a failed publication, a backfill or a legacy import.
func (p *Publisher) scan(ctx context.Context) error {
	first, last, ok, err := p.cfg.DB.ObservationSpan(ctx)
	if err != nil || !ok {
		return err
	}
	now := p.cfg.Now()
	var stale []string
	for m := monthOf(last); m >= monthOf(first); m = prevMonth(m) {
		from, to, err := monthRange(m)
		if err != nil {
			return err
		}
		stats, err := p.cfg.DB.ObservationStats(ctx, from, to)
		if err != nil {
			return err
		}
		st, ok := p.state.Months[m]
		if stats.Rows > 0 && (!ok || st.ObservationStats != stats || st.Layout != export.ParquetLayout || st.CacheControl != monthCache(m, now)) {
			stale = append(stale, m)
		}
	}
	p.mu.Lock()
	for _, m := range stale {
		p.add(jobMonth+m, now)
	}
	p.mu.Unlock()
	p.log.Info("publication scanned the history", "first_month", monthOf(first), "last_month", monthOf(last), "stale_months", len(stale))
	return nil
}

func prevMonth(m string) string {
	from, _, err := monthRange(m)
	if err != nil {
		return ""
	}
	return monthOf(from.AddDate(0, -1, 0))
}

// countingHash hashes and counts what is written through it.
type countingHash struct {
	h hash.Hash
	n int64
}

func (c *countingHash) Write(b []byte) (int, error) {
	c.n += int64(len(b))
	return c.h.Write(b)
}

// publishMonth builds a month's Parquet file from the database into a temp
// file, streaming (a month is millions of rows), and uploads it unless the
// destination already has these exact bytes with the right cache lifetime.
func (p *Publisher) publishMonth(ctx context.Context, month string) (err error) {
	start := p.cfg.Now()
	f, err := os.CreateTemp(p.cfg.TempDir, "parking-"+month+"-*.parquet")
	if err != nil {
		return fmt.Errorf("publish %s: %w", month, err)
	}
	defer func() {
		f.Close()
		os.Remove(f.Name())
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	ch := &countingHash{h: sha256.New()}
	stats, err := WriteMonth(ctx, p.cfg.DB, month, io.MultiWriter(bw, ch))
	if err != nil {
		return fmt.Errorf("publish %s: %w", month, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("publish %s: %w", month, err)
	}
	p.mu.Lock()
	p.built[month] = start
	p.mu.Unlock()
	built := time.Since(start)
	if stats.Rows == 0 {
		return nil
	}
	sum := hex.EncodeToString(ch.h.Sum(nil))
	cache := monthCache(month, p.cfg.Now())
	if st := p.state.Months[month]; st.SHA256 == sum && st.CacheControl == cache && st.Layout == export.ParquetLayout {
		p.log.Debug("month unchanged", "month", month, "rows", stats.Rows)
		p.state.Months[month] = monthState{ObservationStats: stats, Layout: st.Layout, SHA256: sum, Bytes: ch.n, CacheControl: cache, At: st.At}
		return nil
	}
	if err := p.put(ctx, ObjectMonth, MonthKey(month), f, ch.n, store.ObjectOptions{ContentType: TypeParquet, CacheControl: cache}); err != nil {
		return err
	}
	p.log.Info("month published", "month", month, "rows", stats.Rows, "bytes", ch.n,
		"bytes_per_observation", float64(ch.n)/float64(stats.Rows), "build_ms", built.Milliseconds())
	p.state.Months[month] = monthState{ObservationStats: stats, Layout: export.ParquetLayout, SHA256: sum, Bytes: ch.n, CacheControl: cache, At: p.cfg.Now()}
	p.saveState(ctx)
	return nil
}

// WriteMonth writes a month's observations ("2026-11", Taipei) as one
// Parquet file to w, streaming them from db, and returns what it holds.
func WriteMonth(ctx context.Context, db *sqlite.DB, month string, w io.Writer) (sqlite.ObservationStats, error) {
	from, to, err := monthRange(month)
	if err != nil {
		return sqlite.ObservationStats{}, err
	}
	pw := export.NewAvailabilityParquet(w)
	if err := db.Observations(ctx, from, to, pw.Write); err != nil {
		return sqlite.ObservationStats{}, err
	}
	return pw.Close()
}

// publishDB copies the database (VACUUM INTO, consistent) into a temp file
// and publishes it as parking.db, and as the day's copy if it is the day's
// first.
func (p *Publisher) publishDB(ctx context.Context) error {
	dir, err := os.MkdirTemp(p.cfg.TempDir, "parking-publish-")
	if err != nil {
		return fmt.Errorf("publish the database: %w", err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "parking.db")
	now := p.cfg.Now()
	start := time.Now()
	if err := p.cfg.DB.Backup(ctx, path); err != nil {
		return fmt.Errorf("publish the database: %w", err)
	}
	copied := time.Since(start)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("publish the database: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("publish the database: %w", err)
	}
	if err := p.put(ctx, ObjectDB, KeyDB, f, fi.Size(), store.ObjectOptions{ContentType: TypeSQLite, CacheControl: CacheDB}); err != nil {
		return err
	}
	p.log.Info("database published", "bytes", fi.Size(), "copy_ms", copied.Milliseconds())
	if day := dayOf(now); p.state.Daily != day {
		err := p.put(ctx, ObjectDaily, DailyKey(day), f, fi.Size(),
			store.ObjectOptions{ContentType: TypeSQLite, CacheControl: CacheDaily, IfAbsent: true})
		switch {
		case errors.Is(err, store.ErrExists):
			p.log.Info("the day's database copy is already published", "key", DailyKey(day))
		case err != nil:
			return err
		}
		p.state.Daily = day
	}
	p.state.DBAt = now
	p.mu.Lock()
	p.dbDue = now.Add(p.cfg.DBEvery)
	p.mu.Unlock()
	p.saveState(ctx)
	return nil
}

// siteFile is one file of the map page.
type siteFile struct {
	path, contentType, sha256 string
}

// readSite lists and hashes the map page's files, assets first and
// index.html last, so a new page never references an asset not yet there.
// A name that is not a valid key or a type without a known Content-Type is
// a configuration error, reported at start.
func readSite(site fs.FS) ([]siteFile, error) {
	if site == nil {
		return nil, nil
	}
	var files []siteFile
	err := fs.WalkDir(site, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		if err := store.CheckObjectKey(name); err != nil {
			return fmt.Errorf("site file %s: %w", name, err)
		}
		ct, err := siteType(name)
		if err != nil {
			return err
		}
		b, err := fs.ReadFile(site, name)
		if err != nil {
			return err
		}
		files = append(files, siteFile{path: name, contentType: ct, sha256: sum256(b)})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("publish: read the map page: %w", err)
	}
	if !slices.ContainsFunc(files, func(f siteFile) bool { return f.path == "index.html" }) {
		return nil, errors.New("publish: the map page has no index.html at its root")
	}
	slices.SortStableFunc(files, func(a, b siteFile) int {
		return boolInt(a.path == "index.html") - boolInt(b.path == "index.html")
	})
	return files, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// publishSite uploads the map page's files whose content changed since they
// were last published. Files since removed from the page stay (the loader
// may not delete): nothing links to them.
func (p *Publisher) publishSite(ctx context.Context) error {
	changed := 0
	for _, f := range p.site {
		if p.state.Site[f.path] == f.sha256 {
			continue
		}
		b, err := fs.ReadFile(p.cfg.Site, f.path)
		if err != nil {
			return fmt.Errorf("publish the map page: %w", err)
		}
		if sum256(b) != f.sha256 {
			return fmt.Errorf("publish the map page: %s changed while the loader ran", f.path)
		}
		if err := p.put(ctx, ObjectSite, f.path, bytes.NewReader(b), int64(len(b)),
			store.ObjectOptions{ContentType: f.contentType, CacheControl: CacheSite}); err != nil {
			return err
		}
		p.state.Site[f.path] = f.sha256
		changed++
	}
	if changed > 0 {
		p.saveState(ctx)
	}
	p.log.Info("map page published", "files", len(p.site), "changed", changed)
	return nil
}

// saveState records the state in the database. A failure is a warning: the
// objects are published, and the next start at worst publishes them again.
func (p *Publisher) saveState(ctx context.Context) {
	if err := p.state.save(ctx, p.cfg.DB, p.dest); err != nil {
		p.log.Warn("publication state not saved; the next start may publish again", "err", err)
	}
}
