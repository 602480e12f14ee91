package scoring

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
)

// Cold open days (Windows' slots between a Flush and their next event)
// are kept as their Day.AppendBinary bytes with the zero bytes elided: a
// day's encoding is mostly small fixed-width integers and empty fields
// (463 bytes, 285 of them zero, for a day of one run).

// packZeros appends src packed: its length (uvarint), then for every group
// of 8 bytes (the last may be shorter) one mask byte, bit i set when byte
// i of the group is not zero, followed by the group's non-zero bytes.
func packZeros(dst, src []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(src)))
	n := len(dst)
	dst = slices.Grow(dst, len(src)+(len(src)+7)/8)[:n+len(src)+(len(src)+7)/8]
	out := dst[n:]
	k := 0
	for i := 0; i < len(src); i += 8 {
		g := src[i:min(i+8, len(src))]
		m := k
		k++
		if len(g) == 8 && binary.LittleEndian.Uint64(g) == 0 {
			out[m] = 0
			continue
		}
		var mask byte
		for j, c := range g {
			if c != 0 {
				mask |= 1 << j
				out[k] = c
				k++
			}
		}
		out[m] = mask
	}
	return dst[:n+k]
}

// unpackZeros appends what packZeros packed to dst.
func unpackZeros(dst []byte, p string) ([]byte, error) {
	dst, rest, err := unpackZerosRest(dst, p)
	if err == nil && len(rest) != 0 {
		return nil, fmt.Errorf("packed day: trailing bytes")
	}
	return dst, err
}

// unpackZerosRest is unpackZeros for a packing followed by other bytes,
// which it returns.
func unpackZerosRest(dst []byte, p string) ([]byte, string, error) {
	n, k := uvarintString(p)
	if k <= 0 || n > 1<<20 {
		return nil, "", fmt.Errorf("packed day: bad length")
	}
	p = p[k:]
	off := len(dst)
	dst = slices.Grow(dst, int(n))[:off+int(n)]
	out := dst[off:]
	clear(out)
	for i := 0; i < len(out); i += 8 {
		if len(p) == 0 {
			return nil, "", fmt.Errorf("packed day: truncated")
		}
		m := p[0]
		p = p[1:]
		if g := len(out) - i; g < 8 && m>>g != 0 {
			return nil, "", fmt.Errorf("packed day: bad mask")
		}
		for m != 0 {
			j := bits.TrailingZeros8(m)
			m &= m - 1
			if len(p) == 0 {
				return nil, "", fmt.Errorf("packed day: truncated")
			}
			out[i+j] = p[0]
			p = p[1:]
		}
	}
	return dst, p, nil
}

func uvarintString(s string) (uint64, int) {
	var x uint64
	for i := 0; i < len(s) && i < binary.MaxVarintLen64; i++ {
		c := s[i]
		if c < 0x80 {
			return x | uint64(c)<<(7*i), i + 1
		}
		x |= uint64(c&0x7f) << (7 * i)
	}
	return 0, 0
}

// night is the night end the slot's zone gives its day: the prediction
// of Day.NightEnd in the cold layout (any value round-trips).
func (w *Windows) night(s *slot) uint32 { return w.info(s).night }

// cool packs a hot slot's day into a record of the arena (the vehicle
// id's encoding, appendID, then the cold layout packed by packZeros) and
// drops the decoded struct.
func (w *Windows) cool(i int32) {
	s := w.slot(i)
	h := &w.hot[s.ref]
	w.rec = append(w.rec[:0], h.key...)
	w.rec = appendCold(w.rec, &w.cbuf, h.day, w.night(s))
	w.unhot(s)
	s.ref = w.arena.put(w.rec)
}

// unhot takes a hot slot's day out of Windows.hot; the caller sets the
// slot's ref (a new record) or drops the slot.
func (w *Windows) unhot(s *slot) {
	k, last := s.ref, len(w.hot)-1
	if int(k) != last {
		w.hot[k] = w.hot[last]
		w.slot(w.hot[k].slot).ref = k
	}
	w.hot[last] = hotDay{}
	w.hot = w.hot[:last]
	s.day &^= slotHot
	s.ref = noRef
}

// thaw returns a slot's day, decoding it if it is cold (its record is then
// freed: the vehicle id moves to Windows.hot with the day). Packing is
// exact, so a failure is a bug (the bytes were made by cool in this
// process).
func (w *Windows) thaw(i int32) *Day {
	s := w.slot(i)
	if s.flags()&slotHot != 0 {
		return w.hot[s.ref].day
	}
	info := w.info(s)
	key, cold := splitRecord(w.arena.get(s.ref))
	d, buf, err := readCold(cold, w.pack, info.start, info.end, info.night)
	w.pack = buf
	if err == nil {
		h := hotDay{slot: i, name: idText(key), key: bytes.Clone(key), day: d}
		w.arena.free(s.ref)
		s.ref = uint32(len(w.hot))
		s.day |= slotHot
		w.hot = append(w.hot, h)
		return d
	}
	panic(fmt.Sprintf("scoring: cold day of %s does not decode: %v", w.vehicle(s), err))
}

// pack packs a day's state for keeping (packZeros).
func (c *ClosedDays) pack(state []byte) string {
	c.pbuf = packZeros(c.pbuf[:0], state)
	return string(c.pbuf)
}

// unpack returns a kept day's state (Day.AppendBinary), valid until the
// next unpack.
func (c *ClosedDays) unpack(d *closedDay) []byte {
	var err error
	if c.ubuf, err = unpackZeros(c.ubuf[:0], d.state); err != nil {
		panic(fmt.Sprintf("scoring: kept day state does not unpack: %v", err)) // packed by pack in this process
	}
	return c.ubuf
}
