// Command gen-scale-db writes a year-scale parking database for benchmarks
// (see internal/scaledb): go run ./internal/cmd/gen-scale-db -out /tmp/year.db
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"

	"github.com/parking-newtaipei/parking-newtaipei/internal/scaledb"
)

func main() {
	cfg := scaledb.Defaults()
	flag.StringVar(&cfg.Path, "out", "", "database file to write (must not exist)")
	flag.IntVar(&cfg.Days, "days", cfg.Days, "days of history")
	flag.IntVar(&cfg.Lots, "lots", cfg.Lots, "lots in the feeds")
	flag.DurationVar(&cfg.Every, "every", cfg.Every, "live feed period")
	flag.Float64Var(&cfg.LiveShare, "live-share", cfg.LiveShare, "share of lots with live figures")
	flag.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "random seed (the same seed writes the same data)")
	flag.Parse()
	if cfg.Path == "" {
		fmt.Fprintln(os.Stderr, "gen-scale-db: -out is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	sum, err := scaledb.Generate(ctx, cfg)
	if err != nil {
		cfg.Logger.Error("gen-scale-db", "err", err)
		os.Exit(1)
	}
	json.NewEncoder(os.Stdout).Encode(map[string]any{"path": cfg.Path, "lots": sum.Lots, "lots_snapshots": sum.LotsSnapshots,
		"live_snapshots": sum.LiveSnapshots, "observations": sum.Observations, "bytes": sum.Bytes, "seconds": sum.Took.Seconds()})
}
