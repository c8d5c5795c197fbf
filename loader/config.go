package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/cli"
	"github.com/parking-newtaipei/parking-newtaipei/shared/export/publish"
	"github.com/parking-newtaipei/parking-newtaipei/shared/load/consume"
	"github.com/parking-newtaipei/parking-newtaipei/shared/ops/redact"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
	"github.com/parking-newtaipei/parking-newtaipei/shared/web/livemap"
)

// Config is the loader's configuration, from flags and the environment.
// Each command binds the settings it uses; Validate checks those.
type Config struct {
	Store     string
	Queue     string
	DB        string
	DBLocking string
	DBCheck   string
	LogLevel  string
	HTTPAddr  string
	MapTiles  string

	// Consume settings.
	Drain           bool
	WaitLock        bool
	AllowMassDelete bool
	ShutdownTimeout time.Duration
	PollWait        time.Duration
	Visibility      time.Duration
	Reconcile       time.Duration

	// Exports written after each applied availability snapshot.
	LatestJSON string
	GeoJSON    string

	// Publication (shared/export/publish): a destination URL, empty when off.
	Publish        string
	PublishDBEvery time.Duration

	// Backups of a running loader (VACUUM INTO, rotated).
	BackupDir   string
	BackupEvery time.Duration
	BackupKeep  int

	// local only: the feed, and the healthcheck ping URLs of its jobs (never
	// logged: anyone with one can report the job healthy).
	FeedBaseURL      string
	PingLots         string `json:"-"`
	PingAvailability string `json:"-"`
}

// bindDB registers the settings of every command that opens the database.
func (c *Config) bindDB(f *cli.Flags) {
	f.String(&c.DB, "db", "PARKING_DB", "./data/parking.db", "SQLite database file")
	f.String(&c.DBLocking, "db-locking", "PARKING_DB_LOCKING", "auto", "auto (WAL on a local disk, exclusive on NFS/EFS, SMB, FUSE), exclusive or shared (WAL: other processes read while the loader writes)")
	f.String(&c.DBCheck, "db-check", "PARKING_DB_CHECK", "bounded", "database check at open: bounded (a cost that does not grow with the history) or full (every page: minutes at years of history)")
	f.LogLevel(&c.LogLevel)
}

// bindHTTPAddr registers -http-addr; usage says what the command does with
// it. Off by default for serve (the image sets it), on for local, where the
// map should be one click away.
func (c *Config) bindHTTPAddr(f *cli.Flags, def, usage string) {
	f.String(&c.HTTPAddr, "http-addr", "PARKING_HTTP_ADDR", def, usage)
}

// httpServeUsage is what serve and local do with -http-addr.
const httpServeUsage = "address for /healthz, /readyz, /metrics, the read API /api/v1/ and the live map / (off when empty)"

// bindAllowMassDelete registers -allow-mass-delete: every command that applies snapshots has it.
func (c *Config) bindAllowMassDelete(f *cli.Flags) {
	f.Bool(&c.AllowMassDelete, "allow-mass-delete", "PARKING_ALLOW_MASS_DELETE", false, "apply lots snapshots that soft-delete or blank more than half of the active lots, and availability snapshots with more than 5,000 new lot IDs")
}

// bindConsume registers the settings of the consume loop (serve and local).
func (c *Config) bindConsume(f *cli.Flags) {
	c.bindDB(f)
	f.Store(&c.Store)
	f.Queue(&c.Queue)
	f.String(&c.MapTiles, "map-tiles", "PARKING_MAP_TILES", livemap.DefaultTiles, "tile URL template of the live map's background ({z}/{x}/{y}); none: a plain background")
	f.Bool(&c.WaitLock, "wait-lock", "PARKING_WAIT_LOCK", false, "wait as a standby while another loader holds the database, instead of failing")
	c.bindAllowMassDelete(f)
	f.Duration(&c.ShutdownTimeout, "shutdown-timeout", "PARKING_SHUTDOWN_TIMEOUT", consume.DefaultShutdownTimeout, "deadline of a graceful stop (keep it under ECS's stopTimeout)")
	f.Duration(&c.PollWait, "poll-wait", "PARKING_POLL_WAIT", consume.DefaultWait, "long-poll wait of each receive (at most "+queue.MaxWait.String()+" on SQS)")
	f.Duration(&c.Visibility, "visibility", "PARKING_VISIBILITY", consume.DefaultVisibility, "visibility timeout of received messages (extended while work is in flight)")
	f.Duration(&c.Reconcile, "reconcile", "PARKING_RECONCILE", 0, "on start, apply stored snapshots of this recent window missing from the ledger (0: off)")
	f.String(&c.LatestJSON, "latest-json", "PARKING_LATEST_JSON", "./data/availability.json", "latest-availability JSON written after each availability apply (empty: off)")
	f.String(&c.BackupDir, "backup-dir", "PARKING_BACKUP_DIR", "", "write a backup of the database (VACUUM INTO) here every -backup-every (empty: off)")
	f.Duration(&c.BackupEvery, "backup-every", "PARKING_BACKUP_EVERY", 24*time.Hour, "how often to back up into -backup-dir")
	f.Int(&c.BackupKeep, "backup-keep", "PARKING_BACKUP_KEEP", 7, "how many backups to keep in -backup-dir")
	f.String(&c.GeoJSON, "geojson", "PARKING_GEOJSON", "./data/lots.geojson", "GeoJSON of the active lots written after each availability apply (empty: off)")
	f.String(&c.Publish, "publish", "PARKING_PUBLISH", "", "keep the exports, database copies and the Parquet history up to date here: file://DIR or s3://BUCKET/PREFIX (empty: off)")
	f.Duration(&c.PublishDBEvery, "publish-db-every", "PARKING_PUBLISH_DB_EVERY", time.Hour, "how often to publish parking.db (and once at a graceful stop)")
}

// Validate checks the configuration before anything runs.
func (c *Config) Validate() error {
	var errs []error
	if c.DB == "" {
		errs = append(errs, errors.New("-db is empty"))
	}
	for _, u := range []struct{ name, value string }{{"-store", c.Store}, {"-queue", c.Queue}, {"-feed-base-url", c.FeedBaseURL}} {
		if u.value == "" {
			continue
		}
		if p, err := url.Parse(u.value); err != nil || p.Scheme == "" {
			errs = append(errs, fmt.Errorf("%s %q: not a URL", u.name, redact.URL(u.value)))
		}
	}
	if _, err := sqlite.ParseLocking(c.DBLocking); err != nil {
		errs = append(errs, fmt.Errorf("-db-locking: %w", err))
	}
	if _, err := sqlite.ParseCheck(c.DBCheck); err != nil {
		errs = append(errs, fmt.Errorf("-db-check: %w", err))
	}
	if err := (livemap.Config{Tiles: c.MapTiles}).Validate(); err != nil {
		errs = append(errs, fmt.Errorf("-map-tiles: %w", err))
	}
	if c.ShutdownTimeout < 0 || c.PollWait < 0 || c.Visibility < 0 || c.Reconcile < 0 {
		errs = append(errs, errors.New("durations must not be negative"))
	}
	if c.BackupDir != "" && (c.BackupEvery < time.Minute || c.BackupKeep < 1) {
		errs = append(errs, fmt.Errorf("-backup-every %s / -backup-keep %d: at least 1m and 1", c.BackupEvery, c.BackupKeep))
	}
	if c.Publish != "" {
		if err := publish.CheckURL(c.Publish, c.Store); err != nil {
			errs = append(errs, err)
		}
		if c.PublishDBEvery < time.Minute {
			errs = append(errs, fmt.Errorf("-publish-db-every %s: at least 1m", c.PublishDBEvery))
		}
	}
	if c.PollWait > queue.MaxWait {
		errs = append(errs, fmt.Errorf("-poll-wait %s: SQS allows at most %s", c.PollWait, queue.MaxWait))
	}
	if c.Visibility != 0 && c.Visibility < 2*time.Second {
		errs = append(errs, fmt.Errorf("-visibility %s: at least 2s", c.Visibility))
	}
	if _, err := cli.ParseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// openAlone opens the database for a command that must have it to itself.
// A running loader's lock is a refusal, explained with hint (exit code 2,
// cli.ExitSkipped); ok is false whenever the command should return code.
func openAlone(ctx context.Context, f *cli.Flags, cfg Config, log *slog.Logger, hint string, opts sqlite.Options) (db *sqlite.DB, code int, ok bool) {
	opts.Logger = log
	opts.Locking = sqlite.Locking(cfg.DBLocking)
	opts.Check = sqlite.Check(cfg.DBCheck)
	db, err := sqlite.Open(ctx, cfg.DB, opts)
	if errors.Is(err, sqlite.ErrLocked) {
		return nil, refuse(f, err, hint), false
	}
	if err != nil {
		log.Error(f.Name(), "db", cfg.DB, "err", err)
		return nil, cli.ExitError, false
	}
	return db, cli.ExitOK, true
}

// refuse explains that a running loader holds the database, and what to do
// instead (hint), and returns exit code 2.
func refuse(f *cli.Flags, err error, hint string) int {
	fmt.Fprintf(f.Stderr, "%s: refused: %v\n%s\n", f.Name(), err, hint)
	return cli.ExitSkipped
}
