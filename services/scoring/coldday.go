package scoring

import (
	"encoding/binary"
	"fmt"
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
	for i := 0; i < len(src); i += 8 {
		g := src[i:min(i+8, len(src))]
		m := len(dst)
		dst = append(dst, 0)
		for j, c := range g {
			if c != 0 {
				dst[m] |= 1 << j
				dst = append(dst, c)
			}
		}
	}
	return dst
}

// unpackZeros appends what packZeros packed to dst.
func unpackZeros(dst []byte, p string) ([]byte, error) {
	n, k := uvarintString(p)
	if k <= 0 || n > 1<<20 {
		return nil, fmt.Errorf("packed day: bad length")
	}
	p = p[k:]
	for left := int(n); left > 0; {
		if len(p) == 0 {
			return nil, fmt.Errorf("packed day: truncated")
		}
		m := p[0]
		p = p[1:]
		for j := range min(8, left) {
			if m&(1<<j) == 0 {
				dst = append(dst, 0)
				continue
			}
			if len(p) == 0 {
				return nil, fmt.Errorf("packed day: truncated")
			}
			dst = append(dst, p[0])
			p = p[1:]
		}
		left -= min(8, left)
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("packed day: trailing bytes")
	}
	return dst, nil
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

// cool packs a hot slot's day (enc: its Day.AppendBinary) and drops the
// decoded struct.
func (w *Windows) cool(s *slot, enc []byte) {
	w.pack = packZeros(w.pack[:0], enc)
	s.cold = string(w.pack)
	s.day = nil
}

// thaw decodes a cold slot's day. Packing is exact, so a failure is a bug
// (the bytes were made by Day.AppendBinary in this process, or checked by
// Restore).
func (w *Windows) thaw(s *slot) {
	if s.day != nil {
		return
	}
	var err error
	if w.pack, err = unpackZeros(w.pack[:0], s.cold); err == nil {
		d := new(Day)
		if _, err = d.UnmarshalBinary(w.pack); err == nil {
			s.day, s.cold = d, ""
			return
		}
	}
	panic(fmt.Sprintf("scoring: cold day of %s does not decode: %v", s.vehicle, err))
}
