package scoring

import (
	"encoding/binary"
	"errors"
	"math"
)

// dayFixedSize bounds a Day's binary encoding without its device id: every
// integer as a varint (at most 10 bytes), floats 8 bytes, the hash 32.
const dayFixedSize = 40*10 + 3*8 + 32

var errTruncated = errors.New("truncated day state")

// AppendBinary appends the Day's changelog encoding: its fields in
// declaration order, integers as (zigzag) varints, floats as little-endian
// IEEE-754, the events hash raw, the device id length-prefixed. A typical
// day encodes in ~150 bytes; the size never grows with the number of events.
func (d *Day) AppendBinary(b []byte) []byte {
	u := func(v uint64) { b = binary.AppendUvarint(b, v) }
	s := func(v int64) { b = binary.AppendVarint(b, v) }
	f := func(v float64) { b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v)) }
	s(d.Start)
	s(d.End - d.Start)
	u(uint64(d.NightEnd))
	u(uint64(d.bits))
	u(uint64(d.last))
	s(int64(d.lastSpeed))
	s(int64(d.prevSpeed))
	s(int64(d.fixT))
	s(int64(d.fixLat))
	s(int64(d.fixLon))
	s(int64(d.candT))
	s(int64(d.candLat))
	s(int64(d.candLon))
	u(uint64(d.fixDrive))
	u(uint64(d.candN))
	for _, h := range d.harsh {
		u(uint64(h.durMs))
		u(uint64(h.count))
	}
	for _, v := range [...]uint32{d.events, d.late, d.drivingMs, d.nightMs, d.speedingMs, d.speedRunMs,
		d.stretchStart, d.lastMoving, uint32(d.fatigue), uint32(d.jumps), uint32(d.rollbacks), d.hdopRejected,
		d.lastDt, d.pairs, d.exactT, d.exactV, d.exactP} {
		u(uint64(v))
	}
	f(d.gpsM)
	f(d.odoLast)
	f(d.odoKm)
	b = append(b, d.hash[:]...)
	u(uint64(len(d.Device)))
	return append(b, d.Device...)
}

// UnmarshalBinary reads what AppendBinary wrote and returns the bytes after it.
func (d *Day) UnmarshalBinary(b []byte) ([]byte, error) {
	var bad bool
	u := func() uint64 {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			bad = true
			return 0
		}
		b = b[n:]
		return v
	}
	u32 := func() uint32 {
		v := u()
		if v > math.MaxUint32 {
			bad = true
		}
		return uint32(v)
	}
	u16 := func() uint16 {
		v := u()
		if v > math.MaxUint16 {
			bad = true
		}
		return uint16(v)
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
	s32 := func() int32 {
		v := s()
		if v < math.MinInt32 || v > math.MaxInt32 {
			bad = true
		}
		return int32(v)
	}
	f := func() float64 {
		if len(b) < 8 {
			bad = true
			return 0
		}
		v := math.Float64frombits(binary.LittleEndian.Uint64(b))
		b = b[8:]
		return v
	}
	var x Day
	x.Start = s()
	x.End = x.Start + s()
	x.NightEnd = u32()
	x.bits = u32()
	x.last = u32()
	x.lastSpeed = s32()
	x.prevSpeed = s32()
	x.fixT = s32()
	x.fixLat = s32()
	x.fixLon = s32()
	x.candT = s32()
	x.candLat = s32()
	x.candLon = s32()
	x.fixDrive = u32()
	if c := u(); c > 255 {
		bad = true
	} else {
		x.candN = uint8(c)
	}
	for i := range x.harsh {
		x.harsh[i].durMs = u16()
		x.harsh[i].count = u16()
	}
	for _, p := range [...]*uint32{&x.events, &x.late, &x.drivingMs, &x.nightMs, &x.speedingMs, &x.speedRunMs,
		&x.stretchStart, &x.lastMoving} {
		*p = u32()
	}
	x.fatigue = u16()
	x.jumps = u16()
	x.rollbacks = u16()
	x.hdopRejected = u32()
	x.lastDt = u32()
	x.pairs = u32()
	x.exactT = u32()
	x.exactV = u32()
	x.exactP = u32()
	x.gpsM = f()
	x.odoLast = f()
	x.odoKm = f()
	if bad || len(b) < 32 {
		return nil, errTruncated
	}
	copy(x.hash[:], b)
	b = b[32:]
	dev, rest, err := readString(b)
	if err != nil {
		return nil, errTruncated
	}
	if x.End <= x.Start || int64(x.NightEnd) > x.End-x.Start {
		return nil, errors.New("day state: bad window bounds")
	}
	x.Device = dev
	*d = x
	return rest, nil
}
