package feed

// This file holds the legacy shapes: the 2018-2019 API answered
// {"result":{"records":[...]}} instead of a bare array (the Python project's
// saved responses hold such bodies).

import (
	"errors"
	"fmt"
)

// findRecords walks a {"result":{"records":[...]}} document to the '[' of its records.
func (s *scanner) findRecords() error {
	for _, want := range []string{"result", "records"} {
		if s.peek() != '{' {
			return fmt.Errorf("%q is not an object", want)
		}
		s.pos++
		found := false
		for !found {
			s.skipWS()
			if s.peek() == '}' {
				return fmt.Errorf("no %q key", want)
			}
			if s.peek() != '"' {
				return errors.New("want a key")
			}
			key, err := s.str()
			if err != nil {
				return err
			}
			s.skipWS()
			if s.peek() != ':' {
				return errors.New("want ':'")
			}
			s.pos++
			s.skipWS()
			if key == want {
				found = true
				break
			}
			if err := s.skipValue(0); err != nil {
				return err
			}
			s.skipWS()
			switch s.peek() {
			case ',':
				s.pos++
			case '}':
				return fmt.Errorf("no %q key", want)
			default:
				return errors.New("want ',' or '}'")
			}
		}
	}
	if s.peek() != '[' {
		return errors.New(`"records" is not an array`)
	}
	s.envelope = true
	return nil
}
