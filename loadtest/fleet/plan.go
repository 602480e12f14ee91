package fleet

import (
	"math"
	"slices"
)

// planDay appends day d's trips to dst. Trips are planned by local hour:
// a commuter's two commutes on weekdays, outings on other days, sometimes a
// night trip, a trip across midnight or a long drive with too short a rest.
// Every day ends at home. A synthetic box replays day 0's plan every day.
func (v *vehicle) planDay(d int, dst []plannedTrip) []plannedTrip {
	w := v.w
	pd := d
	if v.info.Fraud == FraudSynthetic {
		pd = 0
	}
	r := newRNG(w.seed, tagDay, uint64(v.info.Index), uint64(pd))
	if r.Bool(v.p.idleP) {
		return dst
	}
	start := len(dst)
	add := func(hour, gapMin float64, to xy) {
		if gapMin == 0 {
			gapMin = r.Range(2, 10)
		}
		dst = append(dst, plannedTrip{
			at:   w.dayStart[d] + int64(hour*3600)*1000,
			gap:  int64(gapMin*60) * 1000,
			to:   to,
			seed: mix(w.seed, tagTrip, uint64(v.info.Index), uint64(pd), uint64(len(dst)-start)),
		})
	}
	near := func(from xy, loKm, hiKm float64) xy {
		return from.add(polar(1000*r.Range(loKm, hiKm), r.Range(0, 360)))
	}
	home := v.home
	if r.Bool(v.p.nightP) {
		h := r.Range(0.5, 4)
		add(h, 0, near(home, 3, 15))
		add(h, r.Range(10, 40), home)
	}
	switch {
	case r.Bool(v.p.longP):
		// out of town and back with only a short stop: a fatigue case
		h := r.Range(7.5, 10.5)
		add(h, 0, home.add(polar(1000*r.Range(70, 160), r.Range(190, 350))))
		add(h, r.Range(5, 12), home)
	case w.weekday[pd] && v.p.commuter:
		add(r.Range(7, 9.2), 0, v.work)
		if r.Bool(0.15) {
			add(r.Range(12, 12.8), 0, near(v.work, 1, 4))
			add(12, r.Range(20, 50), v.work)
		}
		add(r.Range(17, 19.5), 0, home)
		if r.Bool(0.3) {
			add(r.Range(19.5, 21.5), 0, near(home, 2, 8))
			add(19.5, r.Range(20, 90), home)
		}
	default:
		n := 0
		switch u := r.Float64(); {
		case u < 0.15:
		case u < 0.60:
			n = 1
		case u < 0.90:
			n = 2
		default:
			n = 3
		}
		if n == 0 && v.info.Fraud == FraudSynthetic {
			n = 1 // a generated trace exists to earn: it always drives
		}
		hours := make([]float64, n)
		for k := range hours {
			hours[k] = r.Range(9, 20)
		}
		slices.Sort(hours)
		for _, h := range hours {
			add(h, 0, near(home, 3, 35))
			add(h, r.Range(30, 180), home)
		}
	}
	if r.Bool(v.p.lateP) {
		h := r.Range(23, 23.75)
		add(h, 0, near(home, 5, 20))
		add(h, r.Range(10, 30), home)
	}
	if n := len(dst) - start; v.info.Fraud == FraudRollback && n > 0 {
		dst[start+min(1, n-1)].rollback = true
	}
	return dst
}

// world is what every vehicle of one simulation shares (read-only).
type world struct {
	seed      uint64
	days      int
	dayStart  []int64  // UTC ms of each local midnight, days+1 entries
	dates     []string // local dates, days+1 entries
	weekday   []bool   // Monday..Friday
	doy       []int    // day of year
	center    LatLon
	interval  int64   // sample interval, ms
	substeps  int     // physics steps per sample
	dt        float64 // physics step, s
	sampleSec float64 // sample interval, s
	jitter    int     // largest timestamp jitter of honest boxes, ms
	parked    int64   // heartbeat interval, ms; 0 none
	coolK     float64 // coolant approach per physics step
}

// localHour returns the day index of t (clamped to the simulation) and the
// local hour since that day's midnight.
func (w *world) localHour(t int64) (int, float64) {
	d, _ := slices.BinarySearch(w.dayStart, t+1)
	d--
	d = max(0, min(d, w.days-1))
	return d, float64(t-w.dayStart[d]) / 3600e3
}

// ambient is the air temperature in °C: Shanghai's seasons and a daily swing.
func (w *world) ambient(d int, hour float64) float64 {
	d = max(0, min(d, w.days-1))
	return 17 - 12*math.Cos(2*math.Pi*float64(w.doy[d]-20)/365) + 3*math.Sin(2*math.Pi*(hour-9)/24)
}
