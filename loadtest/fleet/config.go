// Package fleet is a deterministic, seeded simulator of a fleet of connected
// vehicles: drivers of different profiles (calm, average, aggressive and
// fraudulent) make realistic trips around a city, and their boxes sample
// position, speed, acceleration, odometer and health at 1 Hz while driving
// and send a heartbeat while parked. It emits telemetry.Event values in
// time-ordered chunks, so a fleet of any size streams in bounded memory, and
// it reports the ground truth of each vehicle-day (distance driven, profile,
// fraud) for tests. It is pure: no I/O, no clock, no global state. The same
// Config always yields byte-identical events, whatever the number of workers
// and however goroutines are scheduled.
package fleet

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Profile is a driver's style.
type Profile uint8

// The driver profiles.
const (
	Calm       Profile = iota // gentle acceleration and braking, at or below the limits
	Average                   // the typical driver
	Aggressive                // hard launches and braking, fast corners, speeding, night driving
	Fraudulent                // a box that lies; see Fraud for how
)

var profileNames = [...]string{"calm", "average", "aggressive", "fraudulent"}

func (p Profile) String() string {
	if int(p) < len(profileNames) {
		return profileNames[p]
	}
	return fmt.Sprintf("profile(%d)", p)
}

// Fraud is how a fraudulent vehicle's box lies.
type Fraud uint8

// The kinds of fraud. Honest vehicles have FraudNone.
const (
	FraudNone Fraud = iota
	// FraudSynthetic is a generated or replayed trace: timestamps on exact
	// whole intervals, no GPS or sensor noise, constant HDOP, and the same
	// trips (route, speeds, times of day) every day.
	FraudSynthetic
	// FraudTeleport: the reported position jumps kilometres between two
	// consecutive samples, during trips and between them.
	FraudTeleport
	// FraudRollback: the odometer is wound back by hundreds to thousands of
	// kilometres between two trips, once a day.
	FraudRollback
	// FraudInflated: odometer and reported speed run 40-100 % faster than
	// the vehicle moves (the GPS track shows the real distance).
	FraudInflated
)

var fraudNames = [...]string{"none", "synthetic", "teleport", "rollback", "inflated"}

func (f Fraud) String() string {
	if int(f) < len(fraudNames) {
		return fraudNames[f]
	}
	return fmt.Sprintf("fraud(%d)", f)
}

// Mix is the share of each profile in the fleet; the shares are relative
// (they need not sum to 1).
type Mix struct {
	Calm, Average, Aggressive, Fraudulent float64
}

// DefaultMix is the profile mix of New when Config.Mix is zero.
var DefaultMix = Mix{Calm: 0.30, Average: 0.42, Aggressive: 0.20, Fraudulent: 0.08}

// LatLon is a WGS84 position in degrees.
type LatLon struct{ Lat, Lon float64 }

// Shanghai is the default city centre (People's Square).
var Shanghai = LatLon{Lat: 31.2304, Lon: 121.4737}

// Config describes one simulation. The zero values of optional fields take
// the defaults shown.
type Config struct {
	Seed     uint64    // everything is derived from it
	Vehicles int       // fleet size, >= 1
	Days     int       // simulated local days, >= 1
	Start    time.Time // its calendar date (year, month, day as given) is the first local day
	TZ       string    // IANA zone of the vehicles; default "Asia/Shanghai"
	Center   LatLon    // city centre; default Shanghai
	Mix      Mix       // profile shares; default DefaultMix

	// SampleInterval is the sampling period while the engine runs; default
	// 1 s. Below 1 s it must divide 1 s; above, be whole seconds.
	SampleInterval time.Duration
	// ParkedInterval is the heartbeat period while parked; default 30 min,
	// negative for none.
	ParkedInterval time.Duration
	// Window is the time span of one chunk; default 10 min. It must divide
	// 24 h. It changes how events are grouped, never the events.
	Window time.Duration
	// ChunkVehicles caps the vehicles per chunk (a window's events are cut
	// into several chunks at vehicle boundaries); default 500.
	ChunkVehicles int
	// Workers is how many goroutines generate a chunk; default 1. It never
	// changes the output.
	Workers int
	// Cases are the shares of vehicle-days with an honest edge case or a
	// fraud class that VehicleDays applies (cases.go); zero: none. They
	// change nothing in Chunks, Deliveries or Vehicle.
	Cases CaseMix
}

func (c Config) withDefaults() Config {
	if c.TZ == "" {
		c.TZ = "Asia/Shanghai"
	}
	if c.Center == (LatLon{}) {
		c.Center = Shanghai
	}
	if c.Mix == (Mix{}) {
		c.Mix = DefaultMix
	}
	if c.SampleInterval == 0 {
		c.SampleInterval = time.Second
	}
	if c.ParkedInterval == 0 {
		c.ParkedInterval = 30 * time.Minute
	}
	if c.Window == 0 {
		c.Window = 10 * time.Minute
	}
	if c.ChunkVehicles == 0 {
		c.ChunkVehicles = 500
	}
	if c.Workers == 0 {
		c.Workers = 1
	}
	return c
}

// Validate reports the first invalid field, after applying defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Vehicles < 1:
		return errors.New("fleet: Vehicles must be >= 1")
	case c.Days < 1:
		return errors.New("fleet: Days must be >= 1")
	case c.Start.IsZero():
		return errors.New("fleet: Start is required")
	case c.Center.Lat < -80 || c.Center.Lat > 80 || c.Center.Lon < -180 || c.Center.Lon > 180:
		return fmt.Errorf("fleet: Center %v out of range (|lat| <= 80)", c.Center)
	case c.Mix.Calm < 0 || c.Mix.Average < 0 || c.Mix.Aggressive < 0 || c.Mix.Fraudulent < 0 ||
		c.Mix.Calm+c.Mix.Average+c.Mix.Aggressive+c.Mix.Fraudulent <= 0:
		return fmt.Errorf("fleet: Mix %+v: shares must be >= 0 and not all 0", c.Mix)
	case c.SampleInterval < time.Millisecond || c.SampleInterval%time.Millisecond != 0:
		return fmt.Errorf("fleet: SampleInterval %v must be whole milliseconds", c.SampleInterval)
	case c.SampleInterval < time.Second && time.Second%c.SampleInterval != 0:
		return fmt.Errorf("fleet: SampleInterval %v must divide 1s", c.SampleInterval)
	case c.SampleInterval > time.Second && c.SampleInterval%time.Second != 0:
		return fmt.Errorf("fleet: SampleInterval %v must be whole seconds", c.SampleInterval)
	case c.SampleInterval > time.Minute:
		return fmt.Errorf("fleet: SampleInterval %v above 1m", c.SampleInterval)
	case c.ParkedInterval > 0 && (c.ParkedInterval < time.Second || c.ParkedInterval%time.Second != 0):
		return fmt.Errorf("fleet: ParkedInterval %v must be whole seconds", c.ParkedInterval)
	case c.Window < time.Second || (24*time.Hour)%c.Window != 0:
		return fmt.Errorf("fleet: Window %v must divide 24h", c.Window)
	case c.ChunkVehicles < 1:
		return errors.New("fleet: ChunkVehicles must be >= 1")
	case c.Workers < 1:
		return errors.New("fleet: Workers must be >= 1")
	case math.IsNaN(c.Center.Lat) || math.IsNaN(c.Center.Lon):
		return errors.New("fleet: Center is NaN")
	}
	sum := 0.0
	for k, x := range c.Cases {
		if k == int(CaseNone) {
			continue
		}
		if !(x >= 0 && x <= 1) {
			return fmt.Errorf("fleet: Cases %v: shares must be in [0, 1]", c.Cases)
		}
		sum += x
	}
	if sum > 1 {
		return fmt.Errorf("fleet: Cases %v: shares sum above 1", c.Cases)
	}
	if _, err := time.LoadLocation(c.TZ); err != nil {
		return fmt.Errorf("fleet: TZ %q: %w", c.TZ, err)
	}
	return nil
}
