package feed

import "errors"

// STUB: replaced by the feed-parsing work. Signatures are the contract.

// ParseLots parses one response body of the lots feed in the given format.
func ParseLots(f Format, body []byte) ([]LotRow, error) { return nil, errors.New("not implemented") }

// ParseAvailability parses one response body of the live feed in the given format.
func ParseAvailability(f Format, body []byte) ([]AvailabilityRow, error) {
	return nil, errors.New("not implemented")
}
