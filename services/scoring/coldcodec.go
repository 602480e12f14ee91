package scoring

import (
	"encoding/binary"
	"errors"
	"unsafe"
)

// The cold layout of an open day (Windows keeps a day in it between a
// Flush and the day's next event; docs/scale.md, "Scoring memory"). It is
// not the changelog encoding (Day.AppendBinary, unchanged): it is private
// to the process, so it may predict. Every field is written as a uvarint
// of the zigzag of its difference (wrapping, so any value round-trips)
// from a prediction made of fields written before it: a sample's time from
// the previous sample's, a fix's position from the previous fix's, the
// run's driving time from its span, and so on; flags go eight to a byte.
// A day of one regular run is then mostly zero bytes, which packZeros
// (the whole stream, after it) stores as one mask bit each. One function,
// coldDay, walks the fields for both directions, so the two cannot drift
// apart; Start and End are the slot's, not written.

// coldIO reads (dec) or writes one cold stream. Raw bytes (the hash
// sum, device ids: rarely zero) go to a separate tail, kept out of
// packZeros' masks.
type coldIO struct {
	dec  bool
	b    []byte // write: the output; read: what is left
	raw  []byte // the raw tail (write: appended; read: what is left)
	zero bool   // read: inside an elided block (every field is its prediction)
	bad  bool
}

func zig32(d int32) uint64   { return uint64(uint32(d<<1) ^ uint32(d>>31)) }
func unzig32(z uint64) int32 { return int32(uint32(z)>>1) ^ -int32(uint32(z)&1) }
func zig64(d int64) uint64   { return uint64(d<<1) ^ uint64(d>>63) }
func unzig64(z uint64) int64 { return int64(z>>1) ^ -int64(z&1) }

func (c *coldIO) uv(v uint64) uint64 {
	if !c.dec {
		c.b = binary.AppendUvarint(c.b, v)
		return v
	}
	if c.zero {
		return 0
	}
	x, n := binary.Uvarint(c.b)
	if n <= 0 {
		c.bad = true
		return 0
	}
	c.b = c.b[n:]
	return x
}

// u32 codes *p as its difference from pred.
func (c *coldIO) u32(p *uint32, pred uint32) {
	z := c.uv(zig32(int32(*p - pred)))
	if c.dec {
		*p = pred + uint32(unzig32(z))
	}
}

func (c *coldIO) i32(p *int32, pred int32) {
	z := c.uv(zig32(int32(uint32(*p) - uint32(pred))))
	if c.dec {
		*p = int32(uint32(pred) + uint32(unzig32(z)))
	}
}

func (c *coldIO) i64(p *int64, pred int64) {
	z := c.uv(zig64(int64(uint64(*p) - uint64(pred))))
	if c.dec {
		*p = int64(uint64(pred) + uint64(unzig64(z)))
	}
}

func (c *coldIO) u64(p *uint64, pred uint64) {
	z := c.uv(zig64(int64(*p - pred)))
	if c.dec {
		*p = pred + uint64(unzig64(z))
	}
}

// u8 codes *p as its XOR with pred.
func (c *coldIO) u8(p *uint8, pred uint8) {
	z := c.uv(uint64(*p ^ pred))
	if c.dec {
		*p = uint8(z) ^ pred
	}
}

// flags codes up to eight bools as one byte (bit i: ps[i]).
func (c *coldIO) flags(ps ...*bool) {
	var v uint64
	if !c.dec {
		for i, p := range ps {
			if *p {
				v |= 1 << i
			}
		}
	}
	v = c.uv(v)
	if c.dec {
		for i, p := range ps {
			*p = v&(1<<i) != 0
		}
	}
}

// block codes fields that are usually all equal to their predictions:
// a byte 1 and the fields, or, when every field's varint is 0, a byte 0
// alone (reading then sets every field to its prediction).
func (c *coldIO) block(f func()) {
	if !c.dec {
		mark := len(c.b)
		c.b = append(c.b, 1)
		f()
		for _, x := range c.b[mark+1:] {
			if x != 0 {
				return
			}
		}
		c.b = append(c.b[:mark], 0)
		return
	}
	switch c.uv(0) {
	case 0:
		z := c.zero
		c.zero = true
		f()
		c.zero = z
	case 1:
		f()
	default:
		c.bad = true
	}
}

// rawBytes codes p's bytes in the raw tail.
func (c *coldIO) rawBytes(p []byte) {
	if !c.dec {
		c.raw = append(c.raw, p...)
		return
	}
	if len(c.raw) < len(p) {
		c.bad = true
		return
	}
	copy(p, c.raw)
	c.raw = c.raw[len(p):]
}

// id codes an id (a device's) as appendID does: the header (length and
// whether it is packed) in the stream, the bytes in the raw tail.
func (c *coldIO) id(p *string) {
	if !c.dec {
		h := uint64(len(*p)) << 1
		if packable(*p) {
			h |= 1
		}
		c.uv(h)
		c.raw = appendIDBody(c.raw, *p)
		return
	}
	h := c.uv(0)
	n, packed := h>>1, h&1 == 1
	size := n
	if packed {
		size = uint64(packedLen(int(min(n, 1<<20))))
	}
	if n > 1<<20 || uint64(len(c.raw)) < size {
		c.bad = true
		return
	}
	if packed {
		var buf [64]byte
		*p = string(appendIDText(buf[:0], int(n), true, c.raw[:size]))
	} else {
		*p = string(c.raw[:size])
	}
	c.raw = c.raw[size:]
}

// sample codes x from prev: its time and speed, then its classes (bits
// and harsh classes, usually those of prev) in a block.
func (c *coldIO) sample(x *sample, prev *sample) {
	c.u32(&x.T, prev.T)
	c.i32(&x.SpeedC, prev.SpeedC)
	c.block(func() {
		c.u8(&x.Bits, prev.Bits)
		for i := range x.Harsh {
			c.u8(&x.Harsh[i], prev.Harsh[i])
		}
	})
}

// fix codes f from prev's position, the sample time t and speed, and
// odoM; its Drive from drive, plus f.T - prev.T when sincePrev (the
// driving between two fixes of a moving run).
func (c *coldIO) fix(f *fix, prev *fix, t, speed uint32, drive uint32, sincePrev bool, odoM int64) {
	c.u32(&f.T, t)
	c.i32(&f.Lat, prev.Lat)
	c.i32(&f.Lon, prev.Lon)
	c.i32(&f.SpeedC, int32(speed))
	if sincePrev {
		drive += f.T - prev.T
	}
	c.u32(&f.Drive, drive)
	c.i64(&f.OdoM, odoM)
}

// seg codes one seg; prevT is the previous seg's last sample time (0
// for the first). The fields a regular run leaves at their predictions
// (speeding, harsh, gaps and jumps, rollbacks, HDOP, the candidate fix)
// go in blocks.
func (c *coldIO) seg(s *seg, prevT uint32) {
	o, st, fx, p := &s.Odo, &s.Stretch, &s.Fix, &s.Steps
	c.flags(&o.Has, &s.Speed.All, &st.Has, &st.All, &p.Runs.Any, &p.Runs.AllJ, &s.HasCand)
	c.u64(&s.FirstSeq, 0)
	c.u64(&s.LastSeq, s.FirstSeq)
	c.u32(&s.N, uint32(s.LastSeq-s.FirstSeq)+1)
	c.u8(&s.Dev, 0)
	c.sample(&s.F1, &sample{T: prevT, Bits: sMoving})
	c.sample(&s.F2, &s.F1)
	period := s.F2.T - s.F1.T // a regular run: every sample this far apart
	c.block(func() {
		l1 := s.F2
		if s.N >= 4 {
			l1.T += period * (s.N - 3)
		}
		c.sample(&s.L1, &l1)
		l2 := s.L1
		l2.T += period
		c.sample(&s.L2, &l2)
	})
	c.i64(&o.First, 0)
	c.i64(&o.Last, o.First)
	c.i64(&o.M, o.Last-o.First)
	c.u32(&s.DrivingMs, s.L2.T-s.F1.T)
	var pf, pl uint32
	if st.Has {
		pf, pl = s.F1.T, s.L2.T
	}
	c.u32(&st.HFirst, pf)
	c.u32(&st.HLast, pl)
	triples := max(s.N, 2) - 2
	c.u32(&s.Triples, triples)
	c.u32(&s.ExactT, s.Triples)
	c.u32(&s.ExactV, s.Triples)
	c.u8(&fx.N, 0)
	if fx.N == 0 {
		var z fix
		c.block(func() {
			for _, f := range [...]*fix{&fx.First, &fx.Second, &fx.Last} {
				c.fix(f, &z, 0, 0, 0, false, 0)
			}
		})
	} else {
		c.fix(&fx.First, &fix{}, s.F1.T, uint32(s.F1.SpeedC), 0, false, o.First)
		c.fix(&fx.Second, &fx.First, s.F2.T, uint32(s.F2.SpeedC), fx.First.Drive, true, fx.First.OdoM)
		// Fix.Last from the steps so far, if the run kept its pace.
		last := fx.Second
		if d := fx.Second.T - fx.First.T; d > 0 && s.L2.T > fx.Second.T {
			k := int32((s.L2.T - fx.Second.T) / d)
			last.Lat += (fx.Second.Lat - fx.First.Lat) * k
			last.Lon += (fx.Second.Lon - fx.First.Lon) * k
		}
		c.fix(&fx.Last, &last, s.L2.T, uint32(s.L2.SpeedC), s.DrivingMs, false, o.Last)
	}
	c.i64(&p.PaidMM, 0)
	c.u32(&p.JudgedP, triples)
	c.u32(&p.ExactP, 0)
	c.block(func() { // the blocks below, all at their predictions in a regular run
		c.block(func() {
			c.u32(&s.NightMs, 0)
			c.u32(&st.TFirst, 0)
			c.u32(&st.TLast, 0)
			c.u32(&st.Mid, 0)
			c.u32(&o.Rollbacks, 0)
			c.u32(&s.HDOPRj, 0)
		})
		c.block(func() {
			c.u32(&s.Speed.Head, 0)
			c.u32(&s.Speed.Tail, 0)
			c.u32(&s.Speed.Mid, 0)
		})
		for i := range s.Harsh {
			h := &s.Harsh[i]
			c.block(func() {
				c.flags(&h.AllH, &h.HNon, &h.FStarted, &h.TailActive)
				c.u32(&h.HHold, 0)
				c.u32(&h.FHold, 0)
				c.u32(&h.TailHold, 0)
				c.u32(&h.Mid, 0)
			})
		}
		c.block(func() {
			c.i64(&p.GapMM, 0)
			c.i64(&p.GapUnpaidOdoM, 0)
			c.u32(&p.Jumps, 0)
			c.u32(&p.Gaps, 0)
			c.u32(&p.GapsPaid, 0)
			c.u32(&p.Runs.Head, 0)
			c.u32(&p.Runs.Tail, 0)
			c.u32(&p.Runs.Mid, 0)
		})
		c.block(func() {
			if s.HasCand {
				c.fix(&s.Cand, &fx.First, s.F1.T, uint32(s.F1.SpeedC), 0, false, o.First)
			} else {
				c.fix(&s.Cand, &fix{}, 0, 0, 0, false, 0)
			}
		})
	})
}

// day codes a Day but for Start and End; night predicts NightEnd (the
// night end the window's zone gives the day, the same at both ends).
func (c *coldIO) day(d *Day, night uint32) {
	c.u32(&d.NightEnd, night)
	c.u32(&d.late, 0)
	c.flags(&d.third)
	var sum [32]byte
	for i, v := range d.sum {
		binary.LittleEndian.PutUint64(sum[8*i:], v)
	}
	c.rawBytes(sum[:])
	for i := range d.sum {
		d.sum[i] = binary.LittleEndian.Uint64(sum[8*i:])
	}
	n := uint32(len(d.segs))
	c.u32(&n, 0)
	if c.dec {
		if n > MaxSegments || c.bad {
			c.bad = true
			return
		}
		if n > 0 {
			d.segs = make([]seg, n)
		}
	}
	var first, last uint32 // the day's first and last sample times
	events := d.late       // every event is a sample of a seg or late
	for i := range d.segs {
		c.seg(&d.segs[i], last)
		if i == 0 {
			first = d.segs[i].F1.T
		}
		last = d.segs[i].L2.T
		events += d.segs[i].N
	}
	c.u32(&d.events, events)
	for i := range d.devs {
		dev := func() {
			s := &d.devs[i]
			c.id(&s.ID)
			if s.ID == "" { // no such device: its span is empty
				first, last = 0, 0
			}
			c.u32(&s.First, first)
			c.u32(&s.Last, last)
		}
		if i == 0 {
			dev()
		} else {
			c.block(dev) // usually no second device
		}
	}
	if c.dec && d.devs[0].ID != "" {
		d.Device = d.devs[0].ID
		if o := d.devs[1]; o.ID != "" && (o.First < d.devs[0].First || o.First == d.devs[0].First && o.ID < d.devs[0].ID) {
			d.Device = o.ID
		}
	}
}

var errCold = errors.New("cold day: bad encoding")

// coldBufs is appendCold's scratch space: the stream and the raw tail.
type coldBufs struct{ stream, raw []byte }

// appendCold appends d's cold record to dst: the stream packed
// (packZeros), then the raw tail.
func appendCold(dst []byte, bufs *coldBufs, d *Day, night uint32) []byte {
	c := coldIO{b: bufs.stream[:0], raw: bufs.raw[:0]}
	c.day(d, night)
	bufs.stream, bufs.raw = c.b, c.raw
	dst = packZeros(dst, c.b)
	return append(dst, c.raw...)
}

// readCold decodes a cold record into a day of the window [start, end).
// buf is scratch space; it returns it (grown). rec is only read.
func readCold(rec []byte, buf []byte, start, end int64, night uint32) (*Day, []byte, error) {
	buf, raw, err := unpackZerosRest(buf[:0], unsafe.String(unsafe.SliceData(rec), len(rec)))
	if err != nil {
		return nil, buf, err
	}
	d := &Day{Start: start, End: end}
	c := coldIO{dec: true, b: buf, raw: rec[len(rec)-len(raw):]}
	c.day(d, night)
	if c.bad || len(c.b) != 0 || len(c.raw) != 0 {
		return nil, buf, errCold
	}
	return d, buf, nil
}
