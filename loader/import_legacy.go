package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/parking-newtaipei/parking-newtaipei/shared/cli"
	"github.com/parking-newtaipei/parking-newtaipei/shared/load/legacy"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
)

// legacyBatch is how many observations one import transaction holds: large
// enough that commits are rare on a network file system, small enough to
// keep memory flat (a month of the original is millions of rows).
const legacyBatch = 50_000

// ImportSummary is what import-legacy prints on stdout.
type ImportSummary struct {
	Lots  sqlite.LegacyImport `json:"lots"`
	Files []FileImport        `json:"availability_files"`
	// Observations totals the files.
	Observations sqlite.LegacyImport `json:"observations"`
}

// FileImport is one availability_YYYYMM.db.
type FileImport struct {
	File string `json:"file"`
	sqlite.LegacyImport
	legacy.AvailabilityStats
}

func runImportLegacy(ctx context.Context, f *cli.Flags, args []string) int {
	var (
		cfg               Config
		parkingDB, availD string
	)
	cfg.bindDB(f)
	f.String(&parkingDB, "parking-db", "", "", "the original's data/db/parking.db")
	f.String(&availD, "availability-dir", "", "", "the original's data/availability directory (availability_YYYYMM.db files)")
	log, err := f.Start(args, &cfg)
	if err != nil {
		return f.UsageError(err)
	}
	if parkingDB == "" && availD == "" {
		return f.UsageError(errors.New("give -parking-db, -availability-dir, or both"))
	}
	db, code, ok := openAlone(ctx, f, cfg, log,
		"Stop the running loader first: the import writes the database directly.", sqlite.Options{})
	if !ok {
		return code
	}
	defer db.Close()
	sum, err := importLegacy(ctx, db, log, parkingDB, availD)
	cli.PrintJSON(f.Stdout, sum)
	if err != nil {
		log.Error("import-legacy stopped; run it again to continue (what is imported is skipped)", "err", err)
		return cli.ExitError
	}
	log.Info("import-legacy finished", "lots_imported", sum.Lots.Imported, "lots_skipped", sum.Lots.Skipped,
		"observations_imported", sum.Observations.Imported, "observations_skipped", sum.Observations.Skipped,
		"files", len(sum.Files))
	return cli.ExitOK
}

// importLegacy imports the lots first, so the observations' lots are known.
func importLegacy(ctx context.Context, db *sqlite.DB, log *slog.Logger, parkingDB, availDir string) (ImportSummary, error) {
	var sum ImportSummary
	if parkingDB != "" {
		lots, err := legacy.ReadLots(ctx, parkingDB)
		if err != nil {
			return sum, err
		}
		if sum.Lots, err = db.ImportLegacyLots(ctx, lots); err != nil {
			return sum, err
		}
		log.Info("legacy lots imported", "file", parkingDB, "imported", sum.Lots.Imported, "skipped", sum.Lots.Skipped)
	}
	if availDir == "" {
		return sum, nil
	}
	files, err := legacy.AvailabilityFiles(availDir)
	if err != nil {
		return sum, err
	}
	for _, path := range files {
		fi := FileImport{File: filepath.Base(path)}
		st, err := legacy.ReadAvailability(ctx, path, legacyBatch, func(obs []sqlite.LegacyObservation) error {
			r, err := db.ImportLegacyObservations(ctx, obs)
			if err != nil {
				return err
			}
			fi.Imported += r.Imported
			fi.Skipped += r.Skipped
			fi.Merged += r.Merged
			return nil
		})
		fi.AvailabilityStats = st
		sum.Files = append(sum.Files, fi)
		sum.Observations.Imported += fi.Imported
		sum.Observations.Skipped += fi.Skipped
		sum.Observations.Merged += fi.Merged
		if err != nil {
			return sum, fmt.Errorf("%s: %w", path, err)
		}
		log.Info("legacy availability imported", "file", fi.File, "rows", st.Rows, "imported", fi.Imported,
			"skipped", fi.Skipped, "merged", fi.Merged, "not_observations", st.NotObservations)
	}
	return sum, nil
}
