package cli

// This file binds the settings both binaries have, each once, with the
// name, environment variable and default of the README's configuration
// table, and the flags that name a dataset.

import "github.com/parking-newtaipei/parking-newtaipei/shared/feed"

// Defaults of the shared settings: the local layout under ./data.
const (
	DefaultStore       = "file://./data/snapshots"
	DefaultQueue       = "sqlite://./data/queue.db"
	DefaultFeedBaseURL = "https://data.ntpc.gov.tw"
	DefaultLogLevel    = "info"
)

// Store binds -store (PARKING_STORE).
func (f *Flags) Store(p *string) {
	f.String(p, "store", "PARKING_STORE", DefaultStore, "snapshot store URL: file://DIR or s3://BUCKET/PREFIX")
}

// Queue binds -queue (PARKING_QUEUE).
func (f *Flags) Queue(p *string) {
	f.String(p, "queue", "PARKING_QUEUE", DefaultQueue, "queue URL: sqlite://FILE or an SQS queue URL")
}

// FeedBaseURL binds -feed-base-url (PARKING_FEED_BASE_URL).
func (f *Flags) FeedBaseURL(p *string) {
	f.String(p, "feed-base-url", "PARKING_FEED_BASE_URL", DefaultFeedBaseURL, "base URL of the city's open-data platform")
}

// LogLevel binds -log-level (LOG_LEVEL), the level of the logger Start returns.
func (f *Flags) LogLevel(p *string) {
	f.String(p, "log-level", "LOG_LEVEL", DefaultLogLevel, "log level: debug, info, warn, error")
	f.level = p
}

// Healthchecks reads the healthchecks.io-style ping URLs of the two
// datasets' jobs. Like the original's, they are set in the environment only:
// a ping URL is a credential of sorts, better kept off command lines.
func (f *Flags) Healthchecks(lots, availability *string) {
	*lots = f.lookup("HEALTHCHECK_PARKING_URL")
	*availability = f.lookup("HEALTHCHECK_AVAILABILITY_URL")
}

// Dataset binds -dataset to p: one dataset, checked as it is parsed.
func (f *Flags) Dataset(p *feed.Dataset, usage string) {
	f.Var(datasetValue{p}, "dataset", usage)
}

type datasetValue struct{ p *feed.Dataset }

func (v datasetValue) String() string {
	if v.p == nil {
		return ""
	}
	return string(*v.p)
}

func (v datasetValue) Set(s string) error {
	d, err := feed.ParseDataset(s)
	if err != nil {
		return err
	}
	*v.p = d
	return nil
}
