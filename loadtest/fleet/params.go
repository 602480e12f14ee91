package fleet

// params are one driver's habits and one vehicle's build, drawn once from
// the profile's ranges.
type params struct {
	speedFactor  float64 // cruise speed / posted limit
	speedVar     float64 // amplitude of cruise-speed wander, m/s
	accelMax     float64 // hardest launch, m/s²
	tau          float64 // seconds to close a speed gap
	brakeOnset   float64 // deceleration the driver brakes at for stops and turns, m/s²
	latMax       float64 // lateral acceleration taken in turns, m/s²
	surprisePerK float64 // sudden brakings per km
	surpriseLo   float64 // their deceleration range, m/s²
	surpriseHi   float64
	lanePerK     float64 // lane changes per km
	laneLat      float64 // their peak lateral acceleration, m/s²
	nightP       float64 // chance of a trip between 00:00 and 05:00 on a day
	lateP        float64 // chance of a trip starting 23:00-23:45 (crossing midnight)
	longP        float64 // chance of a long drive (fatigue) on a day
	idleP        float64 // chance of not driving at all on a day
	commuter     bool
	consumption  float64 // L/100 km
	tank         float64 // L
	hdopBase     float64
	gpsSigma     float64 // GPS error per unit of HDOP, m
	inflate      float64 // FraudInflated: odometer and speed factor
}

type span struct{ lo, hi float64 }

func (s span) draw(r *rng) float64 { return r.Range(s.lo, s.hi) }

type profileRanges struct {
	speedFactor, speedVar, accelMax, tau, brakeOnset, latMax span
	surprisePerK, surpriseLo, surpriseHi, lanePerK, laneLat  span
	nightP, lateP, longP, idleP                              float64
	consumption                                              span
}

var ranges = [...]profileRanges{
	Calm: {
		speedFactor: span{0.82, 0.95}, speedVar: span{0.2, 0.5}, accelMax: span{1.3, 2.0},
		tau: span{4, 6}, brakeOnset: span{1.2, 1.9}, latMax: span{1.4, 2.2},
		surprisePerK: span{0.005, 0.02}, surpriseLo: span{2.0, 2.5}, surpriseHi: span{2.6, 3.2},
		lanePerK: span{0.05, 0.15}, laneLat: span{0.6, 1.2},
		nightP: 0.01, lateP: 0.01, longP: 0.02, idleP: 0.10, consumption: span{6, 8},
	},
	Average: {
		speedFactor: span{0.93, 1.05}, speedVar: span{0.4, 1.0}, accelMax: span{1.8, 2.8},
		tau: span{3, 4.5}, brakeOnset: span{1.8, 2.8}, latMax: span{2.0, 3.0},
		surprisePerK: span{0.02, 0.06}, surpriseLo: span{2.5, 3.2}, surpriseHi: span{3.3, 4.3},
		lanePerK: span{0.1, 0.3}, laneLat: span{0.8, 1.8},
		nightP: 0.04, lateP: 0.03, longP: 0.05, idleP: 0.08, consumption: span{7, 9.5},
	},
	Aggressive: {
		speedFactor: span{1.08, 1.28}, speedVar: span{1.0, 2.0}, accelMax: span{2.8, 4.0},
		tau: span{1.5, 2.5}, brakeOnset: span{2.6, 4.0}, latMax: span{3.0, 4.6},
		surprisePerK: span{0.08, 0.2}, surpriseLo: span{3.8, 4.6}, surpriseHi: span{4.7, 6.2},
		lanePerK: span{0.4, 0.8}, laneLat: span{1.5, 2.8},
		nightP: 0.20, lateP: 0.10, longP: 0.10, idleP: 0.05, consumption: span{8.5, 12},
	},
}

// drawParams draws vehicle i's parameters. Fraudulent boxes sit in cars
// driven like the average driver.
func drawParams(seed uint64, i int, p Profile, f Fraud) params {
	r := newRNG(seed, tagParams, uint64(i))
	pr := ranges[Average]
	if p < Fraudulent {
		pr = ranges[p]
	}
	q := params{
		speedFactor: pr.speedFactor.draw(r), speedVar: pr.speedVar.draw(r),
		accelMax: pr.accelMax.draw(r), tau: pr.tau.draw(r),
		brakeOnset: pr.brakeOnset.draw(r), latMax: pr.latMax.draw(r),
		surprisePerK: pr.surprisePerK.draw(r), surpriseLo: pr.surpriseLo.draw(r),
		surpriseHi: pr.surpriseHi.draw(r), lanePerK: pr.lanePerK.draw(r), laneLat: pr.laneLat.draw(r),
		nightP: pr.nightP, lateP: pr.lateP, longP: pr.longP, idleP: pr.idleP,
		commuter:    r.Bool(0.7),
		consumption: pr.consumption.draw(r), tank: r.Range(45, 70),
		hdopBase: r.Range(0.7, 1.2), gpsSigma: r.Range(1.5, 3.0), inflate: 1,
	}
	switch f {
	case FraudInflated:
		q.inflate = r.Range(1.4, 2.0) // beyond the 25 % GPS/odometer tolerance of scoring.DefaultRules
	case FraudSynthetic:
		q.speedVar, q.surprisePerK, q.lanePerK, q.idleP = 0, 0, 0, 0
	}
	return q
}
