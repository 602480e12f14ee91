package view

import (
	"encoding/binary"
	"math"
	"slices"
)

// Point is one point of a track: the columns the track endpoint answers
// with and its sort key (time, device, seq). Dev indexes the vehicle's
// device table (Track returns it).
type Point struct {
	TimeMs     int64
	Dev        uint32
	Seq        uint64
	LatE6      int32
	LonE6      int32
	SpeedKmh   float32
	HeadingDeg float32
}

// key is the telemetry table's sort key within a vehicle.
type key struct {
	t   int64
	dev string
	seq uint64
}

func (a key) less(b key) bool {
	if a.t != b.t {
		return a.t < b.t
	}
	if a.dev != b.dev {
		return a.dev < b.dev
	}
	return a.seq < b.seq
}

func (a key) cmp(b key) int {
	switch {
	case a.less(b):
		return -1
	case b.less(a):
		return 1
	}
	return 0
}

// dayTrack is one vehicle-day's points as a byte stream, each point
// delta-encoded against the one before it (the first against zero):
//
//	uvarint  zigzag(time_ms - previous time_ms)
//	uvarint  device index
//	uvarint  zigzag(seq - previous seq)        (as int64)
//	uvarint  zigzag(lat_e6 - previous lat_e6)
//	uvarint  zigzag(lon_e6 - previous lon_e6)
//	speed, heading: each a fixed-point value (fixed below)
//
// A fixed-point value is uvarint(q << 1) when the float32 is exactly
// float32(q / 100) for a q in [0, 2^31) (speeds and headings as boxes
// report them: centi-units), else a 1 byte then the float32's 4 bytes
// little-endian. So a point of a box reporting every few seconds takes
// 10-13 bytes, no allocation of its own.
//
// Points are appended in arrival order. While each arrives after the one
// before by key, sorted stays true and a read decodes the stream as is; a
// late point (or a repeated key) clears it, and the next read sorts the
// stream once (sort: stable by key, the last applied of a repeated key
// kept, as ClickHouse's ReplacingMergeTree keeps the last row inserted).
type dayTrack struct {
	day      int32
	n        int32 // points in buf
	sorted   bool
	overflow bool  // past MaxPointsPerDay: dropped, not covered
	last     Point // the last point appended (the delta base)
	buf      []byte
}

func zig(v int64) uint64   { return uint64(v<<1) ^ uint64(v>>63) }
func unzig(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

func appendFixed(b []byte, f float32) []byte {
	if f >= 0 && f < 1<<24 {
		q := math.Round(float64(f) * 100)
		if q < 1<<31 && float32(q/100) == f && !math.Signbit(float64(f)) {
			return binary.AppendUvarint(b, uint64(q)<<1)
		}
	}
	b = append(b, 1)
	return binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
}

func readFixed(b []byte) (float32, int) {
	u, n := binary.Uvarint(b)
	if u&1 == 0 {
		return float32(float64(u>>1) / 100), n
	}
	return math.Float32frombits(binary.LittleEndian.Uint32(b[1:5])), 5
}

func (t *dayTrack) append(p Point, devs []string) {
	if t.n > 0 && t.sorted && !(key{t.last.TimeMs, devs[t.last.Dev], t.last.Seq}).less(key{p.TimeMs, devs[p.Dev], p.Seq}) {
		t.sorted = false
	}
	t.buf = encodePoint(t.buf, p, t.last)
	t.last = p
	t.n++
}

func encodePoint(b []byte, p, prev Point) []byte {
	b = binary.AppendUvarint(b, zig(p.TimeMs-prev.TimeMs))
	b = binary.AppendUvarint(b, uint64(p.Dev))
	b = binary.AppendUvarint(b, zig(int64(p.Seq-prev.Seq)))
	b = binary.AppendUvarint(b, zig(int64(p.LatE6)-int64(prev.LatE6)))
	b = binary.AppendUvarint(b, zig(int64(p.LonE6)-int64(prev.LonE6)))
	b = appendFixed(b, p.SpeedKmh)
	return appendFixed(b, p.HeadingDeg)
}

// decode appends the points of the stream with time in [from, to) to dst.
// The stream must be sorted for the answer to be in order.
func (t *dayTrack) decode(dst []Point, from, to int64) []Point {
	var p Point
	b := t.buf
	for range t.n {
		u, n := binary.Uvarint(b)
		p.TimeMs += unzig(u)
		b = b[n:]
		u, n = binary.Uvarint(b)
		p.Dev = uint32(u)
		b = b[n:]
		u, n = binary.Uvarint(b)
		p.Seq += uint64(unzig(u))
		b = b[n:]
		u, n = binary.Uvarint(b)
		p.LatE6 = int32(int64(p.LatE6) + unzig(u))
		b = b[n:]
		u, n = binary.Uvarint(b)
		p.LonE6 = int32(int64(p.LonE6) + unzig(u))
		b = b[n:]
		p.SpeedKmh, n = readFixed(b)
		b = b[n:]
		p.HeadingDeg, n = readFixed(b)
		b = b[n:]
		if p.TimeMs >= to && t.sorted {
			break
		}
		if p.TimeMs >= from && p.TimeMs < to {
			dst = append(dst, p)
		}
	}
	return dst
}

// sort re-encodes the stream in key order with one point per key (the
// last appended).
func (t *dayTrack) sort(devs []string) {
	all := t.decode(make([]Point, 0, t.n), math.MinInt64, math.MaxInt64)
	slices.SortStableFunc(all, func(a, b Point) int {
		return key{a.TimeMs, devs[a.Dev], a.Seq}.cmp(key{b.TimeMs, devs[b.Dev], b.Seq})
	})
	out := all[:0]
	for i, p := range all {
		if i+1 < len(all) && (key{p.TimeMs, devs[p.Dev], p.Seq}).cmp(key{all[i+1].TimeMs, devs[all[i+1].Dev], all[i+1].Seq}) == 0 {
			continue // a later one of the same key follows
		}
		out = append(out, p)
	}
	buf := make([]byte, 0, len(t.buf))
	var prev Point
	for _, p := range out {
		buf = encodePoint(buf, p, prev)
		prev = p
	}
	t.buf, t.n, t.last, t.sorted = buf, int32(len(out)), prev, true
}
