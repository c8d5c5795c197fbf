package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// benchObservations is the size of the database the migration and
// retraction benchmarks build: BENCH_OBSERVATIONS, default a million;
// 45000000 is a year of the live feed (1,430 lots, ~30% with a value, every
// 5 minutes, ~14 bytes each: ~650 MB).
func benchObservations(b *testing.B) int {
	n := 1_000_000
	if v := os.Getenv("BENCH_OBSERVATIONS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("BENCH_OBSERVATIONS=%q: want a positive integer", v)
		}
	}
	return n
}

// yearScaleV1 writes, at path, a database at schema version 1 holding n
// observations of 1,430 lots, 430 a fetch (the live feed's valid ones),
// every 5 minutes from 2026-01-01, in key order as the loader appends them.
func yearScaleV1(b *testing.B, path string, n int) {
	b.Helper()
	ctx := context.Background()
	db, err := Open(ctx, path, Options{CacheKiB: 64000})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	const lots, perFetch = 1430, 430
	if _, err := db.conn.ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
		INSERT INTO lot_ids (n, id) SELECT i, printf('%06d', 10000 + i) FROM n`, lots); err != nil {
		b.Fatal(err)
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, taipei).Unix()
	// One statement per fetch: SQLite generates the rows, the Go driver
	// only crosses for each fetch.
	tx, err := db.conn.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	ins, err := tx.PrepareContext(ctx, `WITH RECURSIVE l(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM l WHERE j < ?2 - 1)
		INSERT INTO availability_obs (k, v) SELECT (?1 << 16) | (1 + (j * 3 + ?3) % 1430), (j * 7 + ?3) % 300 FROM l ORDER BY 1`)
	if err != nil {
		b.Fatal(err)
	}
	for f, done := 0, 0; done < n; f++ {
		rows := min(perFetch, n-done)
		if _, err := ins.ExecContext(ctx, start+int64(f)*300, rows, f%3); err != nil {
			b.Fatal(err)
		}
		done += rows
		if f%2000 == 1999 {
			ins.Close()
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
			if tx, err = db.conn.BeginTx(ctx, nil); err != nil {
				b.Fatal(err)
			}
			if ins, err = tx.PrepareContext(ctx, `WITH RECURSIVE l(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM l WHERE j < ?2 - 1)
				INSERT INTO availability_obs (k, v) SELECT (?1 << 16) | (1 + (j * 3 + ?3) % 1430), (j * 7 + ?3) % 300 FROM l ORDER BY 1`); err != nil {
				b.Fatal(err)
			}
		}
	}
	ins.Close()
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	// Back to the schema a database of the previous release has: what 0002
	// added goes, the view of 0001 comes back.
	for _, q := range []string{
		"DROP TABLE availability_obs_overflow", "DROP TABLE retractions", "DROP VIEW availability",
		`CREATE VIEW availability AS
		SELECT l.id AS parking_id, o.v AS available_car,
		       strftime('%Y-%m-%dT%H:%M:%S+08:00', (o.k >> 16) + 28800, 'unixepoch') AS recorded_at
		FROM availability_obs o JOIN lot_ids l ON l.n = (o.k & 65535)`,
		"PRAGMA user_version = 1",
	} {
		if _, err := db.conn.ExecContext(ctx, q); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
}

func copyBench(b *testing.B, from, to string) {
	b.Helper()
	src, err := os.Open(from)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		b.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkYearScale builds a database of the previous schema once
// (BENCH_OBSERVATIONS observations), as in
//
//	BENCH_OBSERVATIONS=45000000 go test ./shared/sqlite/ -run '^$' -bench YearScale -benchtime 1x
//
// and measures on it Migration0002, what the 0002 migration adds to a
// loader's start (its transaction, as Open runs it; and Open of the migrated
// database for scale: quick_check reads every page), and
// RetractObservationScan, the worst case of a retraction's look for the
// latest values it took out: a lot no other snapshot has, which scans every
// stored observation.
func BenchmarkYearScale(b *testing.B) {
	n := benchObservations(b)
	dir := b.TempDir()
	v1 := filepath.Join(dir, "v1.db")
	built := time.Now()
	yearScaleV1(b, v1, n)
	st, err := os.Stat(v1)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("built a version-1 database of %d observations, %d MB, in %s", n, st.Size()>>20, time.Since(built).Round(time.Second))
	ctx := context.Background()
	work := filepath.Join(dir, "work.db")

	b.Run("Migration0002", func(b *testing.B) {
		var migrate, open time.Duration
		for range b.N {
			b.StopTimer()
			copyBench(b, v1, work)
			sqldb, err := sql.Open("sqlite", work)
			if err != nil {
				b.Fatal(err)
			}
			conn, err := sqldb.Conn(ctx)
			if err != nil {
				b.Fatal(err)
			}
			for _, p := range []string{"PRAGMA locking_mode = EXCLUSIVE", "PRAGMA journal_mode = DELETE", "PRAGMA synchronous = FULL"} {
				if _, err := conn.ExecContext(ctx, p); err != nil {
					b.Fatal(err)
				}
			}
			db := &DB{path: work, sql: sqldb, conn: conn, logger: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now}
			b.StartTimer()
			t := time.Now()
			if err := db.migrate(ctx); err != nil {
				b.Fatal(err)
			}
			migrate += time.Since(t)
			b.StopTimer()
			if err := db.Close(); err != nil {
				b.Fatal(err)
			}
			t = time.Now()
			reopened, err := Open(ctx, work, Options{})
			if err != nil {
				b.Fatal(err)
			}
			open += time.Since(t)
			var after int
			if err := reopened.conn.QueryRowContext(ctx, "SELECT count(*) FROM availability").Scan(&after); err != nil || after != n {
				b.Fatalf("after the migration the view has %d observations (%v), want %d", after, err, n)
			}
			reopened.Close()
			b.StartTimer()
		}
		b.ReportMetric(float64(migrate.Milliseconds())/float64(b.N), "migrate-ms")
		b.ReportMetric(float64(open.Milliseconds())/float64(b.N), "open-migrated-ms")
	})

	b.Run("RetractObservationScan", func(b *testing.B) {
		copyBench(b, v1, work)
		db, err := Open(ctx, work, Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		if _, err := db.conn.ExecContext(ctx, "INSERT INTO lot_ids (n, id) VALUES (5000, 'NOOBS1')"); err != nil {
			b.Fatal(err)
		}
		db.lotIDs["NOOBS1"] = 5000
		b.ResetTimer()
		for range b.N {
			a := &applier{db: db, newIDs: map[string]int64{}, stmts: map[string]*sql.Stmt{}}
			err := db.withTx(ctx, nil, func(tx *sql.Tx) error {
				a.tx = tx
				defer a.closeStmts()
				changed, err := a.restoreLatestFromObservations(ctx, 1<<40, map[string]bool{"NOOBS1": true}, map[string]int64{})
				if err == nil && changed != 0 {
					err = fmt.Errorf("changed %d latest values for a lot without observations", changed)
				}
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "observations/s")
	})
}
