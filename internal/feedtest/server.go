package feedtest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
)

// Server is a local stand-in for data.ntpc.gov.tw serving both datasets on
// the real paths:
//
//	GET /api/datasets/{uuid}/json?page=N&size=S   paged JSON (pages from 0, at most 1000 rows)
//	GET /api/datasets/{uuid}/csv?page=N&size=S    paged CSV
//	GET /api/datasets/{uuid}/csv/file             the whole CSV file
//
// Like the real one it caps pages at 1000 rows whatever size asks for; unlike
// it, it answers 400 when page or size is missing, so clients that leave them
// out fail their tests. Faults are injected per request, in this order:
// hang, delay, fail, reject, truncate; each request uses up one of each
// pending fault it meets. Every request, faulty or not, is counted.
type Server struct {
	// URL is the base URL to give a client (no trailing slash).
	URL string

	srv       *httptest.Server
	done      chan struct{}
	closeOnce sync.Once

	mu         sync.Mutex
	lots       []feed.LotRow
	avail      []feed.AvailabilityRow
	pageCap    int
	failN      int
	failStatus int
	rejectN    int
	rejectFile map[feed.Dataset]bool
	truncateN  int
	hangN      int
	delayN     int
	delay      time.Duration
	counts     map[string]int
	log        []string
}

// Option configures a Server at start.
type Option func(*Server)

// WithLots serves rows as the lots dataset instead of SampleLots().
func WithLots(rows []feed.LotRow) Option {
	return func(s *Server) { s.lots = append([]feed.LotRow{}, rows...) }
}

// WithAvailability serves rows as the live dataset instead of SampleAvailability(1).
func WithAvailability(rows []feed.AvailabilityRow) Option {
	return func(s *Server) { s.avail = append([]feed.AvailabilityRow{}, rows...) }
}

// WithPageCap changes the most rows per page (PageCap by default).
func WithPageCap(n int) Option { return func(s *Server) { s.pageCap = n } }

// WithRejectedCSVFile makes csv/file of dataset d answer WAFPage with status
// 200 on every request, as the live feed's does since 2026-09-16.
func WithRejectedCSVFile(d feed.Dataset) Option {
	return func(s *Server) { s.rejectFile[d] = true }
}

// NewServer starts a Server; it is closed when the test ends.
func NewServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{
		done:       make(chan struct{}),
		lots:       SampleLots(),
		avail:      SampleAvailability(1),
		pageCap:    PageCap,
		rejectFile: map[feed.Dataset]bool{},
		counts:     map[string]int{},
	}
	for _, o := range opts {
		o(s)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/datasets/{uuid}/json", func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, "json") })
	mux.HandleFunc("GET /api/datasets/{uuid}/csv", func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, "csv") })
	mux.HandleFunc("GET /api/datasets/{uuid}/csv/file", func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, "file") })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.count(r)
		errorDoc(w, http.StatusNotFound, "not found")
	})
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL
	t.Cleanup(s.Close)
	return s
}

// Close stops the server, releasing requests held by HangNext or DelayNext first.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		s.srv.Close()
	})
}

// Client returns an HTTP client for the server.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// SetLots replaces the lots rows served from now on (a new version, dropped
// lots, changed values). The slice is copied.
func (s *Server) SetLots(rows []feed.LotRow) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lots = append([]feed.LotRow{}, rows...)
}

// SetAvailability replaces the live rows served from now on. The slice is copied.
func (s *Server) SetAvailability(rows []feed.AvailabilityRow) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.avail = append([]feed.AvailabilityRow{}, rows...)
}

// FailNext makes the next n requests answer status (500 if 0) with a short JSON error document.
func (s *Server) FailNext(n, status int) {
	if status == 0 {
		status = http.StatusInternalServerError
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN, s.failStatus = n, status
}

// RejectNext makes the next n requests answer WAFPage with status 200.
func (s *Server) RejectNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejectN = n
}

// RejectCSVFile switches the permanent rejection of dataset d's csv/file on or off.
func (s *Server) RejectCSVFile(d feed.Dataset, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejectFile[d] = on
}

// TruncateNext makes the next n responses promise their full length, send
// half of the body and drop the connection.
func (s *Server) TruncateNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.truncateN = n
}

// HangNext makes the next n requests wait, without answering, until the
// client gives up (or the server closes): the way to test client timeouts
// without sleeping.
func (s *Server) HangNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hangN = n
}

// DelayNext makes the next n requests wait d before they are answered (or
// until the client gives up).
func (s *Server) DelayNext(n int, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delayN, s.delay = n, d
}

// JSONPath is the path of dataset d's paged JSON endpoint.
func JSONPath(d feed.Dataset) string { return "/api/datasets/" + d.UUID() + "/json" }

// CSVPath is the path of dataset d's paged CSV endpoint.
func CSVPath(d feed.Dataset) string { return "/api/datasets/" + d.UUID() + "/csv" }

// CSVFilePath is the path of dataset d's whole-file CSV download.
func CSVFilePath(d feed.Dataset) string { return "/api/datasets/" + d.UUID() + "/csv/file" }

// Requests returns how many requests were made to path (query excluded).
func (s *Server) Requests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[path]
}

// TotalRequests returns how many requests were made in all.
func (s *Server) TotalRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.log)
}

// Log returns every request's path and query, in order of arrival.
func (s *Server) Log() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.log...)
}

func (s *Server) count(r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts[r.URL.Path]++
	s.log = append(s.log, r.URL.RequestURI())
}

// take uses up one of a pending fault.
func take(n *int) bool {
	if *n > 0 {
		*n--
		return true
	}
	return false
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, kind string) {
	s.count(r)
	var d feed.Dataset
	for _, ds := range feed.Datasets {
		if ds.UUID() == r.PathValue("uuid") {
			d = ds
		}
	}

	s.mu.Lock()
	hang := take(&s.hangN)
	delayed, delay := take(&s.delayN), s.delay
	fail, failStatus := take(&s.failN), s.failStatus
	reject := take(&s.rejectN) || kind == "file" && s.rejectFile[d]
	truncate := take(&s.truncateN)
	lots, avail, pageCap := s.lots, s.avail, s.pageCap
	s.mu.Unlock()

	if hang {
		select {
		case <-r.Context().Done():
		case <-s.done:
		}
		return
	}
	if delayed {
		t := time.NewTimer(delay)
		select {
		case <-r.Context().Done():
			t.Stop()
			return
		case <-s.done:
			t.Stop()
			return
		case <-t.C:
		}
	}
	if fail {
		errorDoc(w, failStatus, "injected failure")
		return
	}
	if reject {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(WAFPage)))
		_, _ = w.Write([]byte(WAFPage))
		return
	}
	if d == "" {
		errorDoc(w, http.StatusNotFound, "dataset not found")
		return
	}

	var body []byte
	switch kind {
	case "file":
		if d == feed.Lots {
			body = LotsCSV(lots)
		} else {
			body = AvailabilityCSV(avail)
		}
	default:
		page, size, err := paging(r)
		if err != nil {
			errorDoc(w, http.StatusBadRequest, err.Error())
			return
		}
		size = min(size, pageCap)
		if d == feed.Lots {
			body = encodePage(lots, page, size, kind)
		} else {
			body = encodePage(avail, page, size, kind)
		}
	}
	if kind == "json" {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
	} else {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if truncate {
		_, _ = w.Write(body[:len(body)/2])
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		// Aborting the handler closes the connection mid-body; net/http
		// neither logs nor recovers it as a crash.
		panic(http.ErrAbortHandler)
	}
	_, _ = w.Write(body)
}

func paging(r *http.Request) (page, size int, err error) {
	q := r.URL.Query()
	if !q.Has("page") || !q.Has("size") {
		return 0, 0, fmt.Errorf("page and size are both required (got %q)", r.URL.RawQuery)
	}
	page, err = strconv.Atoi(q.Get("page"))
	if err != nil || page < 0 {
		return 0, 0, fmt.Errorf("bad page %q", q.Get("page"))
	}
	size, err = strconv.Atoi(q.Get("size"))
	if err != nil || size < 1 {
		return 0, 0, fmt.Errorf("bad size %q", q.Get("size"))
	}
	return page, size, nil
}

func encodePage[R feed.LotRow | feed.AvailabilityRow](rows []R, page, size int, kind string) []byte {
	start := min(page*size, len(rows))
	if page > len(rows)/size+1 { // guards page*size against overflow
		start = len(rows)
	}
	part := rows[start:min(start+size, len(rows))]
	if kind == "json" {
		return JSONBody(part)
	}
	switch p := any(part).(type) {
	case []feed.LotRow:
		return LotsCSV(p)
	case []feed.AvailabilityRow:
		return AvailabilityCSV(p)
	}
	return nil
}

// errorDoc answers the kind of JSON error document an API gateway gives.
func errorDoc(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `{"status":%d,"message":%q}`, status, msg)
}
