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
		for {
			s.skipWS()
			if s.peek() == '}' {
				return fmt.Errorf("no %q key", want)
			}
			key, err := s.key()
			if err != nil {
				return err
			}
			if key == want {
				break
			}
			if err := s.skipValue(0); err != nil {
				return err
			}
			more, ok := s.next('}')
			if !ok {
				return errors.New("want ',' or '}'")
			}
			if !more {
				return fmt.Errorf("no %q key", want)
			}
		}
	}
	if s.peek() != '[' {
		return errors.New(`"records" is not an array`)
	}
	s.envelope = true
	return nil
}
