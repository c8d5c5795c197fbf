package export

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"github.com/parking-newtaipei/parking-newtaipei/shared/clock"
	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
)

// month returns observations over three Taipei days: around midnight of the
// first two, so the days split exactly at Taipei midnight (16:00 UTC).
func month() []sqlite.Observation {
	var obs []sqlite.Observation
	start := time.Date(2026, 10, 31, 23, 50, 0, 0, clock.Taipei) // the last Taipei day of October...
	for i := range 6 {
		t := start.Add(time.Duration(i) * 5 * time.Minute) // ...and the first of November
		for j, id := range []string{"010001", "010003", "220114"} {
			obs = append(obs, sqlite.Observation{ParkingID: id, ObservedAt: t.Unix(), AvailableCar: int32(i*10 + j)})
		}
	}
	t := time.Date(2026, 11, 2, 12, 0, 0, 0, clock.Taipei)
	obs = append(obs, sqlite.Observation{ParkingID: "010001", ObservedAt: t.Unix(), AvailableCar: 7})
	return obs
}

func writeAvailability(t *testing.T, obs []sqlite.Observation, split int) ([]byte, sqlite.ObservationStats) {
	t.Helper()
	var buf bytes.Buffer
	w := NewAvailabilityParquet(&buf)
	// Written in two calls, as batches arrive from the database.
	for _, part := range [][]sqlite.Observation{obs[:split], obs[split:]} {
		if err := w.Write(part); err != nil {
			t.Fatal(err)
		}
	}
	stats, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), stats
}

func TestAvailabilityParquet(t *testing.T) {
	obs := month()
	data, stats := writeAvailability(t, obs, 4)
	var sum int64
	for _, o := range obs {
		sum += int64(o.AvailableCar)
	}
	if stats.Rows != int64(len(obs)) || stats.SumAvailable != sum {
		t.Errorf("stats = %+v, want %d rows summing to %d", stats, len(obs), sum)
	}
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	// The schema of docs/CONTRACTS.md, which the Glue table declares.
	wantSchema := `message availabilityRow {
	required binary parking_id (STRING);
	required int64 observed_at (TIMESTAMP(isAdjustedToUTC=true,unit=MILLIS));
	required int32 available_car (INT(32,true));
}`
	if got := f.Schema().String(); got != wantSchema {
		t.Errorf("schema:\n%s\nwant:\n%s", got, wantSchema)
	}
	md := f.Metadata()
	if md.CreatedBy != "parking-newtaipei version 1" {
		t.Errorf("created_by %q: not fixed, so the bytes would depend on the binary", md.CreatedBy)
	}
	// One row group per Taipei day: Oct 31, Nov 1, Nov 2.
	if len(md.RowGroups) != 3 {
		t.Fatalf("%d row groups, want 3 (one per Taipei day)", len(md.RowGroups))
	}
	if n := []int64{md.RowGroups[0].NumRows, md.RowGroups[1].NumRows, md.RowGroups[2].NumRows}; n[0] != 6 || n[1] != 12 || n[2] != 1 {
		t.Errorf("rows per group = %v, want [6 12 1]", n)
	}
	for _, rg := range md.RowGroups {
		for _, c := range rg.Columns {
			if c.MetaData.Codec != format.Zstd {
				t.Errorf("column %v is compressed with %v, want ZSTD", c.MetaData.PathInSchema, c.MetaData.Codec)
			}
			// Only the encodings every engine reads (no DELTA_*: older Presto and Spark lack them).
			for _, e := range c.MetaData.Encoding {
				if e != format.Plain && e != format.RLEDictionary && e != format.RLE {
					t.Errorf("column %v uses encoding %v", c.MetaData.PathInSchema, e)
				}
			}
		}
		if got := fmt.Sprint(rg.SortingColumns); got != "[{1 false false} {0 false false}]" {
			t.Errorf("sorting columns = %s, want observed_at then parking_id, ascending", got)
		}
	}
	rows, err := parquet.Read[availabilityRow](bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(obs) {
		t.Fatalf("%d rows read back, want %d", len(rows), len(obs))
	}
	for i, r := range rows {
		o := obs[i]
		if r.ParkingID != o.ParkingID || r.ObservedAt != o.ObservedAt*1000 || r.AvailableCar != o.AvailableCar {
			t.Fatalf("row %d = %+v, want %+v", i, r, o)
		}
	}
	// The same observations give the same bytes, however they were batched.
	again, _ := writeAvailability(t, obs, 11)
	if !bytes.Equal(again, data) {
		t.Error("writing the same observations again gave different bytes")
	}
}

func TestAvailabilityParquetRefusesDisorder(t *testing.T) {
	for name, obs := range map[string][]sqlite.Observation{
		"time goes back": {{ParkingID: "010001", ObservedAt: 200}, {ParkingID: "010002", ObservedAt: 100}},
		"lot goes back":  {{ParkingID: "010002", ObservedAt: 100}, {ParkingID: "010001", ObservedAt: 100}},
		"lot repeats":    {{ParkingID: "010001", ObservedAt: 100}, {ParkingID: "010001", ObservedAt: 100}},
	} {
		w := NewAvailabilityParquet(&bytes.Buffer{})
		if err := w.Write(obs); err == nil || !strings.Contains(err.Error(), "order") {
			t.Errorf("%s: Write = %v, want an order error", name, err)
		}
	}
}

func TestLotsParquet(t *testing.T) {
	lon, lat := 121.4627, 25.0123
	created := time.Date(2026, 11, 26, 18, 0, 0, 123e6, clock.Taipei)
	deleted := created.Add(48 * time.Hour)
	lots := []sqlite.LotRecord{
		{ID: "010001", Area: "板橋區", Name: "府中立體停車場", Type: "1", Summary: "平面式", Address: "新北市板橋區府中路1號",
			Tel: "(02)2960-3456", PayEx: "小型車每小時30元", ServiceTime: "00:00~24:00", TotalCar: 310, TotalMotor: 12, TotalBike: 0,
			Lon: &lon, Lat: &lat, CoordNote: "ok", CreatedAt: created, UpdatedAt: created.Add(time.Hour)},
		{ID: "010002", Area: "三重區", Name: "停車場", TotalCar: 5, CoordNote: "no coordinates", CreatedAt: created, UpdatedAt: created, DeletedAt: &deleted},
	}
	var buf bytes.Buffer
	if err := WriteLotsParquet(&buf, lots); err != nil {
		t.Fatal(err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	wantSchema := `message lotRow {
	required binary id (STRING);
	required binary area (STRING);
	required binary name (STRING);
	required binary type (STRING);
	required binary summary (STRING);
	required binary address (STRING);
	required binary tel (STRING);
	required binary pay_ex (STRING);
	required binary service_time (STRING);
	required int32 total_car (INT(32,true));
	required int32 total_motor (INT(32,true));
	required int32 total_bike (INT(32,true));
	optional double lon;
	optional double lat;
	required binary coord_note (STRING);
	required int64 created_at (TIMESTAMP(isAdjustedToUTC=true,unit=MILLIS));
	required int64 updated_at (TIMESTAMP(isAdjustedToUTC=true,unit=MILLIS));
	optional int64 deleted_at (TIMESTAMP(isAdjustedToUTC=true,unit=MILLIS));
}`
	if got := f.Schema().String(); got != wantSchema {
		t.Errorf("schema:\n%s\nwant:\n%s", got, wantSchema)
	}
	rows, err := parquet.Read[lotRow](bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 {
		t.Fatalf("%d rows, want 2", len(rows))
	}
	a, b := rows[0], rows[1]
	if a.Name != lots[0].Name || a.TotalCar != 310 || a.Lon == nil || *a.Lon != lon || *a.Lat != lat || a.DeletedAt != nil ||
		a.CreatedAt != created.UnixMilli() || a.UpdatedAt != created.Add(time.Hour).UnixMilli() {
		t.Errorf("first lot read back as %+v", a)
	}
	if b.Lon != nil || b.Lat != nil || b.DeletedAt == nil || *b.DeletedAt != deleted.UnixMilli() {
		t.Errorf("second lot: lon %v, lat %v, deleted_at %v; want no position and deleted", b.Lon, b.Lat, b.DeletedAt)
	}

	if err := WriteLotsParquet(&bytes.Buffer{}, []sqlite.LotRecord{{ID: "x", TotalCar: 1 << 40}}); err == nil || !strings.Contains(err.Error(), "total_car") {
		t.Errorf("a total over INT32: %v, want an error naming total_car", err)
	}
}
