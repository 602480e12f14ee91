package replay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrRecord: a fingerprint record that does not decode.
var ErrRecord = errors.New("replay: bad fingerprint record")

// recordVersion is the first byte of an encoded Fingerprint (the layout;
// the fingerprint's own parameters are Fingerprint.Version). Decode also
// reads version 1, the layout without the cells and origin. A short trip's
// fingerprint (Exact != 0) is written as version 3: version 2's layout and
// Exact after it.
const (
	recordVersion      = 2
	recordVersionExact = 3
)

// maxID bounds the vehicle id and date lengths in a record.
const maxID = 64

// AppendBinary appends fp's record (the compacted topic's value):
//
//	byte     record version (2)
//	byte     fingerprint version (Config.Version)
//	uvarint  len(vehicle), bytes
//	uvarint  len(date), bytes
//	uvarint  trip
//	varint   start ms (zig-zag)
//	uvarint  end - start, ms
//	uvarint  N (distinct shingles)
//	64 x 2   signature, little-endian uint16 each
//	byte     origin (0 unknown, 1 near, 2 away)
//	varint   From column, From row (zig-zag each)
//	varint   To column - From column, To row - From row (zig-zag each)
//	8 bytes  Exact, little-endian: record version 3 only, written when
//	         Exact != 0 (a short trip); version 2 has nothing after the cells
//
// 181 bytes for a 17-character VIN, a trip of 43 min and cells of 5
// digits (version 1 ended after the signature: 171 bytes).
func AppendBinary(b []byte, fp *Fingerprint) []byte {
	v := byte(recordVersion)
	if fp.Exact != 0 {
		v = recordVersionExact
	}
	b = append(b, v, fp.Version)
	b = binary.AppendUvarint(b, uint64(len(fp.Vehicle)))
	b = append(b, fp.Vehicle...)
	b = binary.AppendUvarint(b, uint64(len(fp.Date)))
	b = append(b, fp.Date...)
	b = binary.AppendUvarint(b, uint64(fp.Trip))
	b = binary.AppendVarint(b, fp.StartMs)
	b = binary.AppendUvarint(b, uint64(fp.EndMs-fp.StartMs))
	b = binary.AppendUvarint(b, uint64(fp.N))
	for _, v := range fp.Sig {
		b = binary.LittleEndian.AppendUint16(b, v)
	}
	b = append(b, fp.Origin)
	b = binary.AppendVarint(b, int64(fp.From[0]))
	b = binary.AppendVarint(b, int64(fp.From[1]))
	b = binary.AppendVarint(b, int64(fp.To[0])-int64(fp.From[0]))
	b = binary.AppendVarint(b, int64(fp.To[1])-int64(fp.From[1]))
	if fp.Exact != 0 {
		b = binary.LittleEndian.AppendUint64(b, fp.Exact)
	}
	return b
}

// Decode reads a record written by AppendBinary. Anything else (another
// record version, a truncated or over-long record, ids over 64 bytes, a
// trip over 65535, an end before the start, a version 3 record with Exact
// 0) is ErrRecord.
func Decode(b []byte) (Fingerprint, error) {
	var fp Fingerprint
	bad := func(what string) (Fingerprint, error) { return Fingerprint{}, fmt.Errorf("%w: %s", ErrRecord, what) }
	if len(b) < 2 || b[0] < 1 || b[0] > recordVersionExact {
		return bad("version")
	}
	v1, v3 := b[0] == 1, b[0] == recordVersionExact
	fp.Version = b[1]
	b = b[2:]
	str := func() (string, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > maxID || uint64(len(b)-k) < n {
			return "", false
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s, true
	}
	uv := func() (uint64, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 {
			return 0, false
		}
		b = b[k:]
		return n, true
	}
	var ok bool
	if fp.Vehicle, ok = str(); !ok {
		return bad("vehicle")
	}
	if fp.Date, ok = str(); !ok {
		return bad("date")
	}
	trip, ok := uv()
	if !ok || trip > 0xFFFF {
		return bad("trip")
	}
	fp.Trip = uint16(trip)
	start, k := binary.Varint(b)
	if k <= 0 {
		return bad("start")
	}
	b = b[k:]
	fp.StartMs = start
	dur, ok := uv()
	if !ok || dur > 1<<40 || start > 1<<50 || start < -(1<<50) {
		return bad("times")
	}
	fp.EndMs = start + int64(dur)
	n, ok := uv()
	if !ok || n > 0xFFFFFFFF {
		return bad("n")
	}
	fp.N = uint32(n)
	if len(b) < 2*K || v1 && len(b) != 2*K {
		return bad("signature length")
	}
	for i := range fp.Sig {
		fp.Sig[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	if v1 {
		return fp, nil
	}
	b = b[2*K:]
	if len(b) < 1 || b[0] > OriginAway {
		return bad("origin")
	}
	fp.Origin = b[0]
	b = b[1:]
	var c [4]int64
	for i := range c {
		v, k := binary.Varint(b)
		if k <= 0 || v < math.MinInt32 || v > math.MaxInt32 {
			return bad("cells")
		}
		c[i], b = v, b[k:]
	}
	if v3 {
		if len(b) < 8 {
			return bad("exact")
		}
		if fp.Exact, b = binary.LittleEndian.Uint64(b), b[8:]; fp.Exact == 0 {
			return bad("exact")
		}
	}
	tx, ty := c[0]+c[2], c[1]+c[3]
	if tx < math.MinInt32 || tx > math.MaxInt32 || ty < math.MinInt32 || ty > math.MaxInt32 || len(b) != 0 {
		return bad("cells")
	}
	fp.From, fp.To = [2]int32{int32(c[0]), int32(c[1])}, [2]int32{int32(tx), int32(ty)}
	return fp, nil
}

// endVersion is the first byte of an encoded End.
const endVersion = 1

// AppendEnd appends e's record (scoring's changelog value under
// "#end/<vehicle>"):
//
//	byte     record version (1)
//	uvarint  len(date), bytes (1..64)
//	varint   time ms (zig-zag), |time| <= 2^50
//	varint   cell column, cell row (zig-zag each, int32)
//
// 24 bytes for a date of 10 characters, a time of 2026 and cells of 5
// digits.
func AppendEnd(b []byte, e *End) []byte {
	b = append(b, endVersion)
	b = binary.AppendUvarint(b, uint64(len(e.Date)))
	b = append(b, e.Date...)
	b = binary.AppendVarint(b, e.TimeMs)
	b = binary.AppendVarint(b, int64(e.Cell[0]))
	return binary.AppendVarint(b, int64(e.Cell[1]))
}

// DecodeEnd reads a record written by AppendEnd. Anything else (another
// version, an empty or over-long date, a time beyond 2^50, a cell outside
// int32, truncated or trailing bytes) is ErrRecord.
func DecodeEnd(b []byte) (End, error) {
	bad := func(what string) (End, error) { return End{}, fmt.Errorf("%w: end %s", ErrRecord, what) }
	if len(b) < 1 || b[0] != endVersion {
		return bad("version")
	}
	b = b[1:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n == 0 || n > maxID || uint64(len(b)-k) < n {
		return bad("date")
	}
	var e End
	e.Date, b = string(b[k:k+int(n)]), b[k+int(n):]
	var v [3]int64
	for i := range v {
		x, k := binary.Varint(b)
		if k <= 0 {
			return bad("fields")
		}
		v[i], b = x, b[k:]
	}
	switch {
	case v[0] > 1<<50 || v[0] < -(1<<50):
		return bad("time")
	case v[1] != int64(int32(v[1])) || v[2] != int64(int32(v[2])):
		return bad("cell")
	case len(b) != 0:
		return bad("trailing bytes")
	}
	e.TimeMs, e.Cell = v[0], [2]int32{int32(v[1]), int32(v[2])}
	return e, nil
}
