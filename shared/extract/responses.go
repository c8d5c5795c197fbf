package extract

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/parking-newtaipei/parking-newtaipei/shared/clock"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
)

// OriginImport marks snapshots made from saved exchanges.
const OriginImport = "import-responses"

// ErrSkip wraps every reason an exchange does not become a snapshot (it is
// reported and skipped, never fatal).
var ErrSkip = errors.New("skipped")

// Exchange is one saved HTTP exchange of the original:
// {"timestamp", "request": {...}, "response": {"status_code", "headers", "body"}}.
type Exchange struct {
	Timestamp string `json:"timestamp"`
	Request   struct {
		Method   string          `json:"method"`
		URL      string          `json:"url"`
		Endpoint string          `json:"endpoint"`
		Headers  json.RawMessage `json:"headers"`
		Body     json.RawMessage `json:"body"`
	} `json:"request"`
	Response struct {
		StatusCode int             `json:"status_code"`
		Headers    map[string]any  `json:"headers"`
		Body       json.RawMessage `json:"body"`
	} `json:"response"`
}

var responseFile = regexp.MustCompile(`^\d{8}_\d{6}_[0-9a-f]{8}\.json\.gz$`)

// ResponseFiles lists the saved exchanges under dir (YYYYMM/*.json.gz), in
// time order (their names start with the time).
func ResponseFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && responseFile.MatchString(d.Name()) {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list saved responses in %s: %w", dir, err)
	}
	sort.Slice(out, func(i, j int) bool { return filepath.Base(out[i]) < filepath.Base(out[j]) })
	return out, nil
}

// maxExchangeBytes caps a decompressed exchange; real ones are under 2 MiB.
const maxExchangeBytes = 64 << 20

// ReadExchange reads one saved exchange.
func ReadExchange(path string) (*Exchange, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: not gzip: %v", path, ErrSkip, err)
	}
	data, err := io.ReadAll(io.LimitReader(zr, maxExchangeBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w: decompress: %v", path, ErrSkip, err)
	}
	if len(data) > maxExchangeBytes {
		return nil, fmt.Errorf("%s: %w: larger than %d bytes", path, ErrSkip, maxExchangeBytes)
	}
	var ex Exchange
	if err := json.Unmarshal(data, &ex); err != nil {
		return nil, fmt.Errorf("%s: %w: not an exchange: %v", path, ErrSkip, err)
	}
	return &ex, nil
}

// Dataset says which feed the exchange fetched, by the dataset UUID in its URL.
func (ex *Exchange) Dataset() (feed.Dataset, bool) {
	for _, d := range feed.Datasets {
		if strings.Contains(ex.Request.URL, d.UUID()) {
			return d, true
		}
	}
	return "", false
}

// Snapshot turns the exchange into a snapshot: fetched at its timestamp (Taipei
// time), with its one response. The body is re-serialised, because the
// original kept a parsed form: a text body (the CSV download) becomes its
// text's bytes; a parsed JSON body becomes that JSON, compacted, with the key
// order and escapes the original saved. The exact bytes the server sent are
// not recoverable. Exchanges that are not one of the two datasets, have a
// status other than 200, hold an error page or rows that do not parse, are
// refused with ErrSkip and the reason.
func (ex *Exchange) Snapshot() (*snapshot.Snapshot, int, error) {
	d, ok := ex.Dataset()
	if !ok {
		return nil, 0, fmt.Errorf("%w: not one of the two datasets: %s", ErrSkip, ex.Request.URL)
	}
	if ex.Response.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("%w: status %d", ErrSkip, ex.Response.StatusCode)
	}
	t, err := clock.ParsePython(ex.Timestamp)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: timestamp: %v", ErrSkip, err)
	}
	raw := bytes.TrimSpace(ex.Response.Body)
	var body []byte
	format := feed.JSON
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return nil, 0, fmt.Errorf("%w: empty body", ErrSkip)
	case raw[0] == '"':
		var text string
		if err := json.Unmarshal(raw, &text); err != nil {
			return nil, 0, fmt.Errorf("%w: body: %v", ErrSkip, err)
		}
		body = []byte(text)
		if !strings.HasPrefix(strings.TrimSpace(strings.TrimPrefix(text, "\ufeff")), "[") &&
			!strings.HasPrefix(strings.TrimSpace(text), "{") {
			format = feed.CSV
		}
	default:
		var b bytes.Buffer
		if err := json.Compact(&b, raw); err != nil {
			return nil, 0, fmt.Errorf("%w: body: %v", ErrSkip, err)
		}
		body = b.Bytes()
	}
	var rows int
	var missing []string
	switch d {
	case feed.Lots:
		r, err := feed.ParseLots(format, body)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: %s body: %v", ErrSkip, format, err)
		}
		rows, missing = len(r), feed.MissingLotColumns(r)
	case feed.Availability:
		r, err := feed.ParseAvailability(format, body)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: %s body: %v", ErrSkip, format, err)
		}
		rows, missing = len(r), feed.MissingAvailabilityColumns(r)
	}
	if len(missing) > 0 {
		return nil, 0, fmt.Errorf("%w: %v: no row has a value for %s", ErrSkip, ErrShape, strings.Join(missing, ", "))
	}
	if rows == 0 {
		return nil, 0, fmt.Errorf("%w: no rows", ErrSkip)
	}
	header := http.Header{}
	for k, v := range ex.Response.Headers {
		header.Set(k, fmt.Sprint(v))
	}
	method := ex.Request.Method
	if method == "" {
		method = http.MethodGet
	}
	s := &snapshot.Snapshot{
		Format: snapshot.FormatName, Version: snapshot.Version, Dataset: d, Source: format,
		FetchedAt: t.UTC(), Origin: OriginImport,
		Responses: []snapshot.Response{{
			Method: method, URL: ex.Request.URL, Status: ex.Response.StatusCode, Header: header,
			RequestedAt: t.UTC(), ReceivedAt: t.UTC(), Body: body,
		}},
	}
	return s, rows, nil
}
