// Package redact takes secrets out of URLs before they are logged or
// stored: the user info of a URL (user:password@host, which net/http turns
// into a Basic Authorization header) and the path of a URL that is itself a
// credential (a healthchecks.io ping URL: anyone holding it can report the
// job healthy).
package redact

import (
	"errors"
	"net/url"
	"strings"
)

// URL returns raw without its user info; raw as it is when it has none. A
// string that does not parse as a URL loses everything from "://" to the
// last "@" before the path, so a malformed URL cannot smuggle its password
// into a log either.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err == nil {
		if u.User == nil {
			return raw
		}
		u.User = nil
		return u.String()
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	authority, path := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		return scheme + "://" + authority[i+1:] + path
	}
	return raw
}

// Secret is what replaces a URL's secret part.
const Secret = "REDACTED"

// Path returns raw's scheme and host, with its path, query and user info
// replaced by Secret: for URLs whose path is the credential. A string that
// does not parse as a URL is replaced whole.
func Path(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return Secret
	}
	return u.Scheme + "://" + u.Host + "/" + Secret
}

// Error rewrites the URL that each *url.Error in err's chain quotes (net/http
// quotes the request URL, user info and all, in every transport error)
// with redacted(URL), and returns err. Call it on the error as the client
// returned it, before wrapping it: fmt.Errorf writes its message when it
// wraps, and a message already written keeps the URL.
func Error(err error, redacted func(string) string) error {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if ue, ok := e.(*url.Error); ok {
			ue.URL = redacted(ue.URL)
		}
	}
	return err
}
