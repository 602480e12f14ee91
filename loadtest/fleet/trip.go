package fleet

import "math"

const (
	phWarm   uint8 = iota // engine on, not moving yet
	phDrive               // moving along the route
	phStand               // standing at a junction (light, stop sign)
	phArrive              // at the destination, engine still on
	phDone                // engine off
)

// plannedTrip is one departure of a day's plan.
type plannedTrip struct {
	at       int64 // earliest departure, UTC ms
	gap      int64 // least time parked after the previous trip, ms
	to       xy
	rollback bool   // FraudRollback: wind the odometer back before this trip
	seed     uint64 // the trip's own random stream
}

// trip is the state of one trip being driven.
type trip struct {
	r       rng
	p       *params
	segs    []segment
	seg     int
	s       float64 // m along segs[seg]
	v, a    float64 // true speed (m/s) and longitudinal acceleration (m/s²)
	lat     float64 // lateral acceleration, m/s², + right
	heading float64
	phase   uint8
	wait    float64 // seconds left in phWarm, phStand, phArrive
	cong    float64 // congestion factor on arterials and expressways
	wander  float64 // AR(1) cruise-speed wander, m/s

	dist         float64 // m driven so far
	nextSurprise float64 // dist at which the next sudden braking happens
	surpriseLeft float64
	surpriseDec  float64
	nextLane     float64
	laneLeft     float64
	laneSign     float64
	jumpAt       float64 // FraudTeleport: dist of the position jump, -1 none
	canyon       float64 // seconds left of poor GPS (urban canyon)
}

// start prepares t for a trip along segs.
// Rush hours slow main roads down; at night they are free.
func (t *trip) start(seed uint64, p *params, segs []segment, rush, night, teleport bool) {
	*t = trip{p: p, segs: segs, phase: phWarm, jumpAt: -1}
	t.r.seed(seed)
	switch {
	case rush:
		t.cong = t.r.Range(0.45, 0.75)
	case night:
		t.cong = 1
	default:
		t.cong = t.r.Range(0.8, 1)
	}
	t.wait = t.r.Range(3, 20)
	t.heading = segs[0].heading
	last := len(segs) - 1
	for k := range segs {
		s := &segs[k]
		s.vEnd = math.Inf(1)
		if k == last {
			s.vEnd = 0
			continue
		}
		if s.radius > 0 {
			s.vEnd = math.Sqrt(p.latMax * s.radius)
		}
		if next := segs[k+1].limit / 3.6 * p.speedFactor; next < s.vEnd {
			s.vEnd = next
		}
	}
	t.nextSurprise = t.expo(p.surprisePerK)
	t.nextLane = t.expo(p.lanePerK)
	if teleport && t.r.Bool(0.8) {
		total := 0.0
		for _, s := range segs {
			total += s.length
		}
		t.jumpAt = total * t.r.Range(0.2, 0.8)
	}
}

// expo draws the distance (m) to the next event of a process with perKm
// events per km; +Inf when the rate is 0.
func (t *trip) expo(perKm float64) float64 {
	if perKm <= 0 {
		return math.Inf(1)
	}
	u := t.r.Float64()
	for u == 0 {
		u = t.r.Float64()
	}
	return t.dist - math.Log(u)*1000/perKm
}

func (t *trip) pos() xy {
	s := &t.segs[t.seg]
	return s.p0.add(s.dir.scale(t.s))
}

// envA is the largest acceleration for the next dt seconds that keeps the
// vehicle able to slow from v to vc within d metres braking at b.
func envA(v, vc, d, b, dt float64) float64 {
	A := dt * dt
	B := 2*v*dt + b*dt*dt
	C := v*v + 2*b*v*dt - vc*vc - 2*b*d
	disc := B*B - 4*A*C
	if disc < 0 {
		return -v / dt
	}
	return (-B + math.Sqrt(disc)) / (2 * A)
}

// step advances the trip by dt seconds and returns the metres moved.
func (t *trip) step(dt float64) float64 {
	switch t.phase {
	case phWarm, phStand, phArrive:
		t.v, t.a, t.lat = 0, 0, 0
		t.wait -= dt
		if t.wait > 0 {
			return 0
		}
		switch t.phase {
		case phWarm:
			t.phase = phDrive
		case phStand:
			t.segs[t.seg].stop = 0
			t.seg++
			t.s = 0
			t.phase = phDrive
		case phArrive:
			t.phase = phDone
		}
		return 0
	case phDone:
		return 0
	}
	p := t.p
	cs := &t.segs[t.seg]

	// the speed the driver wants on this road
	t.wander = 0.95*t.wander + 0.31*p.speedVar*t.r.Norm()
	cong := 1.0
	if cs.class != residential {
		cong = t.cong
	}
	vt := cs.limit/3.6*p.speedFactor*cong + t.wander
	vt = math.Max(3, math.Min(50, vt))
	a := (vt - t.v) / p.tau
	if pf := math.Max(0.3, math.Min(1, 1-t.v/60)); a > p.accelMax*pf {
		a = p.accelMax * pf
	}
	if a < -p.brakeOnset {
		a = -p.brakeOnset
	}
	// turns, lights and the destination ahead
	look := t.v*t.v/(2*p.brakeOnset) + 2*t.v*dt + 30
	d := cs.length - t.s
	for j := t.seg; j < len(t.segs); j++ {
		sj := &t.segs[j]
		vc := sj.vEnd
		if sj.stop > 0 {
			vc = 0
		}
		if ae := envA(t.v, vc, d, p.brakeOnset, dt); ae < a {
			a = ae
		}
		// a turn's speed holds from where its arc begins
		if sj.radius > 0 && j+1 < len(t.segs) {
			if ae := envA(t.v, sj.vEnd, math.Max(0, d-sj.arc), p.brakeOnset, dt); ae < a {
				a = ae
			}
		}
		if j+1 < len(t.segs) {
			d += t.segs[j+1].length
		}
		if d > look {
			break
		}
	}
	// and until its arc ends
	if t.seg > 0 {
		if ps := &t.segs[t.seg-1]; ps.radius > 0 && t.s < ps.arc {
			a = math.Min(a, (ps.vEnd-t.v)/dt)
		}
	}
	// something cuts in: brake hard for a moment
	if t.surpriseLeft > 0 {
		t.surpriseLeft -= dt
		a = math.Min(a, -t.surpriseDec)
	} else if t.dist >= t.nextSurprise {
		if t.v > 8 {
			t.surpriseLeft = t.r.Range(1, 2.5) - dt
			t.surpriseDec = t.r.Range(p.surpriseLo, p.surpriseHi)
			a = math.Min(a, -t.surpriseDec)
		}
		t.nextSurprise = t.expo(p.surprisePerK)
	}
	a = math.Max(a, -9)
	if t.v+a*dt < 0 {
		a = -t.v / dt
	}
	ds := t.v*dt + 0.5*a*dt*dt
	t.v += a * dt
	t.a = a
	t.s += ds
	for t.s >= t.segs[t.seg].length {
		s := &t.segs[t.seg]
		over := t.s - s.length
		if t.seg == len(t.segs)-1 || s.stop > 0 {
			ds -= over
			t.s = s.length
			t.v = 0
			if t.seg == len(t.segs)-1 {
				t.phase, t.wait = phArrive, t.r.Range(2, 10)
			} else {
				t.phase, t.wait = phStand, s.stop
			}
			break
		}
		t.s = over
		t.seg++
	}
	t.dist += ds

	// heading and lateral acceleration through the arcs of turns
	cs = &t.segs[t.seg]
	t.heading, t.lat = cs.heading, 0
	if rem := cs.length - t.s; cs.radius > 0 && rem < cs.arc {
		t.heading = cs.heading + (cs.arc-rem)/(2*cs.arc)*cs.turn
		t.lat = math.Copysign(t.v*t.v/cs.radius, cs.turn)
	} else if t.seg > 0 {
		if ps := &t.segs[t.seg-1]; ps.radius > 0 && t.s < ps.arc {
			t.heading = ps.heading + (0.5+t.s/(2*ps.arc))*ps.turn
			t.lat = math.Copysign(t.v*t.v/ps.radius, ps.turn)
		}
	}
	t.heading = math.Mod(t.heading+360, 360)
	// lane changes: a push to one side, then back
	if t.laneLeft > 0 {
		k := 1.0
		if t.laneLeft <= 1.5 {
			k = -1
		}
		t.lat += k * t.laneSign * p.laneLat
		t.laneLeft -= dt
	} else if t.dist >= t.nextLane {
		if t.v > 12 {
			t.laneLeft = 3
			t.laneSign = 1
			if t.r.Bool(0.5) {
				t.laneSign = -1
			}
		}
		t.nextLane = t.expo(p.lanePerK)
	}
	return ds
}
