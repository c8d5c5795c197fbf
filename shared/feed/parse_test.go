package feed

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
)

// samplePath is the real 2019 lots response kept by the feedtest package; the
// parser tests read it from there rather than keeping a second copy.
const samplePath = "../../internal/feedtest/testdata/lots-2019-04.records.json"

func readSample(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(samplePath)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// stdLots decodes with encoding/json: the reference the scanner must agree with.
func stdLots(t testing.TB, body []byte) []LotRow {
	t.Helper()
	var rows []LotRow
	if err := json.Unmarshal(body, &rows); err != nil {
		t.Fatal(err)
	}
	return rows
}

// csvOf writes rows the way the platform does: BOM, every field quoted, header
// row, the given line end, the given column order.
func csvOf(rows []LotRow, eol string, cols []string) []byte {
	var b bytes.Buffer
	b.WriteString(bom)
	q := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	for i, c := range cols {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(q(c))
	}
	b.WriteString(eol)
	for _, r := range rows {
		for i, c := range cols {
			if i > 0 {
				b.WriteByte(',')
			}
			if p := lotField(&r, c); p != nil {
				b.WriteString(q(*p))
			} else {
				b.WriteString(q("?"))
			}
		}
		b.WriteString(eol)
	}
	return b.Bytes()
}

var lotCols = []string{"ID", "AREA", "NAME", "TYPE", "SUMMARY", "ADDRESS", "TEL", "PAYEX", "SERVICETIME", "TW97X", "TW97Y", "TOTALCAR", "TOTALMOTOR", "TOTALBIKE"}

func TestParseLotsJSONSample(t *testing.T) {
	body := readSample(t)
	rows, err := ParseLots(JSON, body)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 946 {
		t.Fatalf("got %d rows, want 946", len(rows))
	}
	if !reflect.DeepEqual(rows, stdLots(t, body)) {
		t.Fatal("rows differ from encoding/json's")
	}
	first := rows[0]
	if first.ID != "010056" || first.Name != "遠東百貨停車場" || first.TotalCar != "453" || first.TotalBike != "" || first.TW97X != "296882" {
		t.Fatalf("first row: %+v", first)
	}

	// With a BOM, and inside the 2018-2019 API's envelope, the rows are the same.
	withBOM, err := ParseLots(JSON, append([]byte(bom), body...))
	if err != nil || !reflect.DeepEqual(withBOM, rows) {
		t.Fatalf("with BOM: %v", err)
	}
	legacy := []byte(`{"success":true,"result":{"resource_id":"382000000A-000225-002","limit":2000,"total":946,` +
		`"fields":[{"type":"text","id":"ID"},{"type":"int4","id":"_id"}],"records":` + string(body) + `,"_links":{"next":"/x"}}}`)
	old, err := ParseLots(JSON, legacy)
	if err != nil || !reflect.DeepEqual(old, rows) {
		t.Fatalf("legacy envelope: %v (%d rows)", err, len(old))
	}
}

func TestParseLotsJSONValues(t *testing.T) {
	body := []byte(` [ {"ID":"010056", "_id": 7, "extra": {"a":[1,2,{"b":null}]}, "TOTALCAR": 453, "TW97X": 296882.5e0,` +
		` "tw97y": "2767068", "NAME": "a\"b\\c\/\u4e2d\ud83d\ude00\ud800x", "TEL": null, "TYPE": "1"} ]` + "\n")
	rows, err := ParseLots(JSON, body)
	if err != nil {
		t.Fatal(err)
	}
	want := LotRow{ID: "010056", TotalCar: "453", TW97X: "296882.5e0", TW97Y: "2767068", Name: "a\"b\\c/中😀\uFFFDx", Type: "1"}
	if len(rows) != 1 || rows[0] != want {
		t.Fatalf("got %+v\nwant %+v", rows, want)
	}
	rows, err = ParseLots(JSON, []byte("\ufeff[]"))
	if err != nil || rows == nil || len(rows) != 0 {
		t.Fatalf("empty array: %v %v", rows, err)
	}
}

func TestParseLotsCSV(t *testing.T) {
	want := stdLots(t, readSample(t))
	shuffled := []string{"TOTALBIKE", "NAME", "ID", "PAYEX", "AREA", "TYPE", "SUMMARY", "ADDRESS", "TEL", "SERVICETIME", "TW97Y", "TW97X", "TOTALMOTOR", "TOTALCAR", "UNKNOWN"}
	for _, tc := range []struct {
		name string
		eol  string
		cols []string
	}{{"LF", "\n", lotCols}, {"CRLF", "\r\n", lotCols}, {"columns in another order", "\n", shuffled}} {
		t.Run(tc.name, func(t *testing.T) {
			body := csvOf(want, tc.eol, tc.cols)
			if !bytes.HasPrefix(body, []byte("\xef\xbb\xbf\"")) {
				t.Fatal("fixture lacks the BOM")
			}
			got, err := ParseLots(CSV, body)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("rows differ (%d vs %d)", len(got), len(want))
			}
		})
	}
	// Quoted commas and quotes inside fields survive.
	body := "\ufeff\"ID\",\"PAYEX\",\"TEL\"\r\n\"010104\",\"小型車月租2,900元;\",\"02-22559110, 0905007567\"\r\n\"010105\",\"say \"\"hi\"\"\",\",2969-8466\"\r\n"
	got, err := ParseLots(CSV, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].PayEx != "小型車月租2,900元;" || got[0].Tel != "02-22559110, 0905007567" || got[1].PayEx != `say "hi"` || got[1].Tel != ",2969-8466" {
		t.Fatalf("got %+v", got)
	}
	// Header only: zero rows, no error.
	got, err = ParseLots(CSV, []byte("\ufeff\"ID\",\"NAME\"\n"))
	if err != nil || len(got) != 0 {
		t.Fatalf("header only: %v %v", got, err)
	}
}

func TestParseAvailability(t *testing.T) {
	rows, err := ParseAvailability(JSON, []byte(`[{"ID":"010056","AVAILABLECAR":"-9"},{"ID":"030034","AVAILABLECAR":12},{"ID":"030034","AVAILABLECAR":"x"}]`))
	if err != nil {
		t.Fatal(err)
	}
	want := []AvailabilityRow{{"010056", "-9"}, {"030034", "12"}, {"030034", "x"}}
	if !reflect.DeepEqual(rows, want) {
		t.Fatalf("got %+v", rows)
	}
	rows, err = ParseAvailability(CSV, []byte("\ufeff\"AVAILABLECAR\",\"ID\"\r\n\"-9\",\"010056\"\r\n\"0\",\"030034\"\r\n"))
	if err != nil || !reflect.DeepEqual(rows, []AvailabilityRow{{"010056", "-9"}, {"030034", "0"}}) {
		t.Fatalf("CSV: %+v %v", rows, err)
	}
}

func TestParseErrors(t *testing.T) {
	waf := []byte("<html><head><title>Request Rejected</title></head><body>The requested URL was rejected. Please consult with your administrator.<br><br>Your support ID is: 1234567890123456789<br><br><a href='javascript:history.back();'>[Go Back]</a></body></html>")
	huge := append([]byte(`{"message":"`), bytes.Repeat([]byte("x"), 1<<20)...)
	for _, tc := range []struct {
		name   string
		lots   bool
		f      Format
		body   []byte
		want   string
		reject bool
	}{
		{"WAF page JSON", true, JSON, waf, "Request Rejected", true},
		{"WAF page CSV", false, CSV, append([]byte(bom), waf...), "Request Rejected", true},
		{"error document", true, JSON, []byte(`{"status":"error","message":"dataset not found"}`), "not a records document", false},
		{"records not an array", true, JSON, []byte(`{"result":{"records":{}}}`), "not an array", false},
		{"empty", true, JSON, nil, "empty body", false},
		{"blank", false, JSON, []byte(" \r\n"), "empty body", false},
		{"empty CSV", true, CSV, []byte(bom), "empty body", false},
		{"scalar", true, JSON, []byte(`"hello"`), "not a JSON array", false},
		{"invalid UTF-8", true, JSON, []byte("[{\"ID\":\"010056\",\"NAME\":\"\xff\xfe\"}]"), "invalid UTF-8", false},
		{"invalid UTF-8 CSV", true, CSV, []byte("\"ID\",\"NAME\"\n\"010056\",\"\xc3\"\n"), "invalid UTF-8", false},
		{"no ID", true, JSON, []byte(`[{"ID":"010056"},{"NAME":"x"}]`), "row 2 has no ID", false},
		{"empty ID", false, JSON, []byte(`[{"ID":"","AVAILABLECAR":"1"}]`), "row 1 has no ID", false},
		{"null ID", true, JSON, []byte(`[{"ID":null}]`), "row 1 has no ID", false},
		{"empty object", true, JSON, []byte(`[{}]`), "row 1 has no ID", false},
		{"ID not a code", true, JSON, []byte(`[{"ID":"板橋區停車場"}]`), "not a short code", false},
		{"ID with space", true, CSV, []byte("\"ID\"\n\"010056 \"\n"), "not a short code", false},
		{"ID a number", true, JSON, []byte(`[{"ID":10056}]`), "JSON number 10056", false},
		{"no AVAILABLECAR", false, JSON, []byte(`[{"ID":"010056"}]`), "has no AVAILABLECAR", false},
		{"no AVAILABLECAR column", false, CSV, []byte("\"ID\",\"NAME\"\n\"010056\",\"x\"\n"), "no AVAILABLECAR column", false},
		{"no ID column", true, CSV, []byte("\"NAME\",\"AREA\"\n\"x\",\"y\"\n"), "no ID column", false},
		{"duplicate column", true, CSV, []byte("\"ID\",\"ID\"\n\"1\",\"2\"\n"), "appears twice", false},
		{"ragged CSV", true, CSV, []byte("\"ID\",\"NAME\"\n\"010056\"\n"), "wrong number of fields", false},
		{"truncated", true, JSON, []byte(`[{"ID":"010056","NAME":"遠東`), "unterminated string", false},
		{"truncated after row", true, JSON, []byte(`[{"ID":"010056"},`), "want '{'", false},
		{"trailing comma", true, JSON, []byte(`[{"ID":"010056",}]`), "want a key", false},
		{"trailing data", true, JSON, []byte(`[{"ID":"010056"}] x`), "trailing data", false},
		{"bool value", true, JSON, []byte(`[{"ID":"010056","TYPE":true}]`), "want a string or a number", false},
		{"nested value", true, JSON, []byte(`[{"ID":"010056","NAME":{"a":1}}]`), "want a string or a number", false},
		{"deep nesting", true, JSON, []byte(`[{"ID":"1","X":` + strings.Repeat("[", 100000) + `]}]`), "nested too deeply", false},
		{"control char", true, JSON, []byte("[{\"ID\":\"01\n0056\"}]"), "control character", false},
		{"bad escape", true, JSON, []byte(`[{"ID":"010056","NAME":"\x"}]`), `bad escape`, false},
		{"bad number", true, JSON, []byte(`[{"ID":"010056","TOTALCAR":-}]`), `bad number`, false},
		{"huge error document", true, JSON, huge, "not a records document", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.lots {
				_, err = ParseLots(tc.f, tc.body)
			} else {
				_, err = ParseAvailability(tc.f, tc.body)
			}
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
			if !errors.Is(err, ErrBadBody) {
				t.Fatalf("error %q does not wrap ErrBadBody", err)
			}
			if errors.Is(err, ErrRejected) != tc.reject {
				t.Fatalf("errors.Is(ErrRejected) = %v for %q", !tc.reject, err)
			}
			if len(tc.body) > 0 && !strings.Contains(err.Error(), "starts with") {
				t.Fatalf("error %q does not quote the body", err)
			}
			if len(err.Error()) > 600 {
				t.Fatalf("error is %d bytes long; the quoted head is not truncated", len(err.Error()))
			}
		})
	}
}

func TestParseLongValues(t *testing.T) {
	long := strings.Repeat("停", 1<<20/3+1) // just over a megabyte
	body := []byte(`[{"ID":"010056","NAME":"` + long + `","ADDRESS":"` + strings.Repeat(`\"`, 1<<19) + `"}]`)
	rows, err := ParseLots(JSON, body)
	if err != nil {
		t.Fatal(err)
	}
	if rows[0].Name != long || rows[0].Address != strings.Repeat(`"`, 1<<19) {
		t.Fatal("long values were not kept as they were")
	}
	csvBody := []byte("\"ID\",\"NAME\"\n\"010056\",\"" + long + "\"\n")
	rows, err = ParseLots(CSV, csvBody)
	if err != nil || rows[0].Name != long {
		t.Fatalf("CSV long value: %v", err)
	}
}

func TestValidateBody(t *testing.T) {
	for _, tc := range []struct {
		f    Format
		body string
		ok   bool
	}{
		{JSON, `[{"ID":"1"}]`, true},
		{JSON, "\ufeff\n[]", true},
		{JSON, `{"result":{}}`, false},
		{JSON, "", false},
		{JSON, "<html>Request Rejected</html>", false},
		{JSON, "\ufeff  <html>", false},
		{CSV, "\ufeff\"ID\",\"AREA\"\n", true},
		{CSV, "\"ID\",\"AREA\"\n", true},
		{CSV, "ID,AREA\n", true},
		{CSV, "\ufeff\"AREA\",\"ID\"\n", false},
		{CSV, "<html>", false},
		{CSV, "", false},
	} {
		err := ValidateBody(tc.f, []byte(tc.body))
		if (err == nil) != tc.ok {
			t.Errorf("ValidateBody(%s, %q) = %v, want ok=%v", tc.f, tc.body, err, tc.ok)
		}
		if err != nil && strings.HasPrefix(strings.TrimLeft(strings.TrimPrefix(tc.body, bom), " "), "<") && !errors.Is(err, ErrRejected) {
			t.Errorf("ValidateBody(%s, %q) = %v, want ErrRejected", tc.f, tc.body, err)
		}
	}
}

func TestHead(t *testing.T) {
	s := strings.Repeat("停", 40) // 120 bytes
	h := Head([]byte(s))
	if !strings.HasSuffix(h, "...") || !strings.HasPrefix(s, strings.TrimSuffix(h, "...")) || len(h) > headBytes+3 {
		t.Fatalf("Head = %q", h)
	}
	if !strings.HasPrefix(h, strings.Repeat("停", 21)) || strings.ContainsRune(h, '\uFFFD') {
		t.Fatalf("Head cut a rune: %q", h)
	}
}

func TestLotsContentHash(t *testing.T) {
	rows := stdLots(t, readSample(t))
	h := LotsContentHash(rows)
	if len(h) != 64 {
		t.Fatalf("hash %q", h)
	}
	rev := append([]LotRow(nil), rows...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	if LotsContentHash(rev) != h {
		t.Fatal("hash depends on row order")
	}
	changed := append([]LotRow(nil), rows...)
	changed[500].TotalCar += "1"
	if LotsContentHash(changed) == h {
		t.Fatal("hash ignores a changed value")
	}
	if LotsContentHash(rows[:len(rows)-1]) == h || LotsContentHash(append(rows[:len(rows):len(rows)], rows[0])) == h {
		t.Fatal("hash ignores a dropped or duplicated row")
	}
	// Values cannot forge the boundaries between fields.
	a := LotsContentHash([]LotRow{{ID: "1", Name: "a", Type: "b"}})
	b := LotsContentHash([]LotRow{{ID: "1", Name: "a1:b"}})
	if a == b {
		t.Fatal("field boundaries are ambiguous")
	}
	if LotsContentHash(nil) == LotsContentHash([]LotRow{{}}) {
		t.Fatal("no rows and one empty row hash alike")
	}
}

// benchRows extends the real sample to n rows with fresh IDs, as the 2026 feed has ~1,400.
func benchRows(t testing.TB, n int) []LotRow {
	base := stdLots(t, readSample(t))
	rows := make([]LotRow, n)
	for i := range rows {
		rows[i] = base[i%len(base)]
		if i >= len(base) {
			rows[i].ID = fmt.Sprintf("%02d%04d", 30+i%10, i)
		}
	}
	return rows
}

func BenchmarkParseLots(b *testing.B) {
	rows := benchRows(b, 1400)
	body, err := json.Marshal(rows)
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range []Format{JSON, CSV} {
		in := body
		if f == CSV {
			in = csvOf(rows, "\n", lotCols)
		}
		b.Run(string(f), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				got, err := ParseLots(f, in)
				if err != nil || len(got) != len(rows) {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(rows)*b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

func BenchmarkParseAvailability(b *testing.B) {
	lots := benchRows(b, 1430)
	var js, cs bytes.Buffer
	js.WriteByte('[')
	cs.WriteString(bom + "\"ID\",\"AVAILABLECAR\"\n")
	for i, r := range lots {
		v := "-9"
		if i%10 < 3 {
			v = fmt.Sprint(i % 97)
		}
		if i > 0 {
			js.WriteByte(',')
		}
		fmt.Fprintf(&js, `{"ID":%q,"AVAILABLECAR":%q}`, r.ID, v)
		fmt.Fprintf(&cs, "%q,%q\n", r.ID, v)
	}
	js.WriteByte(']')
	for _, f := range []Format{JSON, CSV} {
		in := js.Bytes()
		if f == CSV {
			in = cs.Bytes()
		}
		b.Run(string(f), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				got, err := ParseAvailability(f, in)
				if err != nil || len(got) != len(lots) {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(lots)*b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
