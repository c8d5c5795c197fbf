// Command gen-scale-db writes a parking database of years of history for
// benchmarks (see internal/scaledb), in minutes rather than the hours an
// apply of every live snapshot would take:
//
//	go run ./internal/cmd/gen-scale-db -out /tmp/year.db
//	go run ./internal/cmd/gen-scale-db -years 5 -out /tmp/five.db
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"

	"github.com/parking-newtaipei/parking-newtaipei/internal/scaledb"
)

func main() {
	cfg := scaledb.Defaults()
	years := flag.Int("years", 0, "years of history (sets -days to 365 a year)")
	flag.StringVar(&cfg.Path, "out", "", "database file to write (must not exist)")
	flag.IntVar(&cfg.Days, "days", cfg.Days, "days of history")
	flag.IntVar(&cfg.Lots, "lots", cfg.Lots, "lots in the feeds")
	flag.DurationVar(&cfg.Every, "every", cfg.Every, "live feed period")
	flag.Float64Var(&cfg.LiveShare, "live-share", cfg.LiveShare, "share of lots with live figures")
	flag.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "random seed (the same seed writes the same data)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile to this file")
	flag.Parse()
	if cfg.Path == "" {
		fmt.Fprintln(os.Stderr, "gen-scale-db: -out is required")
		os.Exit(2)
	}
	if *years > 0 {
		cfg.Days = 365 * *years
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "gen-scale-db:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "gen-scale-db:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	sum, err := scaledb.Generate(ctx, cfg)
	if err != nil {
		cfg.Logger.Error("gen-scale-db", "err", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
	json.NewEncoder(os.Stdout).Encode(map[string]any{"path": cfg.Path, "lots": sum.Lots, "lots_snapshots": sum.LotsSnapshots,
		"live_snapshots": sum.LiveSnapshots, "observations": sum.Observations, "bytes": sum.Bytes, "seconds": sum.Took.Seconds()})
}
