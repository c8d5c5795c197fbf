package feed

// This file holds the parser of the JSON endpoint's pages.

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// parseJSON parses a bare array of flat objects, or the 2018-2019 API's
// {"result":{"records":[...]}} document, into rows.
//
// It is a small hand-written scanner rather than encoding/json because bodies
// are flat and hot (every three minutes, years of backfill): the body is
// copied once into a string and every value without escapes is a substring of
// it, so a page costs a handful of allocations however many fields it has.
// The scanner is linear in the body and never recurses deeper than maxDepth.
func parseJSON[R any](body []byte, field func(*R, string) *string, idOf func(*R) *string, required string) ([]R, error) {
	s := &scanner{data: string(body)}
	if strings.HasPrefix(s.data, bom) {
		s.pos = len(bom)
	}
	s.skipWS()
	if s.pos >= len(s.data) {
		return nil, badBody(body, "empty body")
	}
	switch s.data[s.pos] {
	case '<':
		return nil, rejected(body)
	case '[':
	case '{':
		if err := s.findRecords(); err != nil {
			return nil, badBody(body, "JSON object is not a records document: %v", err)
		}
	default:
		return nil, badBody(body, "not a JSON array")
	}
	rows := make([]R, 0, strings.Count(s.data, "{"))
	s.pos++ // '['
	s.skipWS()
	if s.peek() == ']' {
		s.pos++
		return rows, s.end(body)
	}
	for {
		s.skipWS()
		if s.peek() != '{' {
			return nil, s.syntax(body, "want '{' starting row %d", len(rows)+1)
		}
		s.pos++
		rows = append(rows, *new(R))
		r := &rows[len(rows)-1]
		rowNum := len(rows)
		hasID, hasRequired := false, false
		s.skipWS()
		if s.peek() == '}' {
			s.pos++
		} else {
			for more := true; more; {
				key, err := s.key()
				if err != nil {
					return nil, s.syntax(body, "row %d: %v", rowNum, err)
				}
				key = canonicalKey(key)
				dst := field(r, key)
				if dst == nil {
					// Unknown keys (such as the old API's "_id") are skipped, whatever their value.
					if err := s.skipValue(0); err != nil {
						return nil, s.syntax(body, "row %d: value of %q: %v", rowNum, Head([]byte(key)), err)
					}
				} else {
					val, num, err := s.scalar()
					if err != nil {
						return nil, s.syntax(body, "row %d: value of %s: %v", rowNum, key, err)
					}
					if num && dst == idOf(r) {
						// A number loses the IDs' leading zeros (010056 -> 10056):
						// accepting it would silently create a different lot.
						return nil, badBody(body, "row %d: ID is the JSON number %s, want a string", rowNum, Head([]byte(val)))
					}
					*dst = val
					if dst == idOf(r) {
						hasID = true
					}
					if key == required {
						hasRequired = true
					}
				}
				var ok bool
				if more, ok = s.next('}'); !ok {
					return nil, s.syntax(body, "row %d: want ',' or '}'", rowNum)
				}
			}
		}
		if err := checkRow(body, rowNum, *idOf(r), hasID, hasRequired, required); err != nil {
			return nil, err
		}
		more, ok := s.next(']')
		if !ok {
			return nil, s.syntax(body, "after row %d: want ',' or ']'", rowNum)
		}
		if !more {
			break
		}
	}
	return rows, s.end(body)
}

// maxDepth bounds the nesting the scanner skips over in unknown values and
// the legacy envelope, so a hostile body cannot exhaust the stack.
const maxDepth = 64

type scanner struct {
	data string
	pos  int
	// envelope is set when the rows are the records of a legacy {"result":...} document.
	envelope bool
}

func (s *scanner) peek() byte {
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

func (s *scanner) skipWS() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\r', '\n':
			s.pos++
		default:
			return
		}
	}
}

// key reads an object's key and the ':' after it, and leaves s at the value.
func (s *scanner) key() (string, error) {
	s.skipWS()
	if s.peek() != '"' {
		return "", errors.New("want a key")
	}
	k, err := s.str()
	if err != nil {
		return "", fmt.Errorf("key: %w", err)
	}
	s.skipWS()
	if s.peek() != ':' {
		return "", fmt.Errorf("want ':' after key %q", Head([]byte(k)))
	}
	s.pos++
	s.skipWS()
	return k, nil
}

// next steps over what follows a member of an object or array: a ',' (more
// members follow) or its closing '}' or ']' (none do). ok is false, and s
// left at the offending byte, when it is neither.
func (s *scanner) next(closing byte) (more, ok bool) {
	s.skipWS()
	switch s.peek() {
	case ',':
		s.pos++
		return true, true
	case closing:
		s.pos++
		return false, true
	}
	return false, false
}

func (s *scanner) syntax(body []byte, format string, args ...any) error {
	return badBody(body, "invalid JSON at byte %d: %s", s.pos, fmt.Sprintf(format, args...))
}

// end checks that nothing but whitespace follows the rows. After the legacy
// envelope the rest of the document is skipped: it only closes the objects.
func (s *scanner) end(body []byte) error {
	if s.envelope {
		return nil
	}
	s.skipWS()
	if s.pos < len(s.data) {
		return s.syntax(body, "trailing data after the array")
	}
	return nil
}

// scalar reads a value kept as a row field: a string, a number (its text
// kept as it is), or null (kept as "").
func (s *scanner) scalar() (val string, num bool, err error) {
	switch c := s.peek(); {
	case c == '"':
		v, err := s.str()
		return v, false, err
	case c == '-' || '0' <= c && c <= '9':
		v, err := s.number()
		return v, true, err
	case strings.HasPrefix(s.data[s.pos:], "null"):
		s.pos += 4
		return "", false, nil
	case c == 0 && s.pos >= len(s.data):
		return "", false, io.ErrUnexpectedEOF
	}
	return "", false, fmt.Errorf("want a string or a number, found %q", Head([]byte(s.data[s.pos:min(s.pos+8, len(s.data))])))
}

// str reads a JSON string at s.pos. Without escapes (the common case) the
// result is a substring of the body: no copy, no allocation.
func (s *scanner) str() (string, error) {
	start := s.pos + 1
	var high byte
	for i := start; i < len(s.data); i++ {
		c := s.data[i]
		switch {
		case c == '"':
			v := s.data[start:i]
			if high >= utf8.RuneSelf && !utf8.ValidString(v) {
				return "", errors.New("invalid UTF-8 in a string")
			}
			s.pos = i + 1
			return v, nil
		case c == '\\':
			return s.strSlow(start, i)
		case c < 0x20:
			return "", errors.New("control character in a string")
		}
		high |= c
	}
	return "", errors.New("unterminated string")
}

// strSlow decodes a string with escapes, from start with the first escape at i.
func (s *scanner) strSlow(start, i int) (string, error) {
	var b strings.Builder
	b.Grow(i - start + 16)
	b.WriteString(s.data[start:i])
	for i < len(s.data) {
		c := s.data[i]
		switch {
		case c == '"':
			v := b.String()
			if !utf8.ValidString(v) {
				return "", errors.New("invalid UTF-8 in a string")
			}
			s.pos = i + 1
			return v, nil
		case c < 0x20:
			return "", errors.New("control character in a string")
		case c != '\\':
			// Copy the run up to the next quote or escape in one write.
			j := i + 1
			for j < len(s.data) && s.data[j] != '"' && s.data[j] != '\\' && s.data[j] >= 0x20 {
				j++
			}
			b.WriteString(s.data[i:j])
			i = j
			continue
		}
		if i+1 >= len(s.data) {
			break
		}
		switch e := s.data[i+1]; e {
		case '"', '\\', '/':
			b.WriteByte(e)
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r, ok := hex4(s.data, i+2)
			if !ok {
				return "", errors.New(`bad \u escape`)
			}
			i += 6
			if utf16IsSurrogate(r) {
				// A valid pair becomes one rune; a lone half becomes U+FFFD, as encoding/json does.
				if r2, ok := hex4(s.data, i+2); ok && i+1 < len(s.data) && s.data[i] == '\\' && s.data[i+1] == 'u' {
					if dec := utf16Decode(r, r2); dec != utf8.RuneError {
						b.WriteRune(dec)
						i += 6
						continue
					}
				}
				r = utf8.RuneError
			}
			b.WriteRune(r)
			continue
		default:
			return "", fmt.Errorf("bad escape \\%c", e)
		}
		i += 2
	}
	return "", errors.New("unterminated string")
}

func hex4(s string, at int) (rune, bool) {
	if at+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[at : at+4]) {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

func utf16IsSurrogate(r rune) bool { return 0xd800 <= r && r < 0xe000 }

func utf16Decode(r1, r2 rune) rune {
	if 0xd800 <= r1 && r1 < 0xdc00 && 0xdc00 <= r2 && r2 < 0xe000 {
		return (r1-0xd800)<<10 | (r2 - 0xdc00) + 0x10000
	}
	return utf8.RuneError
}

// number reads a JSON number and returns its text unchanged.
func (s *scanner) number() (string, error) {
	start := s.pos
	i := s.pos
	digits := func() int {
		n := 0
		for i < len(s.data) && '0' <= s.data[i] && s.data[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(s.data) && s.data[i] == '-' {
		i++
	}
	if digits() == 0 {
		return "", errors.New("bad number")
	}
	if i < len(s.data) && s.data[i] == '.' {
		i++
		if digits() == 0 {
			return "", errors.New("bad number")
		}
	}
	if i < len(s.data) && (s.data[i] == 'e' || s.data[i] == 'E') {
		i++
		if i < len(s.data) && (s.data[i] == '+' || s.data[i] == '-') {
			i++
		}
		if digits() == 0 {
			return "", errors.New("bad number")
		}
	}
	s.pos = i
	return s.data[start:i], nil
}

// skipValue steps over any JSON value.
func (s *scanner) skipValue(depth int) error {
	if depth > maxDepth {
		return errors.New("nested too deeply")
	}
	switch c := s.peek(); c {
	case '"':
		_, err := s.str()
		return err
	case '{', '[':
		closing := byte('}')
		if c == '[' {
			closing = ']'
		}
		s.pos++
		s.skipWS()
		if s.peek() == closing {
			s.pos++
			return nil
		}
		for {
			s.skipWS()
			if c == '{' {
				if _, err := s.key(); err != nil {
					return err
				}
			}
			if err := s.skipValue(depth + 1); err != nil {
				return err
			}
			more, ok := s.next(closing)
			if !ok {
				return fmt.Errorf("want ',' or '%c'", closing)
			}
			if !more {
				return nil
			}
		}
	case 't', 'f', 'n':
		for _, lit := range []string{"true", "false", "null"} {
			if strings.HasPrefix(s.data[s.pos:], lit) {
				s.pos += len(lit)
				return nil
			}
		}
		return errors.New("bad literal")
	}
	_, err := s.number()
	return err
}
