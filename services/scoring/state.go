package scoring

import (
	"encoding/binary"
	"errors"
	"math"
)

// dayFixedSize is a Day's typical encoding without its segs and ids.
const dayFixedSize = 8*10 + 32

// segSize is the encoded size of one seg (encoding/binary, fixed layout).
var segSize = binary.Size(seg{})

var errTruncated = errors.New("truncated day state")

// AppendBinary appends the Day's changelog encoding (state version 2):
// Start and End-Start as zigzag varints, NightEnd, events, late as
// uvarints, one byte "third device", the two device spans (id as uvarint
// length and bytes, first and last as uvarints), the hash sum (4 x 8 bytes
// little-endian, least significant limb first), the number of segs
// (uvarint) and each seg in encoding/binary's little-endian layout of its
// fields in declaration order. The size is bounded by MaxSegments.
func (d *Day) AppendBinary(b []byte) []byte {
	b = binary.AppendVarint(b, d.Start)
	b = binary.AppendVarint(b, d.End-d.Start)
	for _, v := range [...]uint32{d.NightEnd, d.events, d.late} {
		b = binary.AppendUvarint(b, uint64(v))
	}
	if d.third {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	for _, s := range d.devs {
		b = binary.AppendUvarint(b, uint64(len(s.ID)))
		b = append(b, s.ID...)
		b = binary.AppendUvarint(b, uint64(s.First))
		b = binary.AppendUvarint(b, uint64(s.Last))
	}
	for _, v := range d.sum {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	b = binary.AppendUvarint(b, uint64(len(d.segs)))
	for i := range d.segs {
		b = appendSeg(b, &d.segs[i])
	}
	return b
}

// UnmarshalBinary reads what AppendBinary wrote and returns the bytes after it.
func (d *Day) UnmarshalBinary(b []byte) ([]byte, error) {
	var bad bool
	u32 := func() uint32 {
		v, n := binary.Uvarint(b)
		if n <= 0 || v > math.MaxUint32 {
			bad = true
			return 0
		}
		b = b[n:]
		return uint32(v)
	}
	s := func() int64 {
		v, n := binary.Varint(b)
		if n <= 0 {
			bad = true
			return 0
		}
		b = b[n:]
		return v
	}
	var x Day
	x.Start = s()
	x.End = x.Start + s()
	x.NightEnd, x.events, x.late = u32(), u32(), u32()
	if bad || len(b) < 1 || b[0] > 1 {
		return nil, errTruncated
	}
	x.third = b[0] == 1
	b = b[1:]
	for i := range x.devs {
		id, rest, err := readString(b)
		if err != nil {
			return nil, errTruncated
		}
		b = rest
		x.devs[i] = devSpan{ID: id, First: u32(), Last: u32()}
	}
	if bad || len(b) < 32 {
		return nil, errTruncated
	}
	for i := range x.sum {
		x.sum[i] = binary.LittleEndian.Uint64(b)
		b = b[8:]
	}
	n := u32()
	if bad || n > MaxSegments || len(b) < int(n)*segSize {
		return nil, errTruncated
	}
	if x.End <= x.Start || int64(x.NightEnd) > x.End-x.Start {
		return nil, errors.New("day state: bad window bounds")
	}
	if n > 0 {
		x.segs = make([]seg, n)
	}
	for i := range x.segs {
		rest, ok := readSeg(b, &x.segs[i])
		if !ok {
			return nil, errTruncated
		}
		b = rest
		g := &x.segs[i]
		if g.N == 0 || g.F1.T > g.L2.T || int64(g.L2.T) >= x.End-x.Start || i > 0 && g.F1.T <= x.segs[i-1].L2.T {
			return nil, errors.New("day state: bad segment")
		}
	}
	if x.devs[0].ID != "" {
		x.Device = x.devs[0].ID
		if o := x.devs[1]; o.ID != "" && (o.First < x.devs[0].First || o.First == x.devs[0].First && o.ID < x.devs[0].ID) {
			x.Device = o.ID
		}
	}
	*d = x
	return b, nil
}
