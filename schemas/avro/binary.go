// Package avro holds one Go type per record schema of schemas/*.avsc (except
// telemetry's Event and Batch, which services/telemetry encodes with its own
// specialised codec), each with an Avro binary encoder and decoder generated
// for that schema by schemas/internal/avrogen: `go generate ./schemas/...`
// rewrites records_gen.go. They are the one codec of each record, shared by
// its writer and every reader; schemas.Serde frames them (Marshal,
// Unmarshal).
//
// The bytes are the Avro binary encoding, identical to goavro's (tests check
// every type against goavro both ways). Decoding checks every length and
// count against the bytes left before allocating, so a short hostile input
// never makes a large allocation; bytes and strings are copied out of the
// input.
package avro

//go:generate go run ../internal/avrogen/cmd -o records_gen.go ..

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("malformed avro body")

// Avro ints and longs are zig-zag varints: what binary.AppendVarint writes.

func appendLong(dst []byte, v int64) []byte { return binary.AppendVarint(dst, v) }

func appendString(dst []byte, s string) []byte {
	return append(binary.AppendVarint(dst, int64(len(s))), s...)
}

func appendBytes(dst, v []byte) []byte {
	return append(binary.AppendVarint(dst, int64(len(v))), v...)
}

func appendDouble(dst []byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
}

func appendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, 1)
	}
	return append(dst, 0)
}

// Unions ["null", T]: branch 0 is null, branch 1 (zig-zag 2) the value.

func appendOptString(dst []byte, s string) []byte {
	if s == "" {
		return append(dst, 0)
	}
	return appendString(append(dst, 2), s)
}

func appendOptBytes(dst, v []byte) []byte {
	if v == nil {
		return append(dst, 0)
	}
	return appendBytes(append(dst, 2), v)
}

func appendOptLong(dst []byte, v *int64) []byte {
	if v == nil {
		return append(dst, 0)
	}
	return appendLong(append(dst, 2), *v)
}

type enum interface {
	~string
	index() (int64, error)
}

func appendEnum[E enum](dst []byte, e E) ([]byte, error) {
	i, err := e.index()
	if err != nil {
		return dst, err
	}
	return appendLong(dst, i), nil
}

// decoder reads an Avro binary body. The first error sticks: later reads
// return zero values, and finish reports it.
type decoder struct {
	b   []byte
	i   int
	err error
}

func (d *decoder) fail(field, format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: field %s at byte %d: %s", ErrMalformed, field, d.i, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) finish(record string) error {
	if d.err == nil && d.i != len(d.b) {
		return fmt.Errorf("%w: %s: %d bytes after the record", ErrMalformed, record, len(d.b)-d.i)
	}
	if d.err != nil {
		return fmt.Errorf("%s: %w", record, d.err)
	}
	return nil
}

func (d *decoder) left() int { return len(d.b) - d.i }

// varint reads a zig-zag varint of at most max bytes (5 for an int, 10 for
// a long: longer encodings are refused, as by other Avro readers).
func (d *decoder) varint(field string, max int) int64 {
	if d.err != nil {
		return 0
	}
	var u uint64
	for n := 0; n < max; n++ {
		if d.i >= len(d.b) {
			d.fail(field, "truncated varint")
			return 0
		}
		c := d.b[d.i]
		d.i++
		if n == 9 && c > 1 {
			d.fail(field, "varint overflows 64 bits")
			return 0
		}
		u |= uint64(c&0x7f) << (7 * n)
		if c < 0x80 {
			return int64(u>>1) ^ -int64(u&1)
		}
	}
	d.fail(field, "varint longer than %d bytes", max)
	return 0
}

func (d *decoder) long(field string) int64 { return d.varint(field, 10) }

func (d *decoder) int(field string) int32 {
	v := d.varint(field, 5)
	if v < math.MinInt32 || v > math.MaxInt32 {
		d.fail(field, "int %d out of range", v)
		return 0
	}
	return int32(v)
}

// length reads a byte length and checks it against the bytes left.
func (d *decoder) length(field string) int {
	n := d.long(field)
	if d.err != nil {
		return 0
	}
	if n < 0 || n > int64(d.left()) {
		d.fail(field, "length %d with %d bytes left", n, d.left())
		return 0
	}
	return int(n)
}

func (d *decoder) bytes(field string) []byte {
	n := d.length(field)
	if d.err != nil {
		return nil
	}
	v := make([]byte, n)
	copy(v, d.b[d.i:])
	d.i += n
	return v
}

func (d *decoder) string(field string) string {
	n := d.length(field)
	if d.err != nil {
		return ""
	}
	s := string(d.b[d.i : d.i+n])
	d.i += n
	return s
}

func (d *decoder) double(field string) float64 {
	if d.err != nil {
		return 0
	}
	if d.left() < 8 {
		d.fail(field, "truncated double")
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b[d.i:]))
	d.i += 8
	return v
}

func (d *decoder) bool(field string) bool {
	if d.err != nil {
		return false
	}
	if d.left() < 1 {
		d.fail(field, "truncated boolean")
		return false
	}
	c := d.b[d.i]
	d.i++
	if c > 1 {
		d.fail(field, "boolean byte %d", c)
	}
	return c == 1
}

// union reads the branch of a ["null", T] union: false for null.
func (d *decoder) union(field string) bool {
	switch i := d.long(field); {
	case d.err != nil:
		return false
	case i == 0:
		return false
	case i == 1:
		return true
	default:
		d.fail(field, "union branch %d of 2", i)
		return false
	}
}

// block reads an array block's item count: 0 at the end of the array. A
// negative count (the block's byte size follows) is read as its absolute
// value. Every item of minecart's arrays takes at least one byte, so a
// count above the bytes left is refused before anything is allocated.
func (d *decoder) block(field string) int {
	n := d.long(field)
	if d.err != nil {
		return 0
	}
	if n < 0 {
		if n == math.MinInt64 {
			d.fail(field, "block count %d", n)
			return 0
		}
		n = -n
		if size := d.long(field); d.err == nil && (size < 0 || size > int64(d.left())) {
			d.fail(field, "block size %d with %d bytes left", size, d.left())
		}
	}
	if d.err == nil && n > int64(d.left()) {
		d.fail(field, "block of %d items with %d bytes left", n, d.left())
	}
	if d.err != nil {
		return 0
	}
	return int(n)
}

func decodeEnum[E ~string](d *decoder, field string, symbols []E) E {
	i := d.varint(field, 5)
	if d.err != nil {
		return ""
	}
	if i < 0 || i >= int64(len(symbols)) {
		d.fail(field, "enum index %d of %d symbols", i, len(symbols))
		return ""
	}
	return symbols[i]
}
