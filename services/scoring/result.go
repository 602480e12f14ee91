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
	HDOPRejected                        int64
	Score                               float64 // 0..100, rounded to 0.01
	Points                              int64
	Flags, Reasons                      []string
	EventsHash                          [32]byte
}

// Result computes the day's score, points and flags under r. It is pure:
// the same Day and Rules always give the same Result.
func (d *Day) Result(r *Rules) Result {
	res := Result{
		GPSKm:             d.gpsM / 1000,
		OdometerKm:        d.odoKm,
		DrivingS:          int64(d.drivingMs / 1000),
		SpeedingS:         int64(d.speedingMs / 1000),
		NightS:            int64(d.nightMs / 1000),
		HarshBrake:        int(d.harsh[harshBrake].count),
		HarshAccel:        int(d.harsh[harshAccel].count),
		HarshCorner:       int(d.harsh[harshCorner].count),
		FatigueEvents:     int(d.fatigue),
		Events:            int64(d.events),
		LateEvents:        int64(d.late),
		GPSJumps:          int(d.jumps),
		OdometerRollbacks: int(d.rollbacks),
		HDOPRejected:      int64(d.hdopRejected),
		EventsHash:        d.hash,
	}
	res.DistanceKm = res.GPSKm
	factor := 1.0
	flag := func(code string, f float64, reason string, args ...any) {
		res.Flags = append(res.Flags, code)
		res.Reasons = append(res.Reasons, fmt.Sprintf(reason, args...)+fmt.Sprintf(" (points x%g)", f))
		factor *= f
	}
	if int(d.jumps) >= r.TeleportFlagCount {
		flag(FlagTeleport, r.FactorTeleport, "%d GPS fixes implied more than %g km/h and were rejected", d.jumps, r.TeleportKmh)
	}
	if d.rollbacks > 0 {
		flag(FlagRollback, r.FactorRollback, "odometer went backwards %d times by more than %g km", d.rollbacks, r.OdoRollbackKm)
	}
	if d.has(bitHasOdo) {
		big := math.Max(res.GPSKm, res.OdometerKm)
		diff := math.Abs(res.GPSKm - res.OdometerKm)
		if big >= r.OdoCheckMinKm && diff > r.OdoMismatchAbsKm && diff > big*r.OdoMismatchPct/100 {
			res.DistanceKm = math.Min(res.GPSKm, res.OdometerKm)
			flag(FlagMismatch, r.FactorMismatch, "GPS %.1f km and odometer %.1f km differ by more than %g%%; the smaller is used",
				res.GPSKm, res.OdometerKm, r.OdoMismatchPct)
		}
	}
	if d.has(bitMultiDevice) {
		flag(FlagMultiDevice, r.FactorMultiDevice, "more than one device reported this vehicle (first: %q)", d.Device)
	}
	if ok, st, sv, sp := d.tooRegular(r); ok {
		flag(FlagTooRegular, r.FactorTooRegular, "of %d moving samples, %.0f%% repeat the interval to the ms, %.0f%% have noiseless speed, %.0f%% a GPS step exactly speed x time: not a real receiver",
			d.pairs, st*100, sv*100, sp*100)
	}
	res.Score = behaviourScore(r, &res)
	res.Points = points(r, res.DistanceKm, res.Score, factor)
	return res
}

// tooRegular applies the generated-trace rule: many moving sample pairs
// with a clock that never jitters AND speeds and positions that are mostly
// noiseless. Real boxes may stamp exact GPS seconds (no jitter), but their
// speed and position are noisy; a generator or a replayer that re-stamps
// and interpolates has neither noise.
func (d *Day) tooRegular(r *Rules) (ok bool, t, v, p float64) {
	if d.pairs < uint32(r.RegularMinSamples) {
		return false, 0, 0, 0
	}
	n := float64(d.pairs)
	t, v, p = float64(d.exactT)/n, float64(d.exactV)/n, float64(d.exactP)/n
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
