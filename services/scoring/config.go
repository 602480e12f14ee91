package scoring

import (
	"errors"
	"fmt"
	"time"
)

// G is standard gravity in m/s², the unit of the harsh-event thresholds.
const G = 9.80665

// Rules are every threshold and weight of the daily score, versioned: the
// Version string is written into every score record, so a score can always
// be recomputed under the rules it was made with. Change any value, change
// the Version. docs/scoring.md gives the source of each default.
type Rules struct {
	// Version names this set of rules, e.g. "2026.11-1".
	Version string

	// Harsh-event thresholds in g (1 g = 9.80665 m/s²).
	HarshBrakeG  float64 // longitudinal deceleration, default 0.40
	HarshAccelG  float64 // longitudinal acceleration, default 0.35
	HarshCornerG float64 // lateral, either side, default 0.40
	// HarshHysteresis is the fraction below the threshold the signal must
	// fall to end an episode (Digital Matter: 17 %), so one bump is one event.
	HarshHysteresis float64
	// HarshMinDuration is how long an episode must last to count (>= 100 ms
	// at Digital Matter). Each sample holds its value until the next one, at
	// most SampleHold.
	HarshMinDuration time.Duration
	// HarshMinKmh gates braking and acceleration events (Teltonika: 10 km/h);
	// CornerMinKmh gates cornering events (Teltonika: 30 km/h).
	HarshMinKmh  float64
	CornerMinKmh float64
	// SampleHold is the longest a sample's value is taken to last (the box
	// samples at 1 Hz); a longer gap is missing data, not driving.
	SampleHold time.Duration

	// Speeding: above SpeedLimitKmh of the event when it is > 0, else above
	// DefaultLimitKmh, by more than SpeedTolerancePct percent plus
	// SpeedToleranceKmh, for at least SpeedMinDuration.
	DefaultLimitKmh   float64
	SpeedTolerancePct float64
	SpeedToleranceKmh float64
	SpeedMinDuration  time.Duration

	// MovingKmh is the speed from which a sample counts as driving.
	MovingKmh float64
	// MaxGap: an interval between two samples longer than this is not
	// counted as driving (the box was off or out of coverage).
	MaxGap time.Duration
	// NightEndHour: driving between local 00:00 and this hour is night driving.
	NightEndHour int
	// FatigueAfter is continuous driving after which a fatigue event is
	// counted (again after each further FatigueAfter); a stop of at least
	// FatigueBreak resets it.
	FatigueAfter time.Duration
	FatigueBreak time.Duration

	// GPS distance filters.
	MaxHDOP           float64 // fixes with HDOP above this do not move distance (0 HDOP = unknown = kept)
	StaticKmh         float64 // fixes below this speed do not move distance (static jitter)
	TeleportKmh       float64 // implied speed between fixes above this: fix rejected, counted
	TeleportReanchor  int     // teleport evidence of one jump between plausible steps (a relocation that stays); docs/scoring.md, Distance
	TeleportFlagCount int     // teleport evidence (not gps_jumps) at which the teleport flag is raised

	// Unobserved gaps (no fix for longer than MaxGap, little driving
	// reported): paid the odometer delta D between the fixes at both ends
	// when both report an odometer and D agrees with the straight line C:
	// C - GapOdoSlackM <= D <= GapOdoMaxFactor x C + GapOdoSlackM and
	// D / gap duration <= GapOdoMaxKmh.
	GapOdoSlackM    float64
	GapOdoMaxFactor float64
	GapOdoMaxKmh    float64

	// Odometer cross-check.
	OdoRollbackKm    float64 // a decrease larger than this is a rollback
	OdoCheckMinKm    float64 // compare GPS and odometer only when one of them is at least this
	OdoMismatchPct   float64 // disagreement beyond this percent of the larger raises distance_mismatch
	OdoMismatchAbsKm float64 // ... and beyond this many km
	// too_regular: among at least RegularMinSamples moving sample pairs,
	// the interval repeats the previous one to the millisecond in at least
	// RegularTimeShare of them, AND the speed's second difference is within
	// RegularSpeedTolKmh in at least RegularSpeedShare, AND the GPS step
	// equals speed x time within RegularPosTolM in at least RegularPosShare.
	RegularMinSamples  int
	RegularTimeShare   float64
	RegularSpeedShare  float64
	RegularPosShare    float64
	RegularSpeedTolKmh float64
	RegularPosTolM     float64

	// Behaviour score: 100 minus penalties, clamped to 0..100.
	RateFloorKm       float64 // per-100-km rates use max(distance, RateFloorKm)
	WeightBrake       float64 // points off per harsh brake per 100 km
	WeightAccel       float64 // per harsh acceleration per 100 km
	WeightCorner      float64 // per harsh corner per 100 km
	WeightSpeedingPct float64 // per percent of driving time speeding
	WeightNightPct    float64 // per percent of driving time at night
	WeightFatigue     float64 // per fatigue event

	// Points = floor(rewarded km x PointsPerKm x score/100), capped at
	// DailyCap. Rewarded km: full up to TaperFromKm, TaperRate of each km up
	// to TaperToKm, nothing beyond (DIP-2 guard against paying for needless
	// driving).
	PointsPerKm float64
	TaperFromKm float64
	TaperToKm   float64
	TaperRate   float64
	DailyCap    int64

	// Flag multipliers applied to the day's points (0 zeroes them).
	FactorTeleport    float64
	FactorRollback    float64
	FactorMismatch    float64
	FactorMultiDevice float64
	FactorTooRegular  float64
}

// DefaultRules are the cited defaults of docs/scoring.md.
func DefaultRules() Rules {
	return Rules{
		Version:          "2026.12-2",
		HarshBrakeG:      0.40,
		HarshAccelG:      0.35,
		HarshCornerG:     0.40,
		HarshHysteresis:  0.17,
		HarshMinDuration: 100 * time.Millisecond,
		HarshMinKmh:      10,
		CornerMinKmh:     30,
		SampleHold:       time.Second,

		DefaultLimitKmh:   120,
		SpeedTolerancePct: 10,
		SpeedToleranceKmh: 3,
		SpeedMinDuration:  10 * time.Second,

		MovingKmh:    5,
		MaxGap:       time.Minute,
		NightEndHour: 5,
		FatigueAfter: 4 * time.Hour,
		FatigueBreak: 20 * time.Minute,

		MaxHDOP:           5,
		StaticKmh:         3,
		TeleportKmh:       300,
		TeleportReanchor:  3,
		TeleportFlagCount: 3,

		GapOdoSlackM:    200,
		GapOdoMaxFactor: 1.5,
		GapOdoMaxKmh:    160,

		OdoRollbackKm:      0.1,
		OdoCheckMinKm:      5,
		OdoMismatchPct:     25,
		OdoMismatchAbsKm:   2,
		RegularMinSamples:  600,
		RegularTimeShare:   0.9,
		RegularSpeedShare:  0.5,
		RegularPosShare:    0.5,
		RegularSpeedTolKmh: 0.01,
		RegularPosTolM:     0.2,

		RateFloorKm:       25,
		WeightBrake:       4,
		WeightAccel:       3,
		WeightCorner:      3,
		WeightSpeedingPct: 1,
		WeightNightPct:    0.2,
		WeightFatigue:     10,

		PointsPerKm: 10,
		TaperFromKm: 100,
		TaperToKm:   250,
		TaperRate:   0.5,
		DailyCap:    1500,

		FactorTeleport:    0.5,
		FactorRollback:    0,
		FactorMismatch:    0.5,
		FactorMultiDevice: 0,
		FactorTooRegular:  0,
	}
}

// Validate reports the first rule that makes no sense.
func (r *Rules) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(r.Version != "", "rules: empty Version")
	for name, g := range map[string]float64{"HarshBrakeG": r.HarshBrakeG, "HarshAccelG": r.HarshAccelG, "HarshCornerG": r.HarshCornerG} {
		check(g > 0 && g < 5, "rules: %s %v not in (0, 5)", name, g)
	}
	check(r.HarshHysteresis >= 0 && r.HarshHysteresis < 1, "rules: HarshHysteresis %v not in [0, 1)", r.HarshHysteresis)
	check(r.HarshMinDuration >= 0, "rules: negative HarshMinDuration")
	check(r.SampleHold > 0 && r.SampleHold <= r.MaxGap, "rules: SampleHold %v must be in (0, MaxGap]", r.SampleHold)
	check(r.DefaultLimitKmh > 0, "rules: DefaultLimitKmh must be > 0")
	check(r.SpeedTolerancePct >= 0 && r.SpeedToleranceKmh >= 0, "rules: negative speed tolerance")
	check(r.SpeedMinDuration >= 0, "rules: negative SpeedMinDuration")
	check(r.MovingKmh > 0, "rules: MovingKmh must be > 0")
	check(r.MaxGap > 0 && r.MaxGap < time.Hour, "rules: MaxGap %v not in (0, 1h)", r.MaxGap)
	check(r.NightEndHour >= 0 && r.NightEndHour <= 12, "rules: NightEndHour %d not in 0..12", r.NightEndHour)
	check(r.FatigueAfter > 0 && r.FatigueBreak > 0, "rules: FatigueAfter and FatigueBreak must be > 0")
	check(r.MaxHDOP >= 0, "rules: negative MaxHDOP")
	check(r.TeleportKmh > 0, "rules: TeleportKmh must be > 0")
	check(r.TeleportReanchor >= 1 && r.TeleportReanchor < 255, "rules: TeleportReanchor %d not in 1..254", r.TeleportReanchor)
	check(r.TeleportFlagCount >= 1, "rules: TeleportFlagCount must be >= 1")
	check(r.OdoRollbackKm >= 0 && r.OdoCheckMinKm >= 0 && r.OdoMismatchPct >= 0 && r.OdoMismatchAbsKm >= 0, "rules: negative odometer tolerance")
	check(r.GapOdoSlackM >= 0 && r.GapOdoMaxFactor >= 1 && r.GapOdoMaxKmh > 0, "rules: gap odometer check needs GapOdoSlackM >= 0, GapOdoMaxFactor >= 1, GapOdoMaxKmh > 0")
	check(r.RegularMinSamples >= 2, "rules: RegularMinSamples must be >= 2")
	for name, v := range map[string]float64{"RegularTimeShare": r.RegularTimeShare, "RegularSpeedShare": r.RegularSpeedShare, "RegularPosShare": r.RegularPosShare} {
		check(v > 0 && v <= 1, "rules: %s %v not in (0, 1]", name, v)
	}
	check(r.RegularSpeedTolKmh >= 0 && r.RegularPosTolM >= 0, "rules: negative regularity tolerance")
	check(r.RateFloorKm > 0, "rules: RateFloorKm must be > 0")
	for name, w := range map[string]float64{"WeightBrake": r.WeightBrake, "WeightAccel": r.WeightAccel, "WeightCorner": r.WeightCorner,
		"WeightSpeedingPct": r.WeightSpeedingPct, "WeightNightPct": r.WeightNightPct, "WeightFatigue": r.WeightFatigue} {
		check(w >= 0, "rules: negative %s", name)
	}
	check(r.PointsPerKm >= 0, "rules: negative PointsPerKm")
	check(r.TaperFromKm >= 0 && r.TaperToKm >= r.TaperFromKm, "rules: taper must satisfy 0 <= TaperFromKm <= TaperToKm")
	check(r.TaperRate >= 0 && r.TaperRate <= 1, "rules: TaperRate %v not in [0, 1]", r.TaperRate)
	check(r.DailyCap >= 0, "rules: negative DailyCap")
	for name, f := range map[string]float64{"FactorTeleport": r.FactorTeleport, "FactorRollback": r.FactorRollback,
		"FactorMismatch": r.FactorMismatch, "FactorMultiDevice": r.FactorMultiDevice, "FactorTooRegular": r.FactorTooRegular} {
		check(f >= 0 && f <= 1, "rules: %s %v not in [0, 1]", name, f)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return nil
}
