package feed

// This file holds what is checked of a body before any row is read: whether
// it is data at all (an HTTP 200 is not success on this platform), and how an
// error quotes it.

import (
	"bytes"
	"errors"
	"fmt"
	"unicode/utf8"
)

// ErrBadBody wraps every error that says a response body is not a usable feed
// body: an HTTP 200 is not success on this platform, so the body itself decides.
var ErrBadBody = errors.New("bad feed body")

// ErrRejected wraps (together with ErrBadBody) the error for a body that is an
// HTML page, such as the F5 WAF "Request Rejected" page the platform serves with
// status 200. A fetch client may treat it differently from a malformed body.
var ErrRejected = errors.New("request rejected: an HTML page instead of data")

// bom is the UTF-8 byte order mark the platform puts at the start of CSV files
// (and, now and then, of JSON bodies).
const bom = "\ufeff"

// headBytes is how much of a body an error quotes: enough to recognise an HTML
// page or an error document, short enough for a log line.
const headBytes = 64

// ValidateBody is the cheap first check a fetch client runs on every body
// before parsing it: it recognises rejection pages and wrong formats from the
// first bytes alone.
func ValidateBody(f Format, body []byte) error {
	b := bytes.TrimPrefix(body, []byte(bom))
	t := bytes.TrimLeft(b, " \t\r\n")
	if len(t) == 0 {
		return badBody(body, "empty body")
	}
	if t[0] == '<' {
		return rejected(body)
	}
	switch f {
	case JSON:
		if t[0] != '[' {
			return badBody(body, "JSON body does not start with '['")
		}
	case CSV:
		// The platform's CSV starts with a BOM and the quoted header "ID";
		// accept the header without BOM or quotes as well.
		if !bytes.HasPrefix(b, []byte(`"ID"`)) && !bytes.HasPrefix(b, []byte("ID")) {
			return badBody(body, `CSV body does not start with the header "ID"`)
		}
	default:
		return fmt.Errorf("unknown format %q", f)
	}
	return nil
}

// Head returns the first bytes of body, cut at a rune boundary, for error
// messages and logs.
func Head(body []byte) string {
	if len(body) <= headBytes {
		return string(body)
	}
	n := headBytes
	// Back off to the start of a rune so a quoted head of Chinese text stays readable.
	for i := 0; i < utf8.UTFMax && n > 0 && !utf8.RuneStart(body[n]); i++ {
		n--
	}
	return string(body[:n]) + "..."
}

func badBody(body []byte, format string, args ...any) error {
	return fmt.Errorf("%w: %s (body of %d bytes starts with %q)", ErrBadBody, fmt.Sprintf(format, args...), len(body), Head(body))
}

func rejected(body []byte) error {
	return fmt.Errorf("%w: %w (body of %d bytes starts with %q)", ErrBadBody, ErrRejected, len(body), Head(body))
}
