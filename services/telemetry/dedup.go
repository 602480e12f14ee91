package telemetry

import (
	"encoding/binary"
	"errors"
	"math"
	"time"
	"unsafe"
)

// De-duplication of re-uploaded events, with bounded state per vehicle.
//
// An event's identity is (device, seq, time): a box numbers its samples
// with an increasing seq, and a re-upload repeats the same numbers. A box
// that lost its counter (a reset) starts again at low seqs but at later
// times, so (seq, time) still tells the two apart. Per device, Dedup keeps
// the seqs seen as ranges [SeqLo..SeqHi] with the event times they span
// [TimeLo..TimeHi]: a box uploading in order is one range whatever its
// length; out-of-order batches open a few ranges that merge when the gaps
// are filled. (seq, time) is a duplicate when a range holds both. A small
// ring of recent event-id hashes also catches a box that re-sends an event
// under a new seq.
//
// Bounds, and the trade-off: a range whose newest time is more than Horizon
// behind the vehicle's newest event is dropped, and so is the oldest range
// when a device has more than MaxRanges. Dropping one raises the device's
// floor to the range's newest time: events at or below the floor can no
// longer be told new from repeated, so they are refused with
// CodeBeyondDedup (dead-lettered, so never silently lost nor duplicated).
// Memory per vehicle is O(devices x MaxRanges + RecentIDs): ~100 bytes for
// a box that uploads in order. A vehicle idle for longer than the
// validator's MaxAge can be forgotten (Evict): any event it could still
// duplicate is refused as too_old.
//
// The odometer check lives here too because it needs the same history:
// per vehicle, the reading of its newest event; a later event must not read
// less, an earlier one must not read more (0 = not reported, not checked).

// DedupConfig bounds the state kept per vehicle. Zero means the default.
type DedupConfig struct {
	Horizon    time.Duration // how far behind a vehicle's newest event a repeat is still recognised (default 48h)
	MaxRanges  int           // seq ranges kept per device (default 64)
	RecentIDs  int           // event-id hashes kept per device (default 16)
	MaxDevices int           // devices remembered per vehicle (default 4)
	// MaxGap is the longest time between consecutive seqs that still
	// extends a range (default 1h). Longer gaps (a box asleep while parked)
	// start a new range; the bound keeps a reset box whose new counter
	// catches up with the old one from joining the old epoch's range.
	MaxGap time.Duration
}

// Defaults returns c with every zero field set to its default.
func (c DedupConfig) Defaults() DedupConfig {
	if c.Horizon == 0 {
		c.Horizon = 48 * time.Hour
	}
	if c.MaxRanges == 0 {
		c.MaxRanges = 64
	}
	if c.RecentIDs == 0 {
		c.RecentIDs = 16
	}
	if c.MaxDevices == 0 {
		c.MaxDevices = 4
	}
	if c.MaxGap == 0 {
		c.MaxGap = time.Hour
	}
	return c
}

// Validate reports impossible bounds.
func (c DedupConfig) Validate() error {
	if c.Horizon < 0 || c.MaxRanges < 0 || c.RecentIDs < 0 || c.MaxDevices < 0 || c.MaxGap < 0 {
		return errors.New("dedup bounds must not be negative")
	}
	return nil
}

// odoTolerance absorbs rounding in odometer readings (km).
const odoTolerance = 0.001

// SeqRange is a run of consecutive seqs of one device, all seen, and the
// span of their event times.
type SeqRange struct {
	SeqLo, SeqHi   uint64
	TimeLo, TimeHi int64
}

// DeviceWindow is what Dedup remembers of one device of a vehicle.
type DeviceWindow struct {
	DeviceID string
	FloorMs  int64      // events at or before it are beyond the horizon
	Ranges   []SeqRange // sorted by SeqLo, then TimeLo
	IDs      []uint64   // ring of recent event-id hashes
	Next     int        // next ring slot
}

// VehicleWindow is what Dedup remembers of one vehicle.
type VehicleWindow struct {
	HighMs  int64   // newest event time seen
	OdoMs   int64   // time of the newest event with an odometer reading
	OdoKm   float64 // that reading
	Devices []DeviceWindow
}

// Verdict is what Dedup.Check says of an event.
type Verdict int

// Verdicts.
const (
	New       Verdict = iota // not seen: write it, then Add it
	Duplicate                // seen: drop it
)

// Dedup remembers, per vehicle, which events were written. Not safe for
// concurrent use: one per stage task.
type Dedup struct {
	cfg      DedupConfig
	vehicles map[string]*VehicleWindow
	// last is the window of vehicle lastID as the map holds it (nil: none
	// remembered): Check finds it, the Add that follows takes it without a
	// second lookup. Cleared by whatever removes or replaces a window.
	last   *VehicleWindow
	lastID string
	// near is a direct-mapped table of recently found windows, indexed by
	// the address of the vehicle id's bytes: the stages' decoder interns
	// the ids (telemetry.Interner), so a vehicle's events carry the same
	// string and a hit costs no hash of the id nor map probe. A string
	// with other bytes at the same address cannot exist while the entry
	// holds it (Go strings are immutable and the entry keeps its bytes
	// alive), so an equal address and length is an equal id. An entry
	// counts only when its gen is nearGen: Forget, Restore and Evict
	// start a new generation instead of clearing the table.
	near    [dedupNear]nearWindow
	nearGen uint32
}

// dedupNear is the number of slots of Dedup.near (a power of two).
const (
	dedupNearBits = 11
	dedupNear     = 1 << dedupNearBits
)

type nearWindow struct {
	id  string
	v   *VehicleWindow
	gen uint32
}

// nearSlot is the Dedup.near slot of a vehicle id: its address, hashed.
func nearSlot(id string) int {
	p := uint64(uintptr(unsafe.Pointer(unsafe.StringData(id))))
	return int((p * 0x9e3779b97f4a7c15) >> (64 - dedupNearBits))
}

// remember notes v as the window of vehicle in last and near.
func (d *Dedup) remember(vehicle string, v *VehicleWindow) {
	d.last, d.lastID = v, vehicle
	d.near[nearSlot(vehicle)] = nearWindow{id: vehicle, v: v, gen: d.nearGen}
}

// forgetFound drops what last and near remember (a window was removed or
// replaced).
func (d *Dedup) forgetFound() {
	d.last, d.lastID = nil, ""
	d.nearGen++
}

// NewDedup returns an empty Dedup.
func NewDedup(cfg DedupConfig) *Dedup {
	return &Dedup{cfg: cfg.Defaults(), vehicles: map[string]*VehicleWindow{}, nearGen: 1}
}

// Len is the number of vehicles remembered.
func (d *Dedup) Len() int { return len(d.vehicles) }

// Window returns the state of vehicle (nil if none); callers must not keep
// or change it.
func (d *Dedup) Window(vehicle string) *VehicleWindow { return d.vehicles[vehicle] }

// idHash is the 64-bit FNV-1a hash of id (hash/fnv's New64a, inlined):
// the ring of recent event ids, also in the changelog's snapshots.
func idHash(id string) uint64 {
	const offset64, prime64 = 14695981039346656037, 1099511628211
	h := uint64(offset64)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= prime64
	}
	return h
}

// window is the window of vehicle, nil if none.
func (d *Dedup) window(vehicle string) *VehicleWindow {
	if d.last != nil && d.lastID == vehicle {
		return d.last
	}
	if e := &d.near[nearSlot(vehicle)]; e.gen == d.nearGen && len(e.id) == len(vehicle) &&
		unsafe.StringData(e.id) == unsafe.StringData(vehicle) {
		d.last, d.lastID = e.v, vehicle
		return e.v
	}
	v := d.vehicles[vehicle]
	if v != nil {
		d.remember(vehicle, v)
	}
	return v
}

// Check tells whether ev was seen. It returns an *Error with
// CodeBeyondDedup when that cannot be known any more, or
// CodeOdometerDecreased when ev's odometer contradicts the vehicle's
// newest reading. It changes nothing.
func (d *Dedup) Check(ev *Event) (Verdict, error) {
	v := d.window(ev.VehicleID)
	if v == nil {
		return New, nil
	}
	if dw := v.device(ev.DeviceID); dw != nil {
		for i := range dw.Ranges {
			r := &dw.Ranges[i]
			if r.SeqLo <= ev.Seq && ev.Seq <= r.SeqHi && r.TimeLo <= ev.TimeMs && ev.TimeMs <= r.TimeHi {
				return Duplicate, nil
			}
		}
		if len(dw.IDs) > 0 {
			h := idHash(ev.EventID)
			for _, x := range dw.IDs {
				if x == h {
					return Duplicate, nil
				}
			}
		}
		if ev.TimeMs <= dw.FloorMs {
			return New, errorf(CodeBeyondDedup, "time_ms", "event at %d is at or before the device's dedup floor %d", ev.TimeMs, dw.FloorMs)
		}
	}
	if ev.OdometerKm > 0 && v.OdoKm > 0 {
		if ev.TimeMs >= v.OdoMs && ev.OdometerKm < v.OdoKm-odoTolerance {
			return New, errorf(CodeOdometerDecreased, "odometer_km", "%v km at %d, below %v km at %d", ev.OdometerKm, ev.TimeMs, v.OdoKm, v.OdoMs)
		}
		if ev.TimeMs < v.OdoMs && ev.OdometerKm > v.OdoKm+odoTolerance {
			return New, errorf(CodeOdometerDecreased, "odometer_km", "%v km at %d, above %v km at later %d", ev.OdometerKm, ev.TimeMs, v.OdoKm, v.OdoMs)
		}
	}
	return New, nil
}

func (v *VehicleWindow) device(id string) *DeviceWindow {
	for i := range v.Devices {
		if v.Devices[i].DeviceID == id {
			return &v.Devices[i]
		}
	}
	return nil
}

// Add records ev (which Check found New) as written.
func (d *Dedup) Add(ev *Event) {
	v := d.window(ev.VehicleID)
	if v == nil {
		v = &VehicleWindow{}
		d.vehicles[ev.VehicleID] = v
		d.remember(ev.VehicleID, v)
	}
	if ev.TimeMs > v.HighMs {
		v.HighMs = ev.TimeMs
	}
	if ev.OdometerKm > 0 && ev.TimeMs >= v.OdoMs {
		v.OdoMs, v.OdoKm = ev.TimeMs, ev.OdometerKm
	}
	dw := v.device(ev.DeviceID)
	if dw == nil {
		if len(v.Devices) >= d.cfg.MaxDevices {
			// Forget the device that was quiet longest; its late events
			// start a fresh window (documented limit: >MaxDevices boxes
			// swapped on one vehicle within the horizon).
			old := 0
			for i := range v.Devices {
				if v.Devices[i].high() < v.Devices[old].high() {
					old = i
				}
			}
			v.Devices = append(v.Devices[:old], v.Devices[old+1:]...)
		}
		v.Devices = append(v.Devices, DeviceWindow{DeviceID: ev.DeviceID})
		dw = &v.Devices[len(v.Devices)-1]
	}
	dw.add(ev.Seq, ev.TimeMs, d.cfg.MaxGap.Milliseconds())
	if d.cfg.RecentIDs > 0 {
		h := idHash(ev.EventID)
		if len(dw.IDs) < d.cfg.RecentIDs {
			dw.IDs = append(dw.IDs, h)
		} else {
			dw.IDs[dw.Next%len(dw.IDs)] = h
		}
		dw.Next = (dw.Next + 1) % d.cfg.RecentIDs
	}
	dw.prune(v.HighMs-d.cfg.Horizon.Milliseconds(), d.cfg.MaxRanges)
}

func (dw *DeviceWindow) high() int64 {
	h := dw.FloorMs
	for _, r := range dw.Ranges {
		h = max(h, r.TimeHi)
	}
	return h
}

// add merges (seq, t) into the ranges: it extends a range the event
// continues (seq one past its end at a time not before it and at most
// maxGap after it, or one before its start symmetrically) and joins two
// ranges the event bridges. A range must never cover the rectangle of
// another (that would be two epochs of a reset box mixed, and events of
// one taken for repeats of the other), so an extension or join that would
// overlap another range is not made: the event starts a range of its own.
func (dw *DeviceWindow) add(seq uint64, t int64, maxGap int64) {
	rs := dw.Ranges
	for i := range rs {
		r := rs[i]
		switch {
		case r.SeqHi != math.MaxUint64 && r.SeqHi+1 == seq && r.TimeHi <= t && t-r.TimeHi <= maxGap:
			r.SeqHi, r.TimeHi = seq, t
		case seq != math.MaxUint64 && r.SeqLo == seq+1 && r.TimeLo >= t && r.TimeLo-t <= maxGap:
			r.SeqLo, r.TimeLo = seq, t
		default:
			continue
		}
		if dw.overlaps(r, i, -1) {
			continue
		}
		rs[i] = r
		// Join with a neighbour the event bridges.
		for j := range rs {
			n := rs[j]
			if j == i {
				continue
			}
			var m SeqRange
			switch {
			case r.SeqHi == seq && n.SeqLo == seq+1 && n.TimeLo >= t && n.TimeLo-t <= maxGap:
				m = SeqRange{r.SeqLo, n.SeqHi, r.TimeLo, max(r.TimeHi, n.TimeHi)}
			case r.SeqLo == seq && seq > 0 && n.SeqHi == seq-1 && n.TimeHi <= t && t-n.TimeHi <= maxGap:
				m = SeqRange{n.SeqLo, r.SeqHi, min(r.TimeLo, n.TimeLo), r.TimeHi}
			default:
				continue
			}
			if dw.overlaps(m, i, j) {
				continue
			}
			rs[i] = m
			dw.Ranges = append(rs[:j], rs[j+1:]...)
			return
		}
		return
	}
	nr := SeqRange{seq, seq, t, t}
	i := len(rs)
	for j := range rs {
		if seq < rs[j].SeqLo || seq == rs[j].SeqLo && t < rs[j].TimeLo {
			i = j
			break
		}
	}
	rs = append(rs, SeqRange{})
	copy(rs[i+1:], rs[i:])
	rs[i] = nr
	dw.Ranges = rs
}

// overlaps reports whether r's rectangle meets that of any range but the
// ones at skip1 and skip2.
func (dw *DeviceWindow) overlaps(r SeqRange, skip1, skip2 int) bool {
	for k, o := range dw.Ranges {
		if k == skip1 || k == skip2 {
			continue
		}
		if r.SeqLo <= o.SeqHi && o.SeqLo <= r.SeqHi && r.TimeLo <= o.TimeHi && o.TimeLo <= r.TimeHi {
			return true
		}
	}
	return false
}

// prune drops ranges wholly older than cutoff and, beyond maxRanges, the
// oldest ones, raising the floor to what it dropped.
func (dw *DeviceWindow) prune(cutoff int64, maxRanges int) {
	rs := dw.Ranges[:0]
	for _, r := range dw.Ranges {
		if r.TimeHi < cutoff {
			dw.FloorMs = max(dw.FloorMs, r.TimeHi)
			continue
		}
		rs = append(rs, r)
	}
	for len(rs) > maxRanges {
		old := 0
		for i := range rs {
			if rs[i].TimeHi < rs[old].TimeHi {
				old = i
			}
		}
		dw.FloorMs = max(dw.FloorMs, rs[old].TimeHi)
		rs = append(rs[:old], rs[old+1:]...)
	}
	dw.Ranges = rs
}

// Evict forgets every vehicle whose newest event is before cutoffMs and
// returns their ids (for changelog tombstones). Safe only when the
// validator's MaxAge refuses events before cutoffMs.
func (d *Dedup) Evict(cutoffMs int64) []string {
	var out []string
	d.forgetFound()
	for id, v := range d.vehicles {
		if v.HighMs < cutoffMs {
			delete(d.vehicles, id)
			out = append(out, id)
		}
	}
	return out
}

// Forget removes vehicle's state (a changelog tombstone).
func (d *Dedup) Forget(vehicle string) {
	d.forgetFound()
	delete(d.vehicles, vehicle)
}

// Snapshot appends the binary encoding of vehicle's state to dst (the
// changelog value); nil, false when there is none.
func (d *Dedup) Snapshot(dst []byte, vehicle string) ([]byte, bool) {
	v := d.vehicles[vehicle]
	if v == nil {
		return nil, false
	}
	return v.AppendBinary(dst), true
}

// Restore sets vehicle's state from a changelog value.
func (d *Dedup) Restore(vehicle string, b []byte) error {
	var v VehicleWindow
	if err := v.UnmarshalBinary(b); err != nil {
		return err
	}
	d.forgetFound()
	d.vehicles[vehicle] = &v
	return nil
}

// windowVersion is the first byte of an encoded VehicleWindow.
const windowVersion = 1

// AppendBinary appends v's compact encoding: a version byte, then varints
// (zig-zag for times), the odometer as 8 bytes, and per device its id,
// floor, ranges (delta-coded) and id hashes.
func (v *VehicleWindow) AppendBinary(b []byte) []byte {
	b = append(b, windowVersion)
	b = binary.AppendVarint(b, v.HighMs)
	b = binary.AppendVarint(b, v.OdoMs)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v.OdoKm))
	b = binary.AppendUvarint(b, uint64(len(v.Devices)))
	for i := range v.Devices {
		dw := &v.Devices[i]
		b = binary.AppendUvarint(b, uint64(len(dw.DeviceID)))
		b = append(b, dw.DeviceID...)
		b = binary.AppendVarint(b, dw.FloorMs)
		b = binary.AppendUvarint(b, uint64(len(dw.Ranges)))
		for _, r := range dw.Ranges {
			b = binary.AppendUvarint(b, r.SeqLo)
			b = binary.AppendUvarint(b, r.SeqHi-r.SeqLo)
			b = binary.AppendVarint(b, r.TimeLo)
			b = binary.AppendVarint(b, r.TimeHi-r.TimeLo)
		}
		b = binary.AppendUvarint(b, uint64(len(dw.IDs)))
		for _, h := range dw.IDs {
			b = binary.LittleEndian.AppendUint64(b, h)
		}
		b = binary.AppendUvarint(b, uint64(dw.Next))
	}
	return b
}

// UnmarshalBinary decodes what AppendBinary wrote; any other input is an
// error, never a panic or a huge allocation.
func (v *VehicleWindow) UnmarshalBinary(b []byte) error {
	bad := errors.New("dedup window: corrupt encoding")
	if len(b) == 0 || b[0] != windowVersion {
		return errors.New("dedup window: unknown version")
	}
	i := 1
	uv := func() uint64 {
		if i < 0 {
			return 0
		}
		x, n := binary.Uvarint(b[i:])
		if n <= 0 {
			i = -1
			return 0
		}
		i += n
		return x
	}
	sv := func() int64 {
		if i < 0 {
			return 0
		}
		x, n := binary.Varint(b[i:])
		if n <= 0 {
			i = -1
			return 0
		}
		i += n
		return x
	}
	u64 := func() uint64 {
		if i < 0 || len(b)-i < 8 {
			i = -1
			return 0
		}
		i += 8
		return binary.LittleEndian.Uint64(b[i-8:])
	}
	left := func() int {
		if i < 0 {
			return 0
		}
		return len(b) - i
	}
	*v = VehicleWindow{HighMs: sv(), OdoMs: sv()}
	v.OdoKm = math.Float64frombits(u64())
	if i < 0 {
		return bad
	}
	nd := uv()
	if i < 0 || nd > uint64(left()) {
		return bad
	}
	v.Devices = make([]DeviceWindow, nd)
	for k := range v.Devices {
		dw := &v.Devices[k]
		if i < 0 {
			return bad
		}
		n := uv()
		if i < 0 || n > uint64(left()) {
			return bad
		}
		dw.DeviceID = string(b[i : i+int(n)])
		i += int(n)
		dw.FloorMs = sv()
		nr := uv()
		if i < 0 || nr > uint64(left()/4) {
			return bad
		}
		dw.Ranges = make([]SeqRange, nr)
		for j := range dw.Ranges {
			r := &dw.Ranges[j]
			r.SeqLo = uv()
			r.SeqHi = r.SeqLo + uv()
			r.TimeLo = sv()
			r.TimeHi = r.TimeLo + sv()
		}
		if i < 0 {
			return bad
		}
		ni := uv()
		if i < 0 || ni > uint64(left()/8) {
			return bad
		}
		dw.IDs = make([]uint64, ni)
		for j := range dw.IDs {
			dw.IDs[j] = u64()
		}
		dw.Next = int(uv() % uint64(max(1, len(dw.IDs)+1)))
		if i < 0 {
			return bad
		}
	}
	if i != len(b) {
		return bad
	}
	return nil
}
