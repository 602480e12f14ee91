package fleet

import "math"

// xy is a point in metres east (x) and north (y) of the city centre.
type xy struct{ x, y float64 }

func (a xy) sub(b xy) xy        { return xy{a.x - b.x, a.y - b.y} }
func (a xy) add(b xy) xy        { return xy{a.x + b.x, a.y + b.y} }
func (a xy) scale(k float64) xy { return xy{a.x * k, a.y * k} }
func (a xy) norm() float64      { return math.Hypot(a.x, a.y) }
func polar(dist, bearingDeg float64) xy {
	b := bearingDeg * math.Pi / 180
	return xy{dist * math.Sin(b), dist * math.Cos(b)}
}

// Road classes.
const (
	residential uint8 = iota
	arterial
	expressway
	highway
)

// segment is one straight piece of road; the junction at its end leads to
// the next segment of the route.
type segment struct {
	p0      xy      // start
	dir     xy      // unit direction
	length  float64 // m
	heading float64 // degrees clockwise from north
	limit   float64 // posted limit, km/h
	known   bool    // the box knows the limit
	class   uint8

	turn   float64 // signed heading change at the end junction, degrees, + right
	radius float64 // effective turn radius at the end junction, m (0: straight)
	arc    float64 // half length of the turn's arc on each side of the junction, m
	stop   float64 // seconds standing at the end junction (red light, stop sign), 0 none
	vEnd   float64 // the driver's speed cap at the end junction, m/s (set per trip)
}

func headingOf(d xy) float64 {
	h := math.Atan2(d.x, d.y) * 180 / math.Pi
	if h < 0 {
		h += 360
	}
	return h
}

// angleDiff is b-a folded into (-180, 180].
func angleDiff(a, b float64) float64 {
	d := math.Mod(b-a, 360)
	if d > 180 {
		d -= 360
	} else if d <= -180 {
		d += 360
	}
	return d
}

func limitFor(r *rng, class uint8) float64 {
	switch class {
	case residential:
		return [...]float64{30, 40}[r.IntN(2)]
	case arterial:
		return [...]float64{50, 60, 60, 70}[r.IntN(4)]
	case expressway:
		return [...]float64{80, 80, 100}[r.IntN(3)]
	default:
		return 120
	}
}

// buildRoute lays a road route from a to b: residential streets at both
// ends, a grid of arterials between, and for long trips expressways or
// highways in the middle, with turns, bends, lights and stop signs.
func buildRoute(r *rng, a, b xy, dst []segment) []segment {
	segs := dst[:0]
	total := b.sub(a).norm()
	p := a
	travelled := 0.0
	var prevClass uint8
	for iter := 0; iter < 4000; iter++ {
		d := b.sub(p)
		rem := d.norm()
		if rem < 30 {
			break
		}
		class := arterial
		switch {
		case travelled < 600 || rem < 600:
			class = residential
		case total > 9000 && rem > 4000:
			class = expressway
			if total > 40000 && rem > 15000 && travelled > 5000 {
				class = highway
			}
		}
		var step xy
		switch {
		case rem < 60:
			step = d
		case class >= expressway:
			h := headingOf(d) + math.Max(-30, math.Min(30, 12*r.Norm()))
			l := math.Min(r.Range(800, 3000), math.Max(300, rem-3500))
			step = polar(l, h)
		default:
			lo, hi := 80.0, 350.0
			if class == arterial {
				lo, hi = 250, 1100
			}
			l := r.Range(lo, hi)
			ax, ay := math.Abs(d.x), math.Abs(d.y)
			useX := r.Float64()*(ax+ay) < ax
			if ax < 40 {
				useX = false
			} else if ay < 40 {
				useX = true
			}
			if useX {
				step = xy{math.Copysign(math.Min(l, ax), d.x), 0}
			} else {
				step = xy{0, math.Copysign(math.Min(l, ay), d.y)}
			}
			// streets are not ruled lines: a few degrees of wander
			step = polar(step.norm(), headingOf(step)+2*r.Norm())
		}
		l := step.norm()
		if l < 1 {
			break
		}
		seg := segment{p0: p, dir: step.scale(1 / l), length: l, heading: headingOf(step), class: class}
		if len(segs) > 0 && class == prevClass {
			seg.limit, seg.known = segs[len(segs)-1].limit, segs[len(segs)-1].known
			if r.Bool(0.15) {
				seg.limit = limitFor(r, class)
			}
		} else {
			seg.limit = limitFor(r, class)
			pk := 0.8
			if class == residential {
				pk = 0.5
			}
			seg.known = r.Bool(pk)
		}
		segs = append(segs, seg)
		prevClass = class
		p = p.add(step)
		travelled += l
	}
	if len(segs) == 0 { // a and b (almost) the same: a short loop round the block
		h := r.Range(0, 360)
		for k := 0; k < 4; k++ {
			step := polar(120, h+90*float64(k))
			segs = append(segs, segment{p0: p, dir: step.scale(1.0 / 120), length: 120,
				heading: headingOf(step), class: residential, limit: 30})
			p = p.add(step)
		}
	}
	// junctions
	for k := 0; k+1 < len(segs); k++ {
		s, n := &segs[k], &segs[k+1]
		s.turn = angleDiff(s.heading, n.heading)
		at := math.Abs(s.turn)
		switch {
		case at < 8:
			s.radius = 0
		case at < 35:
			s.radius = r.Range(60, 150)
			if s.class >= expressway {
				s.radius = r.Range(250, 600)
			}
		case at < 70:
			s.radius = r.Range(25, 60)
		default:
			s.radius = r.Range(9, 20)
		}
		if s.radius > 0 {
			half := at / 2 * math.Pi / 180
			s.arc = s.radius * math.Tan(half)
			if lim := 0.45 * math.Min(s.length, n.length); s.arc > lim {
				s.arc = lim
				s.radius = lim / math.Tan(half)
			}
		}
		switch {
		case s.class >= expressway && n.class >= expressway:
		case s.class == residential && r.Bool(0.25):
			s.stop = r.Range(1, 4) // stop sign, give way
		case s.class != residential && r.Bool(0.35):
			s.stop = r.Range(8, 75) // red light
		}
	}
	return segs
}
