package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"

	"github.com/parking-newtaipei/parking-newtaipei/shared/cli"
)

// Config is the extractor's configuration, from flags and the environment.
type Config struct {
	Store       string
	Queue       string
	FeedBaseURL string
	LogLevel    string
	// Healthcheck ping URLs (healthchecks.io style), per dataset.
	PingLots         string
	PingAvailability string
}

// bind registers the flags every extractor command shares.
func (c *Config) bind(f *cli.Flags) {
	f.String(&c.Store, "store", "PARKING_STORE", "file://./data/snapshots", "snapshot store URL: file://DIR or s3://BUCKET/PREFIX")
	f.String(&c.Queue, "queue", "PARKING_QUEUE", "sqlite://./data/queue.db", "queue URL: sqlite://FILE or an SQS queue URL")
	f.String(&c.FeedBaseURL, "feed-base-url", "PARKING_FEED_BASE_URL", "https://data.ntpc.gov.tw", "base URL of the city's open-data platform")
	f.String(&c.LogLevel, "log-level", "LOG_LEVEL", "info", "log level: debug, info, warn, error")
	c.PingLots = f.Env()("HEALTHCHECK_PARKING_URL")
	c.PingAvailability = f.Env()("HEALTHCHECK_AVAILABILITY_URL")
}

// Validate checks the configuration before anything runs.
func (c *Config) Validate() error {
	var errs []error
	for _, u := range []struct{ name, value string }{{"-store", c.Store}, {"-queue", c.Queue}, {"-feed-base-url", c.FeedBaseURL}} {
		p, err := url.Parse(u.value)
		if err != nil || p.Scheme == "" {
			errs = append(errs, fmt.Errorf("%s %q: not a URL", u.name, u.value))
		}
	}
	if p, err := url.Parse(c.FeedBaseURL); err == nil && p.Scheme != "http" && p.Scheme != "https" {
		errs = append(errs, fmt.Errorf("-feed-base-url %q: want http or https", c.FeedBaseURL))
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
