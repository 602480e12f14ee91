package scoring

import (
	"fmt"
	"math"
)

// Flag codes of a day's anti-fraud checks, as written in DailyScore.flags.
const (
	FlagTeleport    = "teleport"          // GPS jumps implying more than TeleportKmh
	FlagRollback    = "odometer_rollback" // the odometer went backwards
	FlagMismatch    = "distance_mismatch" // GPS and odometer distance disagree
	FlagMultiDevice = "multi_device"      // two devices reported the vehicle the same day
	FlagTooRegular  = "too_regular"       // timestamps and motion too regular to be a real box
)

// Result is a closed day's score with every count it was computed from.
type Result struct {
	DistanceKm, GPSKm, OdometerKm       float64
	DrivingS, SpeedingS, NightS         int64
	HarshBrake, HarshAccel, HarshCorner int
	FatigueEvents                       int
	Events, LateEvents                  int64 // accepted; of them older than the latest fix
	GPSJumps, OdometerRollbacks         int
	Gaps, GapsPaid                      int     // unobserved gaps between fixes; of them paid by the odometer
	GapKm                               float64 // distance paid by the odometer over unobserved gaps (in DistanceKm)
	HDOPRejected                        int64
	Score                               float64 // 0..100, rounded to 0.01
	Points                              int64
	Flags, Reasons                      []string
	EventsHash                          [32]byte
	Region                              string // Region of the day's first usable GPS fix; "" if none
}

// Result computes the day's score, points and flags under r. It is pure:
// the same Day and Rules always give the same Result.
func (d *Day) Result(r *Rules) Result {
	t := d.total(r)
	minHarsh := uint32(r.HarshMinDuration.Milliseconds())
	res := Result{
		GPSKm:             float64(t.Steps.PaidMM) / 1e6,
		GapKm:             float64(t.Steps.GapMM) / 1e6,
		OdometerKm:        float64(t.Odo.M) / 1000,
		DrivingS:          int64(t.DrivingMs / 1000),
		SpeedingS:         int64(t.Speed.total(uint32(r.SpeedMinDuration.Milliseconds())) / 1000),
		NightS:            int64(t.NightMs / 1000),
		HarshBrake:        int(t.Harsh[harshBrake].total(minHarsh)),
		HarshAccel:        int(t.Harsh[harshAccel].total(minHarsh)),
		HarshCorner:       int(t.Harsh[harshCorner].total(minHarsh)),
		FatigueEvents:     int(t.Stretch.total(uint32(r.FatigueAfter.Milliseconds()))),
		Events:            int64(d.events),
		LateEvents:        int64(d.late),
		GPSJumps:          int(t.Steps.Jumps),
		OdometerRollbacks: int(t.Odo.Rollbacks),
		HDOPRejected:      int64(t.HDOPRj),
		Gaps:              int(t.Steps.Gaps),
		GapsPaid:          int(t.Steps.GapsPaid),
		EventsHash:        d.EventsHash(),
	}
	if t.Fix.N >= 1 {
		res.Region = Region(t.Fix.First.Lat, t.Fix.First.Lon)
	}
	if res.OdometerKm < 0 {
		res.OdometerKm = 0
	}
	res.DistanceKm = float64(t.Steps.PaidMM+t.Steps.GapMM) / 1e6
	factor := 1.0
	flag := func(code string, f float64, reason string, args ...any) {
		res.Flags = append(res.Flags, code)
		res.Reasons = append(res.Reasons, fmt.Sprintf(reason, args...)+fmt.Sprintf(" (points x%g)", f))
		factor *= f
	}
	if ev := t.Steps.Runs.evidence(); int(ev) >= r.TeleportFlagCount {
		flag(FlagTeleport, r.FactorTeleport, "%d GPS steps implied more than %g km/h and were rejected (teleport evidence %d: a relocation that stays counts %d, an outlier 1)",
			res.GPSJumps, r.TeleportKmh, ev, r.TeleportReanchor)
	}
	if res.OdometerRollbacks > 0 {
		flag(FlagRollback, r.FactorRollback, "odometer went backwards %d times by more than %g km", res.OdometerRollbacks, r.OdoRollbackKm)
	}
	if t.Odo.Has {
		// GPS (with odometer-paid gaps) against the odometer without the
		// gaps nobody observed and nothing paid. The percentage is of the
		// larger observed distance: GPS paid against the odometer outside
		// every gap. A gap paid by the odometer is in both, so counting it
		// would let an inflated odometer dilute its own excess by the gaps
		// it inflated (docs/scoring.md, "Percentages").
		g := res.DistanceKm
		o := float64(t.Odo.M-t.Steps.GapUnpaidOdoM) / 1000
		big := math.Max(float64(t.Steps.PaidMM)/1e6, o-float64(t.Steps.GapMM)/1e6)
		diff := math.Abs(g - o)
		if math.Max(g, o) >= r.OdoCheckMinKm && diff > r.OdoMismatchAbsKm && diff > big*r.OdoMismatchPct/100 {
			res.DistanceKm = math.Max(0, math.Min(g, o))
			flag(FlagMismatch, r.FactorMismatch, "GPS %.1f km and odometer %.1f km differ by more than %g%%; the smaller is used",
				g, o, r.OdoMismatchPct)
		}
	}
	if d.multiDevice() {
		a, b := d.devs[0].ID, d.devs[1].ID
		if b != "" && b < a {
			a, b = b, a
		}
		if d.third {
			flag(FlagMultiDevice, r.FactorMultiDevice, "more than two devices reported this vehicle (%q, %q, ...)", a, b)
		} else {
			flag(FlagMultiDevice, r.FactorMultiDevice, "devices %q and %q reported this vehicle at overlapping times", a, b)
		}
	}
	if ok, st, sv, sp := tooRegular(r, &t); ok {
		flag(FlagTooRegular, r.FactorTooRegular, "of %d moving samples, %.0f%% repeat the interval to the ms, %.0f%% have noiseless speed, %.0f%% a GPS step exactly speed x time: not a real receiver",
			t.Triples, st*100, sv*100, sp*100)
	}
	res.Score = behaviourScore(r, &res)
	res.Points = points(r, res.DistanceKm, res.Score, factor)
	return res
}

// tooRegular applies the generated-trace rule: many moving sample triples
// with a clock that never jitters AND speeds and GPS steps that are mostly
// noiseless. Real boxes may stamp exact GPS seconds (no jitter), but their
// speed and position are noisy; a generator or a replayer that re-stamps
// and interpolates has neither noise.
func tooRegular(r *Rules, s *seg) (ok bool, t, v, p float64) {
	if s.Triples < uint32(r.RegularMinSamples) || s.Steps.JudgedP == 0 {
		return false, 0, 0, 0
	}
	n := float64(s.Triples)
	t, v, p = float64(s.ExactT)/n, float64(s.ExactV)/n, float64(s.Steps.ExactP)/float64(s.Steps.JudgedP)
	return t >= r.RegularTimeShare && v >= r.RegularSpeedShare && p >= r.RegularPosShare, t, v, p
}

// behaviourScore is 100 minus the weighted rates, clamped to 0..100 and
// rounded to 0.01 so that points never hinge on a float's last bit.
func behaviourScore(r *Rules, res *Result) float64 {
	per100 := 100 / math.Max(res.DistanceKm, r.RateFloorKm)
	pen := float64(res.HarshBrake)*per100*r.WeightBrake +
		float64(res.HarshAccel)*per100*r.WeightAccel +
		float64(res.HarshCorner)*per100*r.WeightCorner +
		float64(res.FatigueEvents)*r.WeightFatigue
	if res.DrivingS > 0 {
		pen += float64(res.SpeedingS) * 100 / float64(res.DrivingS) * r.WeightSpeedingPct
		pen += float64(res.NightS) * 100 / float64(res.DrivingS) * r.WeightNightPct
	}
	s := math.Max(0, math.Min(100, 100-pen))
	return math.Round(s*100) / 100
}

// RewardedKm tapers distance: full up to TaperFromKm, TaperRate of each km
// up to TaperToKm, nothing beyond.
func RewardedKm(r *Rules, km float64) float64 {
	full := math.Min(km, r.TaperFromKm)
	tail := math.Max(0, math.Min(km, r.TaperToKm)-r.TaperFromKm)
	return full + float64(tail*r.TaperRate)
}

func points(r *Rules, km, score, factor float64) int64 {
	// Work in 0.001 km so that the floor is stable across platforms.
	mkm := math.Round(RewardedKm(r, km) * 1000)
	p := int64(math.Floor(float64(mkm*r.PointsPerKm) * score / 100 / 1000))
	p = min(p, r.DailyCap)
	return int64(math.Floor(float64(p) * factor))
}
