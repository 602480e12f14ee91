package scoring

import (
	"bytes"
	"cmp"
	"encoding/binary"
)

// Vehicle and device ids in the open days' records (Windows' arena, the
// cold layout) are packed: an id made only of the 64 characters
// "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz" (a
// VIN, most device serials) takes 6 bits a character, so a 17-character
// VIN takes 13 bytes. The encoding is uvarint(len << 1 | packed), then
// either the characters' codes (their index in that alphabet), 6 bits
// each, most significant bit first, the last byte padded with zero bits
// (packed = 1), or the id's bytes (packed = 0, any other id). Every id
// has exactly one encoding, so two encodings are equal exactly when the
// ids are. The alphabet is in byte order, so two packed ids compare like
// the ids by their packed bytes, then their lengths (compareIDs).
const idAlphabet = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"

// idCode maps a byte to its code + 1 (0: not in the alphabet).
var idCode = func() (t [256]uint8) {
	for i := range len(idAlphabet) {
		t[idAlphabet[i]] = uint8(i + 1)
	}
	return t
}()

func packable(id string) bool {
	for i := range len(id) {
		if idCode[id[i]] == 0 {
			return false
		}
	}
	return true
}

func packedLen(n int) int { return (6*n + 7) / 8 }

// appendID appends id's encoding.
func appendID(dst []byte, id string) []byte {
	h := uint64(len(id)) << 1
	if packable(id) {
		h |= 1
	}
	return appendIDBody(binary.AppendUvarint(dst, h), id)
}

// appendIDBody appends the bytes of id's encoding after its header: the
// codes packed when the id is packable, else the id.
func appendIDBody(dst []byte, id string) []byte {
	if !packable(id) {
		return append(dst, id...)
	}
	var acc uint32
	bits := 0
	for i := range len(id) {
		acc = acc<<6 | uint32(idCode[id[i]]-1)
		bits += 6
		if bits >= 8 {
			bits -= 8
			dst = append(dst, byte(acc>>bits))
		}
	}
	if bits > 0 {
		dst = append(dst, byte(acc<<(8-bits)))
	}
	return dst
}

// splitID splits an encoding off the front of b: the id's length, whether
// it is packed, its bytes (packed or not) and the rest. ok is false when b
// does not start with a whole encoding.
func splitID(b []byte) (n int, packed bool, body, rest []byte, ok bool) {
	h, k := binary.Uvarint(b)
	if k <= 0 || h>>1 > 1<<20 {
		return 0, false, nil, nil, false
	}
	n, packed = int(h>>1), h&1 == 1
	size := n
	if packed {
		size = packedLen(n)
	}
	if len(b)-k < size {
		return 0, false, nil, nil, false
	}
	return n, packed, b[k : k+size], b[k+size:], true
}

// appendIDText appends the id of an encoding's body.
func appendIDText(dst []byte, n int, packed bool, body []byte) []byte {
	if !packed {
		return append(dst, body...)
	}
	var acc uint32
	bits, j := 0, 0
	for range n {
		for bits < 6 {
			acc = acc<<8 | uint32(body[j])
			j++
			bits += 8
		}
		bits -= 6
		dst = append(dst, idAlphabet[acc>>bits&63])
	}
	return dst
}

// idText returns the id an encoding (a whole one, from appendID) holds.
func idText(enc []byte) string {
	n, packed, body, _, _ := splitID(enc)
	if !packed {
		return string(body)
	}
	var buf [64]byte
	return string(appendIDText(buf[:0], n, packed, body))
}

// compareIDs compares the ids of two encodings as strings.
func compareIDs(a, b []byte) int {
	na, pa, ba, _, _ := splitID(a)
	nb, pb, bb, _, _ := splitID(b)
	if pa && pb {
		if c := bytes.Compare(ba, bb); c != 0 {
			return c
		}
		return cmp.Compare(na, nb)
	}
	var x, y [64]byte
	return bytes.Compare(appendIDText(x[:0], na, pa, ba), appendIDText(y[:0], nb, pb, bb))
}
