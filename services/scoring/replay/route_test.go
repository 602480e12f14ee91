package replay

import (
	"math"
	"math/rand/v2"
	"testing"
)

// route is a fixed polyline (metres east, north of a point in Shanghai)
// that several drives follow: an honest commuter's road.
type route struct{ x, y []float64 }

func newRoute(seed uint64, km float64) route {
	r := rand.New(rand.NewPCG(seed, 1))
	var rt route
	x, y, h := 0.0, 0.0, r.Float64()*2*math.Pi
	for d := 0.0; d < km*1000; d += 50 {
		rt.x, rt.y = append(rt.x, x), append(rt.y, y)
		if r.IntN(20) == 0 {
			h += (r.Float64() - 0.5) * math.Pi
		}
		x, y = x+50*math.Cos(h), y+50*math.Sin(h)
	}
	return rt
}

// at is the position s metres along the route.
func (rt route) at(s float64) (float64, float64) {
	i := int(s / 50)
	if i >= len(rt.x)-1 {
		return rt.x[len(rt.x)-1], rt.y[len(rt.y)-1]
	}
	f := s/50 - float64(i)
	return rt.x[i] + f*(rt.x[i+1]-rt.x[i]), rt.y[i] + f*(rt.y[i+1]-rt.y[i])
}

// drive samples one drive along rt every periodMs from t0: speed follows
// cruise (km/h, per stretch of 500 m, drawn by speed) and stops (traffic
// lights: each 500 m stretch has a red light with probability red, 10-60 s).
func (rt route) drive(t0, periodMs int64, speed func(stretch int) float64, red func(stretch int) float64) []Fix {
	var fs []Fix
	total := float64(len(rt.x)-1) * 50
	s, t := 0.0, t0
	wait := 0.0
	lastStretch := -1
	for s < total {
		st := int(s / 500)
		if st != lastStretch {
			lastStretch = st
			wait = red(st)
		}
		v := speed(st)
		if wait > 0 {
			wait -= float64(periodMs) / 1000
			v = 0
		}
		x, y := rt.at(s)
		lat := 31.2 + y/111320
		fs = append(fs, Fix{TimeMs: t, Lat: lat, Lon: 121.4 + x/(111320*math.Cos(31.2*math.Pi/180)), SpeedKmh: v})
		s += v / 3.6 * float64(periodMs) / 1000
		t += periodMs
	}
	return fs
}

// TestSameRouteHonest: one commuter's road (15 km) driven on many days with
// each day's own traffic (per-stretch speeds within +-15 % of the road's,
// red lights) never matches an earlier day; the same drive replayed does.
// A drive on cruise control at one speed both days is where the fingerprint
// cannot tell (documented): the test pins the traffic case only.
func TestSameRouteHonest(t *testing.T) {
	cfg := DefaultConfig()
	x, _ := NewIndex(cfg, 30, 1000)
	rt := newRoute(1, 15)
	base := rand.New(rand.NewPCG(2, 2))
	limits := make([]float64, 40)
	for i := range limits {
		limits[i] = []float64{40, 60, 80}[base.IntN(3)]
	}
	const day = 86400_000
	var first []Fix
	matches := 0
	for d := range 40 {
		r := rand.New(rand.NewPCG(uint64(d), 3))
		speeds := make([]float64, 40)
		reds := make([]float64, 40)
		for i := range speeds {
			speeds[i] = limits[i] * (0.85 + 0.3*r.Float64())
			if r.IntN(3) == 0 {
				reds[i] = 10 + 50*r.Float64()
			}
		}
		fs := rt.drive(int64(d)*day+8*3600_000, 1000, func(i int) float64 { return speeds[min(i, 39)] }, func(i int) float64 { return reds[min(i, 39)] })
		if d == 0 {
			first = fs
		}
		fps := Trips(cfg, "commuter", dateOf(d), fs)
		if len(fps) != 1 {
			t.Fatalf("day %d: %d trips", d, len(fps))
		}
		if ms := x.Check(&fps[0]); len(ms) > 0 {
			matches++
			t.Logf("day %d matches %s (J %.2f, C %.2f)", d, ms[0].Of.Date, ms[0].Jaccard, ms[0].Contain)
		}
		x.Add(&fps[0])
	}
	if matches > 0 {
		t.Fatalf("%d of 40 honest drives of one road matched an earlier day", matches)
	}
	rp := Trips(cfg, "commuter", dateOf(50), chain(shift(50*day), noise(9, 5), every(2))(first))
	if len(rp) != 1 || len(x.Check(&rp[0])) == 0 {
		t.Fatal("replay of day 0 not detected")
	}
}

func dateOf(d int) string { return "2026-12-" + string(rune('0'+d/10)) + string(rune('0'+d%10)) }

// TestShortRouteHonest: short commutes (2, 3 and 5 km: short fingerprints,
// N < MinShingles) driven on 40 days each never match one another, with
// each day's traffic (speeds within +-15 %, red lights) and with almost
// none (speeds within +-2 %, no lights, where the coarse shingles often
// agree and only the duration tells); the same drive re-sent verbatim,
// shifted by whole days or by an odd number of milliseconds, matches.
func TestShortRouteHonest(t *testing.T) {
	cfg := DefaultConfig()
	const day = 86400_000
	for _, c := range []struct {
		km     float64
		spread float64 // speed spread around the road's, +-
		lights bool
	}{{2, 0.15, true}, {3, 0.15, true}, {5, 0.15, true}, {2, 0.02, false}, {3, 0.02, false}, {5, 0.02, false}} {
		x, _ := NewIndex(cfg, 60, 1000)
		rt := newRoute(uint64(10*c.km), c.km)
		base := rand.New(rand.NewPCG(uint64(c.km), 2))
		limits := make([]float64, 40)
		for i := range limits {
			limits[i] = []float64{40, 60, 80}[base.IntN(3)]
		}
		var first []Fix
		matches, sameSig, short := 0, 0, 0
		var held []Fingerprint
		for d := range 40 {
			r := rand.New(rand.NewPCG(uint64(d), 3))
			speeds := make([]float64, 40)
			reds := make([]float64, 40)
			for i := range speeds {
				speeds[i] = limits[i] * (1 - c.spread + 2*c.spread*r.Float64())
				if c.lights && r.IntN(3) == 0 {
					reds[i] = 10 + 50*r.Float64()
				}
			}
			fs := rt.drive(int64(d)*day+8*3600_000+int64(r.IntN(600_000)), 1000, func(i int) float64 { return speeds[min(i, 39)] },
				func(i int) float64 { return reds[min(i, 39)] })
			if d == 0 {
				first = fs
			}
			fps := Trips(cfg, "commuter", dateOf(d), fs)
			if len(fps) != 1 {
				t.Fatalf("%.0f km day %d: %d trips", c.km, d, len(fps))
			}
			if Short(&cfg, &fps[0]) {
				short++
			}
			for k := range held {
				if j, _ := Similarity(&held[k], &fps[0]); j == 1 && held[k].N == fps[0].N {
					sameSig++
				}
			}
			if ms := x.Check(&fps[0]); len(ms) > 0 {
				matches++
				t.Logf("%.0f km day %d matches %s (J %.2f, C %.2f)", c.km, d, ms[0].Of.Date, ms[0].Jaccard, ms[0].Contain)
			}
			x.Add(&fps[0])
			held = append(held, fps[0])
		}
		t.Logf("%.0f km, speeds +-%.0f %%, lights %v: %d of 40 short (N %d on day 0), %d of 780 honest pairs with every signature value and N equal, %d matches",
			c.km, 100*c.spread, c.lights, short, held[0].N, sameSig, matches)
		if short == 0 {
			t.Fatalf("%.0f km: no short trip, the case tests nothing", c.km)
		}
		if matches > 0 {
			t.Fatalf("%.0f km: %d of 40 honest drives of one short road matched an earlier day", c.km, matches)
		}
		for _, sh := range []int64{50 * day, 50*day + 3600_000 + 17_123} {
			rp := Trips(cfg, "commuter", dateOf(50), shift(sh)(first))
			if len(rp) != 1 || len(x.Check(&rp[0])) == 0 {
				t.Fatalf("%.0f km: verbatim replay of day 0 shifted %d ms not detected", c.km, sh)
			}
		}
	}
}
