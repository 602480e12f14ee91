package fleet

// Harsh-event thresholds the ground truth counts with: minecart's scoring
// defaults (see /work/shared/field-notes.md), with the usual speed gates.
const (
	G               = 9.80665 // standard gravity, m/s²
	HarshAccelMS2   = 0.35 * G
	HarshBrakeMS2   = 0.40 * G
	HarshCornerMS2  = 0.40 * G
	harshMinKmh     = 10 // no accel/brake events below
	cornerMinKmh    = 30 // no cornering events below
	nightEndHour    = 5  // night is 00:00-05:00 local
	fatigueBreakSec = 15 * 60
)

// DayTruth is what really happened to one vehicle on one local day, as the
// simulator knows it: what a correct pipeline should find (or, for
// fraudulent boxes, what it should not believe). Every field is computed
// from the samples whose nominal time falls in the day.
type DayTruth struct {
	VehicleID string
	DeviceID  string
	Day       int    // 0-based day of the simulation
	Date      string // local date, YYYY-MM-DD
	Profile   Profile
	Fraud     Fraud

	Events int // events emitted (trip samples and parked heartbeats)
	Trips  int // trips that started this day

	DistanceKm float64 // distance the vehicle really moved
	// PowerLossS is driving time an honest box was off (no events; the
	// vehicle moved on): the honest "power loss" edge case. PowerLossKm is
	// the distance moved meanwhile (in DistanceKm).
	PowerLossS, PowerLossKm float64
	OdometerKm              float64 // last minus first reported odometer reading (negative after a rollback)
	GPSKm                   float64 // great-circle length of the reported track, consecutive samples
	NightKm                 float64 // distance moved 00:00-05:00 local

	EngineSeconds   float64 // sampled time with the engine on
	MovingSeconds   float64 // sampled time with speed > 0
	SpeedingSeconds float64 // sampled time with reported speed above a known limit
	MaxSpeedKmh     float64 // highest reported speed
	LongestDriveSec float64 // longest driving span without a 15-minute break, up to this day's samples

	// Episodes (runs of consecutive samples) over the harsh thresholds in
	// the reported accelerations, with the speed gates.
	HarshAccel, HarshBrake, HarshCorner int

	Rollbacks  int      // FraudRollback: odometer wound back this day
	Teleports  int      // FraudTeleport: reported position jumps this day
	FaultCodes []string // fault codes reported this day
}
