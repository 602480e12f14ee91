package scoring

import (
	"crypto/sha256"
	"encoding/binary"
	"math"

	"github.com/minecart/minecart/services/telemetry"
)

// Day is the running state of one vehicle's calendar day: a fixed-size
// summary updated once per event, never a list of events, so that millions
// of open days fit in memory and in the changelog. It depends only on the
// sequence of events it was given (see Add), so replaying the same events
// gives the same Day bit for bit. Times inside are milliseconds after Start.
type Day struct {
	Start  int64  // window start, UTC Unix ms (local 00:00)
	End    int64  // window end, exclusive (local 00:00 of the next day)
	Device string // first device seen this day

	gpsM           float64
	odoLast, odoKm float64
	hash           [32]byte

	NightEnd uint32 // ms after Start where night driving ends
	bits     uint32 // see bit* constants

	last      uint32 // time of the latest in-order event
	lastSpeed int32  // its speed, centi-km/h
	prevSpeed int32  // the one before, centi-km/h

	fixT, fixLat, fixLon    int32  // distance anchor: time (ms after Start; int32 fits a 25 h day), E7 degrees
	candT, candLat, candLon int32  // candidate re-anchor after rejected jumps
	fixDrive                uint32 // drivingMs when the anchor was set

	events, late     uint32
	drivingMs        uint32
	nightMs          uint32
	speedingMs       uint32
	speedRunMs       uint32
	stretchStart     uint32
	lastMoving       uint32
	hdopRejected     uint32
	lastDt           uint32        // previous in-order interval, ms
	pairs            uint32        // moving sample pairs judged for regularity
	exactT, exactV   uint32        // of them: interval repeated to the ms; speed second difference ~0
	exactP           uint32        // of them: GPS step = speed x time
	harsh            [3]harshState // brake, accel, corner
	fatigue          uint16
	jumps, rollbacks uint16
	candN            uint8
}

type harshState struct {
	durMs uint16 // time held above the release level in this episode (saturates)
	count uint16
}

const (
	bitHasLast = 1 << iota
	bitHasPrev2
	bitHasFix
	bitHasOdo
	bitMultiDevice
	bitMoving
	bitSpeeding
	bitSpeedCounted
	bitInStretch
	bitHarshActive0 // + detector index
	bitHarshActive1
	bitHarshActive2
	bitHarshCounted0
	bitHarshCounted1
	bitHarshCounted2
)

const (
	harshBrake = iota
	harshAccel
	harshCorner
)

// hashSeed starts every day's events_hash chain.
var hashSeed = sha256.Sum256([]byte("minecart.scoring.events.v1"))

// NewDay starts an empty day for the window [start, end) whose night driving
// ends nightEnd ms after start.
func NewDay(start, end int64, nightEnd uint32) Day {
	return Day{Start: start, End: end, NightEnd: nightEnd, hash: hashSeed}
}

func (d *Day) has(b uint32) bool { return d.bits&b != 0 }
func (d *Day) set(b uint32, on bool) {
	if on {
		d.bits |= b
	} else {
		d.bits &^= b
	}
}

// Add folds one event of this day into the summary and returns buf, a
// scratch buffer the caller passes back next time (no allocation per
// event). ev.TimeMs must be in [Start, End) (the window code guarantees it). Every event is counted and
// hashed; an event older than the latest one seen is "late": it moves no
// distance, time or counter (Traccar's rule for outdated fixes).
func (d *Day) Add(r *Rules, ev *telemetry.Event, buf []byte) []byte {
	buf = append(buf[:0], d.hash[:]...)
	buf = AppendCanonical(buf, ev)
	d.hash = sha256.Sum256(buf)

	d.events++
	if d.Device == "" {
		d.Device = ev.DeviceID
	} else if ev.DeviceID != d.Device {
		d.set(bitMultiDevice, true)
	}
	t := uint32(ev.TimeMs - d.Start)
	if d.has(bitHasLast) && t < d.last {
		d.late++
		return buf
	}
	speed := ev.SpeedKmh
	speedC := int32(math.Round(speed * 100))
	maxGap := uint32(r.MaxGap.Milliseconds())

	// 1. The interval [last, t) belongs to the previous sample.
	var dt uint32
	if d.has(bitHasLast) {
		dt = t - d.last
		inGap := dt <= maxGap
		if d.has(bitMoving) && inGap {
			d.drivingMs += dt
			if d.last < d.NightEnd {
				d.nightMs += min(t, d.NightEnd) - d.last
			}
		}
		if d.has(bitSpeeding) {
			if inGap {
				d.speedRunMs += dt
				if d.has(bitSpeedCounted) {
					d.speedingMs += dt
				} else if int64(d.speedRunMs) >= r.SpeedMinDuration.Milliseconds() {
					d.speedingMs += d.speedRunMs
					d.set(bitSpeedCounted, true)
				}
			} else {
				d.set(bitSpeeding|bitSpeedCounted, false)
			}
		}
		hold := min(dt, uint32(r.SampleHold.Milliseconds()))
		for i := range d.harsh {
			if d.bits&(bitHarshActive0<<i) == 0 {
				continue
			}
			hs := &d.harsh[i]
			hs.durMs = uint16(min(uint32(hs.durMs)+hold, math.MaxUint16))
			if d.bits&(bitHarshCounted0<<i) == 0 && int64(hs.durMs) >= r.HarshMinDuration.Milliseconds() {
				hs.count++
				d.bits |= bitHarshCounted0 << i
			}
		}
	}
	// Regularity: is this sample pair noiseless (see Rules.RegularMinShare)?
	judge := d.has(bitHasPrev2) && dt > 0 && dt <= maxGap && speed >= r.MovingKmh

	// 2. The current sample's state.
	moving := speed >= r.MovingKmh
	if moving {
		if !d.has(bitInStretch) || t-d.lastMoving >= uint32(r.FatigueBreak.Milliseconds()) {
			d.stretchStart = t
			d.set(bitInStretch, true)
		}
		d.lastMoving = t
		if int64(t-d.stretchStart) >= r.FatigueAfter.Milliseconds() {
			d.fatigue++
			d.stretchStart = t
		}
	}
	d.set(bitMoving, moving)

	limit := r.DefaultLimitKmh
	if ev.SpeedLimitKmh > 0 {
		limit = ev.SpeedLimitKmh
	}
	over := speed > limit*(1+r.SpeedTolerancePct/100)+r.SpeedToleranceKmh
	if !over {
		d.set(bitSpeeding|bitSpeedCounted, false)
	} else if !d.has(bitSpeeding) {
		d.set(bitSpeeding, true)
		d.speedRunMs = 0
	}

	var v [3]float64
	v[harshBrake] = -ev.AccelLonMS2 / G
	v[harshAccel] = ev.AccelLonMS2 / G
	v[harshCorner] = math.Abs(ev.AccelLatMS2) / G
	thr := [3]float64{r.HarshBrakeG, r.HarshAccelG, r.HarshCornerG}
	gate := [3]float64{r.HarshMinKmh, r.HarshMinKmh, r.CornerMinKmh}
	for i := range d.harsh {
		gated := speed < gate[i]
		active := d.bits&(bitHarshActive0<<i) != 0
		if active && (gated || v[i] < thr[i]*(1-r.HarshHysteresis)) {
			d.bits &^= (bitHarshActive0 | bitHarshCounted0) << i
			active = false
		}
		if !active && !gated && v[i] >= thr[i] {
			d.bits |= bitHarshActive0 << i
			d.harsh[i].durMs = 0
		}
	}

	resM, stepped := d.addFix(r, ev, t, speed)
	d.addOdometer(r, ev.OdometerKm)
	if judge && stepped {
		d.pairs++
		if dt == d.lastDt {
			d.exactT++
		}
		if math.Abs(float64(int64(speedC)-2*int64(d.lastSpeed)+int64(d.prevSpeed))) <= r.RegularSpeedTolKmh*100 {
			d.exactV++
		}
		if math.Abs(resM) <= r.RegularPosTolM {
			d.exactP++
		}
	}

	d.set(bitHasPrev2, d.has(bitHasLast) && dt <= maxGap)
	d.lastDt = dt
	d.last = t
	d.prevSpeed = d.lastSpeed
	d.lastSpeed = speedC
	d.set(bitHasLast, true)
	return buf
}

// addFix moves the distance anchor. It returns the GPS step minus the
// distance the speeds imply (m) and whether a step was taken.
func (d *Day) addFix(r *Rules, ev *telemetry.Event, t uint32, speed float64) (float64, bool) {
	if ev.Lat == 0 && ev.Lon == 0 {
		return 0, false // no fix
	}
	if ev.HDOP > r.MaxHDOP && r.MaxHDOP > 0 {
		d.hdopRejected++
		return 0, false
	}
	if speed < r.StaticKmh {
		return 0, false // static jitter: a parked box's fixes wander
	}
	lat, lon := e7(ev.Lat), e7(ev.Lon)
	if !d.has(bitHasFix) {
		d.fixT, d.fixLat, d.fixLon, d.fixDrive = int32(t), lat, lon, d.drivingMs
		d.set(bitHasFix, true)
		return 0, false
	}
	dtFix := int64(t) - int64(d.fixT)
	if dtFix <= 0 {
		return 0, false // same fix time: nothing new
	}
	if dtFix > r.MaxGap.Milliseconds() && int64(d.drivingMs-d.fixDrive)*2 < dtFix {
		// No usable fix for longer than MaxGap and the box did not report
		// driving for most of it (off, parked, out of coverage): what
		// happened in between was not observed and is not paid.
		d.fixT, d.fixLat, d.fixLon, d.fixDrive = int32(t), lat, lon, d.drivingMs
		d.candN = 0
		return 0, false
	}
	m := stepM(d.fixLat, d.fixLon, lat, lon)
	if m*3600/float64(dtFix) > r.TeleportKmh { // m per ms x 3600 = km/h
		d.jumps++
		if d.candN > 0 && int64(t) > int64(d.candT) &&
			HaversineM(fromE7(d.candLat), fromE7(d.candLon), fromE7(lat), fromE7(lon))*3600/float64(int64(t)-int64(d.candT)) <= r.TeleportKmh {
			d.candN++
		} else {
			d.candN = 1
		}
		d.candT, d.candLat, d.candLon = int32(t), lat, lon
		if int(d.candN) >= r.TeleportReanchor {
			// The old anchor was the outlier, or the box really moved while
			// blind: continue from here without paying the jump.
			d.fixT, d.fixLat, d.fixLon, d.fixDrive = int32(t), lat, lon, d.drivingMs
			d.candN = 0
		}
		return 0, false
	}
	// The GPS step against what the reported speeds imply.
	meanKmh := (float64(d.lastSpeed)/100 + speed) / 2
	res := m - meanKmh/3.6*float64(dtFix)/1000
	d.gpsM += m
	d.fixT, d.fixLat, d.fixLon, d.fixDrive = int32(t), lat, lon, d.drivingMs
	d.candN = 0
	return res, true
}

func (d *Day) addOdometer(r *Rules, odo float64) {
	if odo <= 0 {
		return // not reported
	}
	switch {
	case !d.has(bitHasOdo):
		d.set(bitHasOdo, true)
	case odo >= d.odoLast:
		d.odoKm += odo - d.odoLast
	case odo < d.odoLast-r.OdoRollbackKm:
		d.rollbacks++
	default:
		return // small backwards wobble: keep the high mark
	}
	d.odoLast = odo
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
