package main

import (
	"context"

	"github.com/parking-newtaipei/parking-newtaipei/shared/export/publish"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store/s3store"
	"github.com/parking-newtaipei/parking-newtaipei/shared/web/livemap"
)

// startPublisher starts publication when -publish is set (nil when off: a
// nil *publish.Publisher ignores Notify and Close). It runs beside the
// consume loop, which only tells it what each commit changed.
func (l *loader) startPublisher(ctx context.Context, m publish.Metrics) (*publish.Publisher, error) {
	if l.cfg.Publish == "" {
		return nil, nil
	}
	dest, err := publish.OpenDestination(ctx, l.cfg.Publish, s3store.Options{})
	if err != nil {
		return nil, err
	}
	// The map page, reading lots.geojson and availability.json beside it by
	// relative URL: there is no API on a static site.
	site, err := livemap.Site(livemap.Config{Tiles: l.cfg.MapTiles, Data: livemap.DataStatic})
	if err != nil {
		return nil, err
	}
	p, err := publish.New(publish.Config{
		Destination: dest, DB: l.db, Site: site, DBEvery: l.cfg.PublishDBEvery, Logger: l.log, Metrics: m,
	})
	if err != nil {
		return nil, err
	}
	p.Start(ctx)
	return p, nil
}

// stopPublisher publishes what is pending and a last parking.db, within the
// same deadline as the consume loop's graceful stop. A failure is logged:
// it never changes the exit code, and the next start catches up.
func (l *loader) stopPublisher(ctx context.Context, p *publish.Publisher) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.cfg.ShutdownTimeout)
	defer cancel()
	if err := p.Close(sctx); err != nil {
		l.log.Error("publication incomplete at stop; the next start publishes the rest", "err", err)
	}
}
