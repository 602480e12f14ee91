package replay

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrRecord: a fingerprint record that does not decode.
var ErrRecord = errors.New("replay: bad fingerprint record")

// recordVersion is the first byte of an encoded Fingerprint (the layout;
// the fingerprint's own parameters are Fingerprint.Version).
const recordVersion = 1

// maxID bounds the vehicle id and date lengths in a record.
const maxID = 64

// AppendBinary appends fp's record (the compacted topic's value):
//
//	byte     record version (1)
//	byte     fingerprint version (Config.Version)
//	uvarint  len(vehicle), bytes
//	uvarint  len(date), bytes
//	uvarint  trip
//	varint   start ms (zig-zag)
//	uvarint  end - start, ms
//	uvarint  N (distinct shingles)
//	64 x 2   signature, little-endian uint16 each
//
// 171 bytes for a 17-character VIN and a trip of 43 min.
func AppendBinary(b []byte, fp *Fingerprint) []byte {
	b = append(b, recordVersion, fp.Version)
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
	return b
}

// Decode reads a record written by AppendBinary. Anything else (another
// record version, a truncated or over-long record, ids over 64 bytes, a
// trip over 65535, an end before the start) is ErrRecord.
func Decode(b []byte) (Fingerprint, error) {
	var fp Fingerprint
	bad := func(what string) (Fingerprint, error) { return Fingerprint{}, fmt.Errorf("%w: %s", ErrRecord, what) }
	if len(b) < 2 || b[0] != recordVersion {
		return bad("version")
	}
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
	if len(b) != 2*K {
		return bad("signature length")
	}
	for i := range fp.Sig {
		fp.Sig[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return fp, nil
}
