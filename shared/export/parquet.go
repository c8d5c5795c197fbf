package export

import (
	"fmt"
	"io"
	"math"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
)

// This file writes the Parquet history that DuckDB, Athena and anything
// else reading Parquet query: a month of availability observations per file,
// and the lots table. The schemas are fixed in docs/CONTRACTS.md (Glue
// tables are declared against them); change them only together.

// ParquetLayout versions the files' layout (schemas, encodings, row groups).
// A publisher that finds files of another layout rebuilds them.
const ParquetLayout = 1

// availabilityRow is one observation. The encodings are the smallest of
// those every engine reads (docs/ARCHITECTURE.md, Publication): dictionaries
// for the ~1,400 parking IDs and for the day's 288 fetch times, plain
// values, zstd at its "better" level over all of it. Deltas for the times
// were 1% smaller, but some engines (older Presto and Spark) cannot read
// DELTA_BINARY_PACKED.
type availabilityRow struct {
	ParkingID    string `parquet:"parking_id,dict"`
	ObservedAt   int64  `parquet:"observed_at,timestamp(millisecond:utc),dict"`
	AvailableCar int32  `parquet:"available_car"`
}

// lotRow is one row of parking_lots.
type lotRow struct {
	ID          string   `parquet:"id"`
	Area        string   `parquet:"area"`
	Name        string   `parquet:"name"`
	Type        string   `parquet:"type"`
	Summary     string   `parquet:"summary"`
	Address     string   `parquet:"address"`
	Tel         string   `parquet:"tel"`
	PayEx       string   `parquet:"pay_ex"`
	ServiceTime string   `parquet:"service_time"`
	TotalCar    int32    `parquet:"total_car"`
	TotalMotor  int32    `parquet:"total_motor"`
	TotalBike   int32    `parquet:"total_bike"`
	Lon         *float64 `parquet:"lon,optional"`
	Lat         *float64 `parquet:"lat,optional"`
	CoordNote   string   `parquet:"coord_note"`
	CreatedAt   int64    `parquet:"created_at,timestamp(millisecond:utc)"`
	UpdatedAt   int64    `parquet:"updated_at,timestamp(millisecond:utc)"`
	DeletedAt   *int64   `parquet:"deleted_at,optional,timestamp(millisecond:utc)"`
}

// parquetOptions are shared by both files. The writer's name is fixed rather
// than taken from the build, so the same rows give the same bytes whichever
// binary wrote them. Data pages are version 1, which every reader takes
// (some engines still mishandle version 2), at no measurable cost in size.
func parquetOptions(sorting ...parquet.SortingColumn) []parquet.WriterOption {
	return []parquet.WriterOption{
		parquet.Compression(newZstd()),
		parquet.DataPageVersion(1),
		// "application version V", the form readers parse; V is the layout.
		&parquet.WriterConfig{CreatedBy: fmt.Sprintf("parking-newtaipei version %d", ParquetLayout)},
		parquet.SortingWriterConfig(parquet.SortingColumns(sorting...)),
	}
}

// zstdCodec is Parquet's zstd codec with a 1 MiB window. The library's
// codec keeps the level's default window (8 MiB at the "better" level) and
// with it 20 MiB of encoder state, for pages of a few hundred KiB: no match
// reaches further than a page, so the files are the same size (measured).
type zstdCodec struct {
	enc *zstd.Encoder

	decOnce sync.Once // the writer never decodes; a reader may
	dec     *zstd.Decoder
}

func newZstd() *zstdCodec {
	// The options are valid constants: NewWriter cannot fail.
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithWindowSize(1<<20),
		zstd.WithEncoderConcurrency(1), zstd.WithZeroFrames(true), zstd.WithEncoderCRC(false))
	return &zstdCodec{enc: enc}
}

func (c *zstdCodec) String() string                            { return "ZSTD" }
func (c *zstdCodec) CompressionCodec() format.CompressionCodec { return format.Zstd }

// Encode and Decode are safe for concurrent use, as a parquet codec must be:
// EncodeAll and DecodeAll are.
func (c *zstdCodec) Encode(dst, src []byte) ([]byte, error) {
	return c.enc.EncodeAll(src, dst[:0]), nil
}

func (c *zstdCodec) Decode(dst, src []byte) ([]byte, error) {
	c.decOnce.Do(func() { c.dec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1)) })
	return c.dec.DecodeAll(src, dst[:0])
}

// AvailabilityParquet writes observations, in the order Observations gives
// them (fetch time, then parking ID), as one Parquet file. Each Taipei day is
// a row group: the memory held is a day's rows, a reader can skip days by
// their statistics, and the split depends on the data alone.
type AvailabilityParquet struct {
	w     *parquet.GenericWriter[availabilityRow]
	batch []availabilityRow
	day   int64 // Taipei day of the open row group
	prev  sqlite.Observation
	stats sqlite.ObservationStats
}

// writeBatch is how many rows are handed to the Parquet writer at once.
const writeBatch = 4096

// NewAvailabilityParquet starts a file on w.
func NewAvailabilityParquet(w io.Writer) *AvailabilityParquet {
	return &AvailabilityParquet{
		w:     parquet.NewGenericWriter[availabilityRow](w, parquetOptions(parquet.Ascending("observed_at"), parquet.Ascending("parking_id"))...),
		batch: make([]availabilityRow, 0, writeBatch),
		day:   math.MinInt64,
	}
}

// taipeiOffset is Asia/Taipei's offset from UTC (no DST since 1979).
const taipeiOffset = 8 * 3600

// Write adds observations. They must continue the order: a file that says it
// is sorted and is not would mislead every reader that trusts it.
func (a *AvailabilityParquet) Write(obs []sqlite.Observation) error {
	for _, o := range obs {
		if a.stats.Rows > 0 && (o.ObservedAt < a.prev.ObservedAt || o.ObservedAt == a.prev.ObservedAt && o.ParkingID <= a.prev.ParkingID) {
			return fmt.Errorf("availability parquet: observation %s at %d after %s at %d: not in time-then-lot order",
				o.ParkingID, o.ObservedAt, a.prev.ParkingID, a.prev.ObservedAt)
		}
		a.prev = o
		if day := (o.ObservedAt + taipeiOffset) / 86400; day != a.day {
			if err := a.flush(a.day != math.MinInt64); err != nil {
				return err
			}
			a.day = day
		}
		a.batch = append(a.batch, availabilityRow{ParkingID: o.ParkingID, ObservedAt: o.ObservedAt * 1000, AvailableCar: o.AvailableCar})
		a.stats.Rows++
		a.stats.SumAvailable += int64(o.AvailableCar)
		if len(a.batch) == cap(a.batch) {
			if err := a.flush(false); err != nil {
				return err
			}
		}
	}
	return nil
}

// flush hands the batch to the writer and, with endGroup, closes the row group.
func (a *AvailabilityParquet) flush(endGroup bool) error {
	if len(a.batch) > 0 {
		if _, err := a.w.Write(a.batch); err != nil {
			return fmt.Errorf("availability parquet: %w", err)
		}
		a.batch = a.batch[:0]
	}
	if endGroup {
		if err := a.w.Flush(); err != nil {
			return fmt.Errorf("availability parquet: %w", err)
		}
	}
	return nil
}

// Close ends the file and returns the count and sum of what it holds.
func (a *AvailabilityParquet) Close() (sqlite.ObservationStats, error) {
	if err := a.flush(false); err != nil {
		return a.stats, err
	}
	if err := a.w.Close(); err != nil {
		return a.stats, fmt.Errorf("availability parquet: %w", err)
	}
	return a.stats, nil
}

// WriteLotsParquet writes the lots table, deleted lots included, as one
// Parquet file sorted by ID.
func WriteLotsParquet(w io.Writer, lots []sqlite.LotRecord) error {
	rows := make([]lotRow, 0, len(lots))
	for _, l := range lots {
		r := lotRow{
			ID: l.ID, Area: l.Area, Name: l.Name, Type: l.Type, Summary: l.Summary, Address: l.Address, Tel: l.Tel,
			PayEx: l.PayEx, ServiceTime: l.ServiceTime, Lon: l.Lon, Lat: l.Lat, CoordNote: l.CoordNote,
			CreatedAt: l.CreatedAt.UnixMilli(), UpdatedAt: l.UpdatedAt.UnixMilli(),
		}
		var err error
		if r.TotalCar, err = int32Of(l.ID, "total_car", l.TotalCar); err != nil {
			return err
		}
		if r.TotalMotor, err = int32Of(l.ID, "total_motor", l.TotalMotor); err != nil {
			return err
		}
		if r.TotalBike, err = int32Of(l.ID, "total_bike", l.TotalBike); err != nil {
			return err
		}
		if l.DeletedAt != nil {
			ms := l.DeletedAt.UnixMilli()
			r.DeletedAt = &ms
		}
		rows = append(rows, r)
	}
	pw := parquet.NewGenericWriter[lotRow](w, parquetOptions(parquet.Ascending("id"))...)
	if _, err := pw.Write(rows); err != nil {
		return fmt.Errorf("lots parquet: %w", err)
	}
	if err := pw.Close(); err != nil {
		return fmt.Errorf("lots parquet: %w", err)
	}
	return nil
}

func int32Of(id, column string, v int64) (int32, error) {
	if v < math.MinInt32 || v > math.MaxInt32 {
		return 0, fmt.Errorf("lots parquet: lot %s: %s %d does not fit an INT32", id, column, v)
	}
	return int32(v), nil
}
