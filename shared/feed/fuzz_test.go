package feed

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// hostile bodies every fuzz target starts from, besides the real sample.
var hostileSeeds = []string{
	"", "[", "]", "[]", "\ufeff[]", "{}", "null", "<html>Request Rejected</html>",
	`[{"ID":"010056","AVAILABLECAR":"-9"}]`,
	`[{"ID":"010056","AVAILABLECAR":-9}]`,
	`[{"ID":"010056","NAME":"\ud83d\ude00\ud800\u00","AVAILABLECAR":"0"}]`,
	`{"result":{"records":[{"ID":"010056","AVAILABLECAR":"1"}]}}`,
	`{"result":{"records":[`,
	`[{"ID":"010056","X":[[[[{"a":[true,false,null,1e5]}]]]]}]`,
	"[{\"ID\":\"\xff\"}]",
	`[{"ID":1e999}]`,
	"\ufeff\"ID\",\"AVAILABLECAR\"\r\n\"010056\",\"-9\"\r\n",
	"\"ID\",\"NAME\"\n\"010104\",\"月租2,900元\"\n\"x\n",
	"ID,NAME\n010056,a\"b\n",
}

func addSeeds(f *testing.F) {
	// A few real rows, not the whole sample: the fuzzer minimizes every new
	// interesting input, and on large inputs that stalls a short run.
	rows := stdLots(f, readSample(f))[:3]
	js, err := json.Marshal(rows)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(js)
	f.Add([]byte(`{"success":true,"result":{"records":` + string(js) + `}}`))
	f.Add(csvOf(rows, "\r\n", lotCols))
	for _, s := range hostileSeeds {
		f.Add([]byte(s))
	}
}

// checkIDs is what a successful parse promises whatever the input.
func checkIDs(t *testing.T, ids []string, values ...string) {
	for _, id := range ids {
		if !validID(id) {
			t.Fatalf("accepted ID %q", id)
		}
	}
	for _, v := range values {
		if !utf8.ValidString(v) {
			t.Fatalf("accepted invalid UTF-8 %q", v)
		}
	}
}

func fuzzLots(t *testing.T, f Format, body []byte) {
	rows, err := ParseLots(f, body)
	if err != nil {
		if !strings.Contains(err.Error(), "starts with") && len(body) > 0 {
			t.Fatalf("error does not quote the body: %v", err)
		}
		return
	}
	ids := make([]string, len(rows))
	var vals []string
	for i, r := range rows {
		ids[i] = r.ID
		vals = append(vals, r.Name, r.PayEx, r.Address)
	}
	checkIDs(t, ids, vals...)
	_ = LotsContentHash(rows)
}

func FuzzParseLotsJSON(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzLots(t, JSON, body)
		_ = ValidateBody(JSON, body)
	})
}

func FuzzParseLotsCSV(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzLots(t, CSV, body)
		_ = ValidateBody(CSV, body)
	})
}

func FuzzParseAvailabilityJSON(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		rows, err := ParseAvailability(JSON, body)
		if err != nil {
			return
		}
		ids := make([]string, len(rows))
		vals := make([]string, len(rows))
		for i, r := range rows {
			ids[i], vals[i] = r.ID, r.AvailableCar
		}
		checkIDs(t, ids, vals...)
	})
}
