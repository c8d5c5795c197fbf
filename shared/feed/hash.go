package feed

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
)

// lotsHashVersion starts the hashed text, so a change of the canonical form
// changes every hash instead of colliding with the old ones.
const lotsHashVersion = "parking-newtaipei/lots-content/v1\n"

// LotsContentHash is the hex SHA-256 of a canonical form of rows that does not
// depend on their order: the extractor compares it with the last stored lots
// fetch to skip an unchanged one. Each row is encoded as its fields in a fixed
// order, each prefixed by its length (so no value can forge a separator); the
// encodings are sorted and hashed. Duplicate rows count as often as they occur.
func LotsContentHash(rows []LotRow) string {
	enc := make([][]byte, len(rows))
	for i := range rows {
		r := &rows[i]
		var b []byte
		for _, v := range [...]string{r.ID, r.Area, r.Name, r.Type, r.Summary, r.Address, r.Tel,
			r.PayEx, r.ServiceTime, r.TW97X, r.TW97Y, r.TotalCar, r.TotalMotor, r.TotalBike} {
			b = strconv.AppendInt(b, int64(len(v)), 10)
			b = append(b, ':')
			b = append(b, v...)
		}
		enc[i] = b
	}
	slices.SortFunc(enc, bytes.Compare)
	h := sha256.New()
	h.Write([]byte(lotsHashVersion))
	var n []byte
	for _, b := range enc {
		n = strconv.AppendInt(n[:0], int64(len(b)), 10)
		h.Write(n)
		h.Write([]byte{'\n'})
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}
