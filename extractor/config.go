package main

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/parking-newtaipei/parking-newtaipei/shared/cli"
	"github.com/parking-newtaipei/parking-newtaipei/shared/ops/redact"
)

// Config is the extractor's configuration, from flags and the environment.
type Config struct {
	Store       string
	Queue       string
	FeedBaseURL string
	LogLevel    string
	// Healthcheck ping URLs (healthchecks.io style), per dataset. Never
	// logged: anyone with one can report the job healthy.
	PingLots         string `json:"-"`
	PingAvailability string `json:"-"`
}

// bind registers the settings every extractor command shares.
func (c *Config) bind(f *cli.Flags) {
	f.Store(&c.Store)
	f.Queue(&c.Queue)
	f.FeedBaseURL(&c.FeedBaseURL)
	f.LogLevel(&c.LogLevel)
	f.Healthchecks(&c.PingLots, &c.PingAvailability)
}

// Validate checks the configuration before anything runs.
func (c *Config) Validate() error {
	var errs []error
	for _, u := range []struct{ name, value string }{{"-store", c.Store}, {"-queue", c.Queue}, {"-feed-base-url", c.FeedBaseURL}} {
		p, err := url.Parse(u.value)
		if err != nil || p.Scheme == "" {
			errs = append(errs, fmt.Errorf("%s %q: not a URL", u.name, redact.URL(u.value)))
		}
	}
	if p, err := url.Parse(c.FeedBaseURL); err == nil && p.Scheme != "http" && p.Scheme != "https" {
		errs = append(errs, fmt.Errorf("-feed-base-url %q: want http or https", redact.URL(c.FeedBaseURL)))
	}
	if _, err := cli.ParseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
