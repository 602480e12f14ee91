package scoring

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"math/bits"
	"slices"

	"github.com/minecart/minecart/services/telemetry"
)

// Day is the running state of one vehicle's calendar day: a few segment
// summaries (seg), never a list of events. Its result depends only on the
// set of events it was given, not on their arrival order, as long as no
// event falls inside a run already summarised (see Add and
// docs/scoring.md, "Order does not matter"). Times inside are milliseconds
// after Start.
type Day struct {
	Start    int64  // window start, UTC Unix ms (local 00:00)
	End      int64  // window end, exclusive (local 00:00 of the next day)
	Device   string // the device of the day's earliest event
	NightEnd uint32 // ms after Start where night driving ends

	events, late uint32
	third        bool       // a third device reported the vehicle
	devs         [2]devSpan // the first two devices seen and their event-time spans
	sum          [4]uint64  // events_hash accumulator: sum of SHA-256(canonical(e)) mod 2^256, limb 0 least significant
	segs         []seg      // sorted by first sample time, disjoint
}

type devSpan struct {
	ID          string
	First, Last uint32
}

// MaxSegments bounds the runs a Day keeps: beyond it the two neighbours
// with the smallest time gap between them are joined.
const MaxSegments = 8

// devOther marks a seg that mixes devices or belongs to a third device: it
// never joins a neighbour by sequence number.
const devOther = 255

// hashSeed starts every day's events_hash.
var hashSeed = []byte("minecart.scoring.events.v2")

// NewDay starts an empty day for the window [start, end) whose night driving
// ends nightEnd ms after start.
func NewDay(start, end int64, nightEnd uint32) Day {
	return Day{Start: start, End: end, NightEnd: nightEnd}
}

// Add folds one event of this day into the summary and returns buf, a
// scratch buffer the caller passes back next time. ev.TimeMs must be in
// [Start, End) (the window code guarantees it). Every event is counted and
// hashed; an event whose time falls inside a run already summarised (at or
// between the first and last sample of a seg: a duplicate time, a
// re-delivery, a clock gone backwards) is "late": it moves no distance, time
// or counter.
func (d *Day) Add(r *Rules, ev *telemetry.Event, buf []byte) []byte {
	return d.AddRef(r, ev, nil, buf)
}

// OdoRef is the odometer reading that ingest found an event contradicting
// (docs/ingest.md, "Odometer marks"): the vehicle's newest reading before
// the event arrived, at TimeMs (UTC Unix ms), Km. Ingest writes it in the
// clean record's header odometer_decreased.
type OdoRef struct {
	TimeMs int64
	Km     float64
}

// crossDay reports whether ref, ingest's reference reading for ev, proves
// a rollback this day cannot see by itself: ref lies outside the day's
// window and, taking the two readings in event-time order, the later one
// is more than OdoRollbackKm (in whole metres) below the earlier one. A
// reference inside the window is ignored: the day has that reading, and
// its own event-time check (join) judges it.
func (d *Day) crossDay(r *Rules, ev *telemetry.Event, ref *OdoRef) bool {
	if ref == nil || ev.OdometerKm <= 0 || ref.Km <= 0 || (ref.TimeMs >= d.Start && ref.TimeMs < d.End) {
		return false
	}
	e, f := int64(math.Round(ev.OdometerKm*1000)), int64(math.Round(ref.Km*1000))
	if ref.TimeMs < d.Start { // ref earlier: ev must not read less
		return f-e > rollbackM(r)
	}
	return e-f > rollbackM(r) // ref later: ev must not read more
}

// AddRef is Add for an event that ingest marked with the odometer reading
// it contradicts (nil: not marked). A reference outside the day's window
// that proves a rollback counts one odometer rollback in the event's run
// (a late event's: the run that covers it), so the day is flagged
// odometer_rollback even when the reading before the rollback is in
// another day. The event is otherwise added like any other: its driving
// and distance stay in the record.
func (d *Day) AddRef(r *Rules, ev *telemetry.Event, ref *OdoRef, buf []byte) []byte {
	buf = AppendCanonical(buf[:0], ev)
	d.addHash(sha256.Sum256(buf))
	d.events++
	t := uint32(ev.TimeMs - d.Start)
	dev := d.device(ev.DeviceID, t)

	// i: the first seg starting after t.
	i := len(d.segs)
	for i > 0 && d.segs[i-1].F1.T > t {
		i--
	}
	cross := d.crossDay(r, ev, ref)
	if i > 0 && d.segs[i-1].L2.T >= t {
		d.late++
		if cross {
			d.segs[i-1].Odo.Rollbacks++
		}
		return buf
	}
	s := newSeg(r, ev, t, dev, d.NightEnd)
	if cross {
		s.Odo.Rollbacks++
	}
	if i > 0 && contiguous(&d.segs[i-1], &s) {
		d.segs[i-1] = join(r, &d.segs[i-1], &s, d.NightEnd)
		i--
	} else {
		d.segs = slices.Insert(d.segs, i, s)
	}
	if i+1 < len(d.segs) && contiguous(&d.segs[i], &d.segs[i+1]) {
		d.joinAt(r, i)
	}
	if len(d.segs) > MaxSegments {
		best := 0
		for j := 1; j+1 < len(d.segs); j++ {
			if d.segs[j+1].F1.T-d.segs[j].L2.T < d.segs[best+1].F1.T-d.segs[best].L2.T {
				best = j
			}
		}
		d.joinAt(r, best)
	}
	return buf
}

// contiguous: b continues a by the device's sequence number.
func contiguous(a, b *seg) bool {
	return a.Dev != devOther && a.Dev == b.Dev && b.FirstSeq == a.LastSeq+1
}

func (d *Day) joinAt(r *Rules, i int) {
	d.segs[i] = join(r, &d.segs[i], &d.segs[i+1], d.NightEnd)
	d.segs = slices.Delete(d.segs, i+1, i+2)
}

// device records the device's event-time span and returns its index.
func (d *Day) device(id string, t uint32) uint8 {
	for i := range d.devs {
		s := &d.devs[i]
		if s.ID == "" {
			*s = devSpan{ID: id, First: t, Last: t}
		} else if s.ID != id {
			continue
		}
		s.First, s.Last = min(s.First, t), max(s.Last, t)
		d.Device = d.devs[0].ID
		if o := d.devs[1]; o.ID != "" && (o.First < d.devs[0].First || o.First == d.devs[0].First && o.ID < d.devs[0].ID) {
			d.Device = o.ID
		}
		return uint8(i)
	}
	d.third = true
	return devOther
}

// multiDevice: a third device, or two devices whose event-time spans
// overlap (interleaved). A replacement (one ends, the other begins) is not.
func (d *Day) multiDevice() bool {
	a, b := d.devs[0], d.devs[1]
	return d.third || b.ID != "" && a.First <= b.Last && b.First <= a.Last
}

func (d *Day) addHash(h [32]byte) {
	var c uint64
	for i := range 4 {
		v := binary.BigEndian.Uint64(h[24-8*i:])
		d.sum[i], c = bits.Add64(d.sum[i], v, c)
	}
}

// EventsHash is SHA-256(seed || sum), sum the 32-byte big-endian sum of the
// events' SHA-256(canonical) mod 2^256: independent of arrival order.
func (d *Day) EventsHash() [32]byte {
	b := make([]byte, 0, len(hashSeed)+32)
	b = append(b, hashSeed...)
	for i := 3; i >= 0; i-- {
		b = binary.BigEndian.AppendUint64(b, d.sum[i])
	}
	return sha256.Sum256(b)
}

// total joins the day's segs in time order.
func (d *Day) total(r *Rules) seg {
	if len(d.segs) == 0 {
		return seg{}
	}
	t := d.segs[0]
	for i := 1; i < len(d.segs); i++ {
		t = join(r, &t, &d.segs[i], d.NightEnd)
	}
	if t.Fix.N >= 2 { // the pending first step goes first
		var first steps
		first.step(r, &t.Fix.First, &t.Fix.Second)
		t.Steps = first.add(r, &t.Steps)
	}
	return t
}

func e7(deg float64) int32   { return int32(math.Round(deg * 1e7)) }
func fromE7(v int32) float64 { return float64(v) / 1e7 }

// stepM is the distance in metres between two E7 positions: an
// equirectangular projection for steps (one cosine instead of haversine's
// four transcendental calls; the difference from HaversineM is below 1e-6
// relative under 1 km), HaversineM beyond.
func stepM(lat1, lon1, lat2, lon2 int32) float64 {
	const rad = math.Pi / 180 / 1e7
	dLat := float64(lat2-lat1) * rad
	dLon := float64(lon2-lon1) * rad
	if math.Abs(dLat) > 1e-4 || math.Abs(dLon) > 1e-4 || math.Abs(float64(lat1)) > 80e7 || absLonWrap(lon1, lon2) {
		return HaversineM(fromE7(lat1), fromE7(lon1), fromE7(lat2), fromE7(lon2))
	}
	x := dLon * math.Cos(float64(lat1+lat2)*(rad/2))
	return EarthRadiusM * math.Sqrt(x*x+dLat*dLat)
}

// absLonWrap reports a step across the antimeridian.
func absLonWrap(lon1, lon2 int32) bool {
	return (lon1 > 0) != (lon2 > 0) && max(lon1, lon2)-min(lon1, lon2) > 180e7
}

// EarthRadiusM is the mean Earth radius used by HaversineM.
const EarthRadiusM = 6371008.8

// HaversineM is the great-circle distance in metres between two WGS84 points.
func HaversineM(lat1, lon1, lat2, lon2 float64) float64 {
	const rad = math.Pi / 180
	dLat := (lat2 - lat1) * rad
	dLon := (lon2 - lon1) * rad
	s1, s2 := math.Sin(dLat/2), math.Sin(dLon/2)
	a := s1*s1 + math.Cos(lat1*rad)*math.Cos(lat2*rad)*s2*s2
	return 2 * EarthRadiusM * math.Asin(math.Sqrt(min(a, 1)))
}

// AppendCanonical appends the canonical bytes of ev that events_hash chains
// over: every field the score reads, in a fixed order, strings as a uvarint
// length and their bytes, numbers as big-endian IEEE-754 / int64, EngineOn
// as one byte. docs/scoring.md spells the layout out for re-implementers.
func AppendCanonical(b []byte, ev *telemetry.Event) []byte {
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	str(ev.EventID)
	str(ev.DeviceID)
	str(ev.VehicleID)
	b = binary.BigEndian.AppendUint64(b, ev.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(ev.TimeMs))
	str(ev.TZ)
	for _, f := range [...]float64{ev.Lat, ev.Lon, ev.HDOP, ev.SpeedKmh, ev.HeadingDeg,
		ev.AccelLonMS2, ev.AccelLatMS2, ev.SpeedLimitKmh, ev.OdometerKm} {
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(f))
	}
	if ev.EngineOn {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	return b
}
