package sink

import (
	"bytes"
	"encoding/binary"
	"io"
	"reflect"
	"strings"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
)

// presize makes room for rows more rows in each of cols (a batch's
// columns, clickhouse-go's Batch.Columns) before the rows are appended:
// strBytes[i] is the total length of column i's strings (0 for a column
// that is not a String). clickhouse-go appends a slice to a column value
// by value, so Go's append grows the column's arrays by a quarter at a
// time: a 200,000-row batch allocates about five times its encoded size
// (110 MB for 14 MB of Native, docs/scale.md, branch chins) and copies four
// times, which with the garbage collection it triggers was half of the
// client's CPU. Decoding rows zero values into a column allocates each of
// its arrays once at full size (ch-go reads a column in one piece), and
// Reset keeps that capacity while dropping the rows; the appends that
// follow then never grow (a String column: stringSizer). Only the types
// whose Native encoding of zero values is plain zero bytes are sized
// (numbers, dates, String, and Nullable and Array of them); the others
// are left alone. A column that fails to decode is reset all the same:
// sizing never changes what is appended.
func presize(cols []column.Interface, rows int, strBytes []int) {
	if rows <= 0 {
		return
	}
	var zero *proto.Reader // shared: every read of it is zeros
	for i, c := range cols {
		if c.Rows() != 0 || !zeroDecodable(string(c.Type())) {
			continue
		}
		r := zero
		if c.Type() == "String" {
			r = proto.NewReader(stringSizer(strBytes, i))
		} else if r == nil {
			zero = proto.NewReader(zeros{})
			r = zero
		}
		_ = c.Decode(r, rows)
		c.Reset()
	}
}

// stringSizer is what a String column of strBytes[i] bytes is decoded
// from to size it: ch-go's ColStr.DecodeColumn makes room for all the
// rows' positions first, then reads them one by one; the first string
// holds all the bytes (its buffer allocated once), and the data ends
// there, so the decoding stops at the second row instead of reading a
// length per row. (A first string shorter than 128 bytes would make
// ch-go size the buffer as if every row were as long: then there is no
// string at all, only the positions are sized.)
func stringSizer(strBytes []int, i int) io.Reader {
	if i >= len(strBytes) || strBytes[i] < 128 {
		return bytes.NewReader(nil)
	}
	return io.MultiReader(bytes.NewReader(binary.AppendUvarint(nil, uint64(strBytes[i]))), io.LimitReader(zeros{}, int64(strBytes[i])))
}

// zeroDecodable reports whether zero bytes are a valid Native encoding of
// zero values of type t.
func zeroDecodable(t string) bool {
	for _, wrap := range []string{"Nullable(", "Array("} {
		if inner, ok := strings.CutPrefix(t, wrap); ok {
			return strings.HasSuffix(inner, ")") && zeroDecodable(inner[:len(inner)-1])
		}
	}
	switch t {
	case "String", "Bool", "Date", "Date32", "Float32", "Float64",
		"Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64":
		return true
	}
	return strings.HasPrefix(t, "DateTime64(") || t == "DateTime" || strings.HasPrefix(t, "DateTime(")
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// columnSizes is the number of rows of cols (whole columns, one slice
// each) and the total length of each []string column's strings.
func columnSizes(cols []any) (rows int, strBytes []int) {
	strBytes = make([]int, len(cols))
	for i, c := range cols {
		if i == 0 {
			rows = reflect.ValueOf(c).Len()
		}
		if ss, ok := c.([]string); ok {
			for _, s := range ss {
				strBytes[i] += len(s)
			}
		}
	}
	return rows, strBytes
}
