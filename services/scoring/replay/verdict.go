package replay

import (
	"encoding/binary"
	"fmt"
)

// Verdict is the global replay check's finding: trip Trip of Vehicle's day
// Date (the copy, as Judge decides) repeats trip OfTrip of
// OfVehicle's day OfDate, holding ContainPermille / 1000 of its shingles
// (Similarity's containment, floored to the per-mille).
type Verdict struct {
	Vehicle, Date     string
	Trip              uint16
	OfVehicle, OfDate string
	OfTrip            uint16
	ContainPermille   uint16
}

// ID is the verdict's identity "<vehicle>/<date>/<trip>|<of vehicle>/<of date>/<of trip>":
// the same pair always gives the same id.
func (v *Verdict) ID() string {
	return fmt.Sprintf("%s/%s/%d|%s/%s/%d", v.Vehicle, v.Date, v.Trip, v.OfVehicle, v.OfDate, v.OfTrip)
}

// Reason is the text the replayed_trace flag carries for the verdict.
func (v *Verdict) Reason() string {
	return fmt.Sprintf("trip %d repeats %s/%s trip %d (%d%% of its shingles; global check)",
		v.Trip, v.OfVehicle, v.OfDate, v.OfTrip, v.ContainPermille/10)
}

// verdictVersion is the first byte of an encoded Verdict.
const verdictVersion = 1

// AppendVerdict appends v's record (the verdicts topic's value; the key is
// v.Vehicle):
//
//	byte     record version (1)
//	uvarint  len(vehicle), bytes
//	uvarint  len(date), bytes
//	uvarint  trip
//	uvarint  len(of vehicle), bytes
//	uvarint  len(of date), bytes
//	uvarint  of trip
//	uvarint  containment, per mille (0..1000)
func AppendVerdict(b []byte, v *Verdict) []byte {
	b = append(b, verdictVersion)
	for _, p := range [2]struct {
		veh, date string
		trip      uint16
	}{{v.Vehicle, v.Date, v.Trip}, {v.OfVehicle, v.OfDate, v.OfTrip}} {
		b = binary.AppendUvarint(b, uint64(len(p.veh)))
		b = append(b, p.veh...)
		b = binary.AppendUvarint(b, uint64(len(p.date)))
		b = append(b, p.date...)
		b = binary.AppendUvarint(b, uint64(p.trip))
	}
	return binary.AppendUvarint(b, uint64(v.ContainPermille))
}

// DecodeVerdict reads a record written by AppendVerdict. Anything else
// (another version, truncated or trailing bytes, empty or over-long ids,
// a trip over 65535, a containment over 1000) is ErrRecord.
func DecodeVerdict(b []byte) (Verdict, error) {
	var v Verdict
	bad := func(what string) (Verdict, error) { return Verdict{}, fmt.Errorf("%w: verdict %s", ErrRecord, what) }
	if len(b) < 1 || b[0] != verdictVersion {
		return bad("version")
	}
	b = b[1:]
	str := func() (string, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n == 0 || n > maxID || uint64(len(b)-k) < n {
			return "", false
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s, true
	}
	uv := func(max uint64) (uint64, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > max {
			return 0, false
		}
		b = b[k:]
		return n, true
	}
	var ok bool
	var t uint64
	if v.Vehicle, ok = str(); !ok {
		return bad("vehicle")
	}
	if v.Date, ok = str(); !ok {
		return bad("date")
	}
	if t, ok = uv(0xFFFF); !ok {
		return bad("trip")
	}
	v.Trip = uint16(t)
	if v.OfVehicle, ok = str(); !ok {
		return bad("of vehicle")
	}
	if v.OfDate, ok = str(); !ok {
		return bad("of date")
	}
	if t, ok = uv(0xFFFF); !ok {
		return bad("of trip")
	}
	v.OfTrip = uint16(t)
	if t, ok = uv(1000); !ok {
		return bad("containment")
	}
	v.ContainPermille = uint16(t)
	if len(b) != 0 {
		return bad("trailing bytes")
	}
	return v, nil
}
