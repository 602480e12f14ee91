package fleet

import (
	"math"
	"slices"
	"strconv"

	"github.com/minecart/minecart/services/telemetry"
)

// earthRadius matches the haversine formula's, so that the reported track's
// great-circle length equals the simulated path length.
const (
	earthRadius = 6371008.8
	mPerDeg     = earthRadius * math.Pi / 180
)

var faultPool = [...]string{"P0301", "P0420", "P0171", "P0128", "P0442", "P0455", "P0700", "C0035", "U0100", "B1000"}

// vehicle is one vehicle's simulation state between chunks.
type vehicle struct {
	w    *world
	info *Vehicle
	p    params
	r    rng // heartbeats, jitter, GPS noise, faults

	home, work xy
	pos        xy // true position
	dest       xy // where the current trip ends
	heading    float64
	seq        uint64
	odoRep     float64 // reported km
	fuelL      float64
	battery    float64
	coolant    float64
	faults     []string
	faultEnd   int // first day without the fault

	parkedAt int64 // UTC ms the engine went off
	nextBeat int64
	queue    []plannedTrip
	qpos     int
	planned  int // days planned so far
	next     *plannedTrip

	driving    bool
	tr         trip
	segBuf     []segment
	nextSample int64

	nx, ny   float64 // GPS error, AR(1), m
	offset   xy      // FraudTeleport: reported minus true position
	lastLat  float64
	lastLon  float64
	haveLast bool
	cosLat   float64 // cosine of the last reported latitude

	day         int // index of cur
	cur         DayTruth
	odoFirst    bool
	odoStart    float64
	tripFresh   bool
	spanStart   int64
	lastTripEnd int64
	inAccel     bool
	inBrake     bool
	inCorner    bool
	offUntil    int64 // honest power loss: the box records nothing before this
}

// Honest power loss: while driving, each sample starts a power loss with
// probability 1/powerLossOdds (about one per 14 driving hours), lasting 5-15
// minutes of simulated time. It is drawn from its own hash, not the
// vehicle's generator, so every other value of the simulation is unchanged.
const powerLossOdds = 50000

func newVehicle(w *world, info *Vehicle) *vehicle {
	v := &vehicle{w: w, info: info, p: drawParams(w.seed, info.Index, info.Profile, info.Fraud)}
	v.r.seed(mix(w.seed, tagVehicle, uint64(info.Index)))
	v.home = polar(1000*(3+22*math.Sqrt(v.r.Float64())), v.r.Range(0, 360))
	v.work = polar(1000*(0.5+15*v.r.Float64()), v.r.Range(0, 360))
	v.pos = v.home
	v.heading = math.Round(v.r.Range(0, 360))
	v.odoRep = v.r.Range(3000, 150000)
	v.fuelL = v.p.tank * v.r.Range(0.3, 1)
	v.battery = 12.6
	v.coolant = w.ambient(0, 0)
	v.parkedAt = w.dayStart[0] - int64(v.r.Range(1, 8)*3600e3)
	v.lastTripEnd = math.MinInt64 / 2
	v.nextBeat = math.MaxInt64
	if w.parked > 0 {
		// boxes' heartbeats are not in step across the fleet
		v.nextBeat = w.dayStart[0] + int64(v.r.IntN(int(w.parked/1000)))*1000
	}
	v.resetDay(0)
	return v
}

func (v *vehicle) resetDay(d int) {
	v.day = d
	v.cur = DayTruth{
		VehicleID: v.info.VehicleID, DeviceID: v.info.DeviceID, Day: d, Date: v.w.dates[d],
		Profile: v.info.Profile, Fraud: v.info.Fraud,
	}
	v.odoFirst = true
	if d >= v.faultEnd {
		v.faults = nil
	}
	r := newRNG(v.w.seed, tagFault, uint64(v.info.Index), uint64(d))
	p := 0.01
	if v.info.Profile == Aggressive {
		p = 0.02
	}
	if v.faults == nil && r.Bool(p) {
		v.faults = []string{faultPool[r.IntN(len(faultPool))]}
		v.faultEnd = d + 1 + r.IntN(4)
	}
	v.cur.FaultCodes = v.faults
}

// closeDays finishes every day that ends at or before t.
func (v *vehicle) closeDays(t int64, out *[]DayTruth) {
	for v.day < v.w.days && t >= v.w.dayStart[v.day+1] {
		*out = append(*out, v.cur)
		v.resetDay(v.day + 1)
	}
}

// nextTrip returns the next planned trip, planning further days as needed;
// nil when the simulation has no more.
func (v *vehicle) nextTrip() *plannedTrip {
	for v.qpos >= len(v.queue) {
		if v.planned >= v.w.days {
			return nil
		}
		v.queue = v.planDay(v.planned, v.queue[:0])
		v.qpos = 0
		v.planned++
	}
	return &v.queue[v.qpos]
}

// departAt is when trip pt really leaves: not before its plan, not before
// the gap after the last trip.
func (v *vehicle) departAt(pt *plannedTrip) int64 {
	return max(pt.at, v.parkedAt+pt.gap)
}

// advance emits every event with nominal time before until.
func (v *vehicle) advance(until int64, ev *[]telemetry.Event, days *[]DayTruth) {
	for {
		if v.driving {
			if v.nextSample >= until {
				break
			}
			v.sample(ev, days)
			continue
		}
		tripAt := int64(math.MaxInt64)
		if v.next == nil {
			v.next = v.nextTrip()
		}
		if v.next != nil {
			tripAt = v.departAt(v.next)
		}
		if v.nextBeat < tripAt {
			if v.nextBeat >= until {
				break
			}
			v.heartbeat(ev, days)
			v.nextBeat += v.w.parked
			continue
		}
		if tripAt >= until {
			break
		}
		v.startTrip(tripAt, days)
	}
	v.closeDays(until, days)
}

func (v *vehicle) startTrip(at int64, days *[]DayTruth) {
	pt := v.next
	v.next = nil
	v.qpos++
	v.closeDays(at, days)
	v.dest = pt.to
	v.segBuf = buildRoute(newRNG(pt.seed, 1), v.pos, pt.to, v.segBuf)
	d, h := v.w.localHour(at)
	v.tr.start(pt.seed, &v.p, v.segBuf, v.w.weekday[d] && (h >= 7 && h < 9.5 || h >= 17 && h < 19.5),
		h >= 22 || h < 6, v.info.Fraud == FraudTeleport)
	v.driving = true
	v.tripFresh = true
	v.nextSample = at
	if pt.rollback && v.odoRep > 1000 {
		v.odoRep -= math.Min(v.odoRep-500, v.r.Range(300, 5000))
		v.cur.Rollbacks++
	}
	if v.fuelL < 0.15*v.p.tank {
		v.fuelL = v.p.tank * v.r.Range(0.9, 1)
	}
	if at-v.lastTripEnd >= fatigueBreakSec*1000 {
		v.spanStart = at
	}
	v.cur.Trips++
	v.nextBeat = math.MaxInt64
}

// sample runs the physics up to the next sample time and emits it.
func (v *vehicle) sample(ev *[]telemetry.Event, days *[]DayTruth) {
	w := v.w
	t := v.nextSample
	v.closeDays(t, days)
	moved := 0.0
	if v.tripFresh {
		v.tripFresh = false // the engine-start sample comes before any motion
	} else {
		for k := 0; k < w.substeps; k++ {
			ds := v.tr.step(w.dt)
			moved += ds
			v.fuelL -= v.p.consumption/100*ds/1000 + 0.8*w.dt/3600
			v.coolant += (v.coolantTarget() - v.coolant) * w.coolK
		}
		v.odoRep += moved / 1000 * v.p.inflate
		v.pos = v.tr.pos()
		if moved > 0 { // a standing car keeps its heading
			v.heading = v.tr.heading
		}
		if v.tr.jumpAt >= 0 && v.tr.dist >= v.tr.jumpAt {
			v.offset = v.offset.add(polar(v.r.Range(3000, 30000), v.r.Range(0, 360)))
			v.tr.jumpAt = -1
			v.cur.Teleports++
		}
	}
	v.battery = 14.1 + 0.05*v.noise()
	done := v.tr.phase == phDone
	e := v.event(t, !done)
	if !done {
		if v.tr.v > 0 {
			e.SpeedKmh = round(math.Max(0.1, v.tr.v*3.6*v.p.inflate+0.15*v.noise()), 10)
		}
		e.AccelLonMS2 = round(v.tr.a+0.06*v.noise(), 100)
		e.AccelLatMS2 = round(v.tr.lat+0.06*v.noise(), 100)
		if cs := &v.tr.segs[v.tr.seg]; cs.known {
			e.SpeedLimitKmh = cs.limit
		}
		e.HeadingDeg = roundHeading(v.heading + 0.8*v.noise())
	}
	v.emit(t, e, moved, ev)
	if done {
		v.driving = false
		v.pos = v.dest // parked exactly where the plan said
		// a parked vehicle keeps no route: state stays small for big fleets
		v.tr.segs, v.segBuf = nil, nil
		v.parkedAt = t
		v.lastTripEnd = t
		if v.offset != (xy{}) { // the next report shows the true place again
			v.offset = xy{}
			v.cur.Teleports++
		}
		if w.parked > 0 {
			v.nextBeat = t + w.parked
		}
		return
	}
	v.nextSample = t + w.interval
}

// noise is a standard normal draw, or 0 for a synthetic box.
func (v *vehicle) noise() float64 {
	if v.info.Fraud == FraudSynthetic {
		return 0
	}
	return v.r.Norm()
}

func (v *vehicle) coolantTarget() float64 {
	if slices.Contains(v.faults, "P0128") { // thermostat stuck open
		return 72
	}
	return 90
}

func round(x, k float64) float64 { return math.Round(x*k) / k }

// roundHeading folds h into [0, 360) at 0.1 degree.
func roundHeading(h float64) float64 {
	h = round(math.Mod(math.Mod(h, 360)+360, 360), 10)
	if h >= 360 {
		h = 0
	}
	return h
}

// event fills the fields every sample shares.
func (v *vehicle) event(t int64, engine bool) telemetry.Event {
	w := v.w
	v.seq++
	ts := t
	if v.info.Fraud != FraudSynthetic {
		ts += int64(v.r.IntN(w.jitter + 1))
	}
	hdop := 1.0
	if v.info.Fraud != FraudSynthetic {
		if v.tr.canyon > 0 {
			v.tr.canyon -= w.dt * float64(w.substeps)
			hdop = v.p.hdopBase + 2 + 0.3*math.Abs(v.r.Norm())
		} else {
			hdop = v.p.hdopBase + 0.1*math.Abs(v.r.Norm())
			if engine && v.r.Bool(0.003) {
				v.tr.canyon = v.r.Range(10, 60)
			}
		}
		// a standing car's receiver holds its fix (static navigation)
		if !engine || v.tr.v > 0 {
			sigma := v.p.gpsSigma * hdop
			v.nx = 0.9*v.nx + 0.436*sigma*v.r.Norm()
			v.ny = 0.9*v.ny + 0.436*sigma*v.r.Norm()
		}
	}
	rep := v.pos.add(v.offset).add(xy{v.nx, v.ny})
	lat := w.center.Lat + rep.y/mPerDeg
	v.cosLat = math.Cos(lat * math.Pi / 180)
	lon := w.center.Lon + rep.x/(mPerDeg*v.cosLat)
	id := make([]byte, 0, len(v.info.DeviceID)+12)
	id = append(id, v.info.DeviceID...)
	id = append(id, '-')
	id = strconv.AppendUint(id, v.seq, 10)
	return telemetry.Event{
		EventID: string(id), DeviceID: v.info.DeviceID, VehicleID: v.info.VehicleID,
		Seq: v.seq, TimeMs: ts, TZ: v.info.TZ,
		Lat: round(lat, 1e6), Lon: round(lon, 1e6), HDOP: round(hdop, 10),
		HeadingDeg: roundHeading(v.heading),
		OdometerKm: round(v.odoRep, 1000),
		EngineOn:   engine,
		FuelPct:    round(math.Max(0, 100*v.fuelL/v.p.tank), 10),
		BatteryV:   round(v.battery, 100),
		CoolantC:   round(v.coolant, 10),
		FaultCodes: v.faults,
	}
}

// heartbeat emits a parked sample.
func (v *vehicle) heartbeat(ev *[]telemetry.Event, days *[]DayTruth) {
	w := v.w
	t := v.nextBeat
	v.closeDays(t, days)
	hours := float64(t-v.parkedAt) / 3600e3
	d, h := w.localHour(t)
	amb := w.ambient(d, h)
	v.coolant = amb + (v.coolant-amb)*math.Exp(-float64(v.w.parked)/1000/2400)
	v.battery = math.Max(12.0, 12.6-0.004*hours) + 0.01*v.noise()
	e := v.event(t, false)
	e.AccelLonMS2 = round(0.02*v.noise(), 100)
	e.AccelLatMS2 = round(0.02*v.noise(), 100)
	v.emit(t, e, 0, ev)
}

// emit appends e, sampled at nominal time t, and accounts for it in the
// day's truth.
func (v *vehicle) emit(t int64, e telemetry.Event, moved float64, ev *[]telemetry.Event) {
	w := v.w
	c := &v.cur
	c.DistanceKm += moved / 1000
	if _, h := w.localHour(t); h < nightEndHour {
		c.NightKm += moved / 1000
	}
	if v.info.Fraud == FraudNone && moved > 0 && v.offUntil <= t {
		if h := mix(w.seed, tagPowerLoss, uint64(v.info.Index), uint64(t)); h%powerLossOdds == 0 {
			v.offUntil = t + int64(5+(h>>32)%11)*60_000
		}
	}
	if t < v.offUntil { // the box is off: nothing recorded, the car moves on
		c.PowerLossS += w.sampleSec
		c.PowerLossKm += moved / 1000
		v.seq-- // the box numbers only what it records
		return
	}
	c.Events++
	if v.odoFirst {
		v.odoFirst = false
		v.odoStart = e.OdometerKm
	}
	c.OdometerKm = e.OdometerKm - v.odoStart
	if v.haveLast {
		c.GPSKm += trackKm(v.lastLat, v.lastLon, e.Lat, e.Lon, v.cosLat)
	}
	v.lastLat, v.lastLon, v.haveLast = e.Lat, e.Lon, true
	secs := w.sampleSec
	if e.EngineOn {
		c.EngineSeconds += secs
		if span := float64(t-v.spanStart) / 1000; span > c.LongestDriveSec {
			c.LongestDriveSec = span
		}
	}
	if e.SpeedKmh > 0 {
		c.MovingSeconds += secs
	}
	if e.SpeedLimitKmh > 0 && e.SpeedKmh > e.SpeedLimitKmh {
		c.SpeedingSeconds += secs
	}
	c.MaxSpeedKmh = math.Max(c.MaxSpeedKmh, e.SpeedKmh)
	acc := e.AccelLonMS2 > HarshAccelMS2 && e.SpeedKmh >= harshMinKmh
	brk := -e.AccelLonMS2 > HarshBrakeMS2 && e.SpeedKmh >= harshMinKmh
	cor := math.Abs(e.AccelLatMS2) > HarshCornerMS2 && e.SpeedKmh >= cornerMinKmh
	if acc && !v.inAccel {
		c.HarshAccel++
	}
	if brk && !v.inBrake {
		c.HarshBrake++
	}
	if cor && !v.inCorner {
		c.HarshCorner++
	}
	v.inAccel, v.inBrake, v.inCorner = acc, brk, cor
	*ev = append(*ev, e)
}

// trackKm is the distance between two reported fixes: the equirectangular
// approximation (cosLat near both latitudes) for fixes under ~10 km apart,
// which agrees with haversine to better than 1e-5 there, and haversine for
// the jumps of a teleporting box.
func trackKm(lat1, lon1, lat2, lon2, cosLat float64) float64 {
	dy := (lat2 - lat1) * mPerDeg
	dx := (lon2 - lon1) * mPerDeg * cosLat
	if d := math.Sqrt(dx*dx + dy*dy); d < 10000 {
		return d / 1000
	}
	return haversineKm(lat1, lon1, lat2, lon2)
}

func haversineKm(lat1, lon1, lat2, lon2 float64) float64 {
	const rad = math.Pi / 180
	dlat := (lat2 - lat1) * rad
	dlon := (lon2 - lon1) * rad
	a := math.Sin(dlat/2)*math.Sin(dlat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dlon/2)*math.Sin(dlon/2)
	return 2 * earthRadius / 1000 * math.Asin(math.Min(1, math.Sqrt(a)))
}
