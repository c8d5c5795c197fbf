package main

import (
	"context"
	"io"
	"log/slog"

	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/export/publish"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"

	"github.com/parking-newtaipei/parking-newtaipei/shared/cli"
)

// Config is the loader's configuration, from flags and the environment.
type Config struct {
	Store    string
	Queue    string
	DB       string
	LogLevel string
	HTTPAddr string

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

	// local only.
	FeedBaseURL string
}

// bindCommon registers the flags every loader command shares.
func (c *Config) bindCommon(f *cli.Flags) {
	f.String(&c.DB, "db", "PARKING_DB", "./data/parking.db", "SQLite database file")
	f.String(&c.LogLevel, "log-level", "LOG_LEVEL", "info", "log level: debug, info, warn, error")
}

// bindBackends registers the store and queue flags.
func (c *Config) bindBackends(f *cli.Flags) {
	f.String(&c.Store, "store", "PARKING_STORE", "file://./data/snapshots", "snapshot store URL: file://DIR or s3://BUCKET/PREFIX")
	f.String(&c.Queue, "queue", "PARKING_QUEUE", "sqlite://./data/queue.db", "queue URL: sqlite://FILE or an SQS queue URL")
}

// bindConsume registers the flags of the consume loop.
func (c *Config) bindConsume(f *cli.Flags) {
	c.bindBackends(f)
	f.String(&c.HTTPAddr, "http-addr", "PARKING_HTTP_ADDR", "", "address for /healthz, /readyz and /metrics (off when empty)")
	f.Bool(&c.WaitLock, "wait-lock", "PARKING_WAIT_LOCK", false, "wait as a standby while another loader holds the database, instead of failing")
	f.Bool(&c.AllowMassDelete, "allow-mass-delete", "PARKING_ALLOW_MASS_DELETE", false, "apply lots snapshots that soft-delete more than half of the active lots")
	f.Duration(&c.ShutdownTimeout, "shutdown-timeout", "PARKING_SHUTDOWN_TIMEOUT", 25*time.Second, "deadline of a graceful stop (keep it under ECS's stopTimeout)")
	f.Duration(&c.PollWait, "poll-wait", "PARKING_POLL_WAIT", 20*time.Second, "long-poll wait of each receive (at most 20s on SQS)")
	f.Duration(&c.Visibility, "visibility", "PARKING_VISIBILITY", 2*time.Minute, "visibility timeout of received messages (extended while work is in flight)")
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
			errs = append(errs, fmt.Errorf("%s %q: not a URL", u.name, u.value))
		}
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
	if c.PollWait > 20*time.Second {
		errs = append(errs, fmt.Errorf("-poll-wait %s: SQS allows at most 20s", c.PollWait))
	}
	if c.Visibility != 0 && c.Visibility < 2*time.Second {
		errs = append(errs, fmt.Errorf("-visibility %s: at least 2s", c.Visibility))
	}
	if _, err := cli.NewLogger(io.Discard, c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// parse parses a command's flags, validates the configuration and returns
// the command's logger: every command starts the same way.
func (c *Config) parse(f *cli.Flags, args []string, stderr io.Writer) (*slog.Logger, error) {
	if err := f.Parse(args); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return cli.NewLogger(stderr, c.LogLevel)
}

// openAlone opens the database for a command that must have it to itself.
// A running loader's lock is a refusal, explained with hint, and exit code 2
// (cli.ExitSkipped); ok is false whenever the command should return code.
func openAlone(ctx context.Context, cfg Config, log *slog.Logger, stderr io.Writer, command, hint string, opts sqlite.Options) (db *sqlite.DB, code int, ok bool) {
	opts.Logger = log
	db, err := sqlite.Open(ctx, cfg.DB, opts)
	if errors.Is(err, sqlite.ErrLocked) {
		fmt.Fprintf(stderr, "loader %s: refused: %v\n%s\n", command, err, hint)
		return nil, cli.ExitSkipped, false
	}
	if err != nil {
		log.Error(command, "db", cfg.DB, "err", err)
		return nil, cli.ExitError, false
	}
	return db, cli.ExitOK, true
}
