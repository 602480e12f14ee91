package telemetry

import (
	"errors"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	_ "time/tzdata" // zone names are checked against the same database everywhere
)

// ValidateConfig sets the physical limits and time bounds of Validate. The
// zero value of a field means its default.
type ValidateConfig struct {
	MaxSkew     time.Duration // how far in the future an event may be (default 5m: box clock drift)
	MaxAge      time.Duration // how far in the past (0: no horizon)
	MaxSpeedKmh float64       // default 300
	MaxAccelMS2 float64       // |(lon, lat)| acceleration, default 29.43 (3 g: beyond any tyre grip)
	Limits      Limits        // field sizes
}

// Defaults returns c with every zero field set to its default.
func (c ValidateConfig) Defaults() ValidateConfig {
	if c.MaxSkew == 0 {
		c.MaxSkew = 5 * time.Minute
	}
	if c.MaxSpeedKmh == 0 {
		c.MaxSpeedKmh = 300
	}
	if c.MaxAccelMS2 == 0 {
		c.MaxAccelMS2 = 3 * 9.81
	}
	c.Limits = c.Limits.Defaults()
	return c
}

// defaulted reports whether Defaults would change nothing.
func (c *ValidateConfig) defaulted() bool {
	l := &c.Limits
	return c.MaxSkew != 0 && c.MaxSpeedKmh != 0 && c.MaxAccelMS2 != 0 &&
		l.MaxEvents != 0 && l.MaxIDLen != 0 && l.MaxTZLen != 0 && l.MaxFaultCodes != 0 && l.MaxFaultCodeLen != 0
}

// Validate reports bad bounds.
func (c ValidateConfig) Validate() error {
	if c.MaxSkew < 0 || c.MaxAge < 0 || c.MaxSpeedKmh < 0 || c.MaxAccelMS2 < 0 {
		return errors.New("telemetry validation bounds must not be negative")
	}
	return c.Limits.Validate()
}

// Validate checks one event against the schema's required fields and
// physical sense, relative to now. It returns an *Error with a reason code
// (the Code constants), or nil. It does not check what needs history (the
// odometer, duplicates): Dedup does.
func Validate(ev *Event, now time.Time, cfg ValidateConfig) error {
	if !cfg.defaulted() { // a stage passes its config defaulted once: no copy per event
		cfg = cfg.Defaults()
	}
	switch {
	case ev.DeviceID == "":
		return errorf(CodeMissingField, "device_id", "required")
	case ev.VehicleID == "":
		return errorf(CodeMissingField, "vehicle_id", "required")
	case ev.TZ == "":
		return errorf(CodeMissingField, "tz", "required")
	case ev.TimeMs == 0:
		return errorf(CodeMissingField, "time_ms", "required")
	}
	if err := checkFields(ev, cfg.Limits); err != nil {
		return err
	}
	if !allFinite(ev) {
		for _, f := range [...]struct {
			name string
			v    float64
		}{{"lat", ev.Lat}, {"lon", ev.Lon}, {"hdop", ev.HDOP}, {"speed_kmh", ev.SpeedKmh},
			{"heading_deg", ev.HeadingDeg}, {"accel_lon_ms2", ev.AccelLonMS2}, {"accel_lat_ms2", ev.AccelLatMS2},
			{"speed_limit_kmh", ev.SpeedLimitKmh}, {"odometer_km", ev.OdometerKm}, {"fuel_pct", ev.FuelPct},
			{"battery_v", ev.BatteryV}, {"coolant_c", ev.CoolantC}} {
			if math.IsNaN(f.v) || math.IsInf(f.v, 0) {
				return errorf(CodeNotFinite, f.name, "%v", f.v)
			}
		}
	}
	if !ValidTZ(ev.TZ) {
		return errorf(CodeBadTZ, "tz", "%q is not an IANA time zone", ev.TZ)
	}
	switch {
	case ev.Lat < -90 || ev.Lat > 90:
		return errorf(CodePosition, "lat", "%v outside -90..90", ev.Lat)
	case ev.Lon < -180 || ev.Lon > 180:
		return errorf(CodePosition, "lon", "%v outside -180..180", ev.Lon)
	case ev.Lat == 0 && ev.Lon == 0:
		return errorf(CodePositionZero, "lat", "0,0 is a box without a fix")
	case ev.SpeedKmh < 0 || ev.SpeedKmh > cfg.MaxSpeedKmh:
		return errorf(CodeSpeed, "speed_kmh", "%v outside 0..%v", ev.SpeedKmh, cfg.MaxSpeedKmh)
	case !accelWithin(ev.AccelLonMS2, ev.AccelLatMS2, cfg.MaxAccelMS2):
		return errorf(CodeAccel, "accel_lon_ms2", "|(%v, %v)| above %v m/s²", ev.AccelLonMS2, ev.AccelLatMS2, cfg.MaxAccelMS2)
	case ev.HeadingDeg < 0 || ev.HeadingDeg > 360:
		return errorf(CodeHeading, "heading_deg", "%v outside 0..360", ev.HeadingDeg)
	case ev.HDOP < 0 || ev.HDOP > 100:
		return errorf(CodeSensor, "hdop", "%v outside 0..100", ev.HDOP)
	case ev.SpeedLimitKmh < 0 || ev.SpeedLimitKmh > cfg.MaxSpeedKmh:
		return errorf(CodeSensor, "speed_limit_kmh", "%v outside 0..%v", ev.SpeedLimitKmh, cfg.MaxSpeedKmh)
	case ev.FuelPct != -1 && (ev.FuelPct < 0 || ev.FuelPct > 100):
		return errorf(CodeSensor, "fuel_pct", "%v outside 0..100 (or -1)", ev.FuelPct)
	case ev.BatteryV < 0 || ev.BatteryV > 60:
		return errorf(CodeSensor, "battery_v", "%v outside 0..60", ev.BatteryV)
	case ev.CoolantC != -273 && (ev.CoolantC < -60 || ev.CoolantC > 200):
		return errorf(CodeSensor, "coolant_c", "%v outside -60..200 (or -273)", ev.CoolantC)
	case ev.OdometerKm < 0 || ev.OdometerKm > 1e7:
		return errorf(CodeOdometerRange, "odometer_km", "%v outside 0..10,000,000", ev.OdometerKm)
	}
	for _, c := range ev.FaultCodes {
		if !validDTC(c) {
			return errorf(CodeBadFaultCode, "fault_codes", "%q is not a DTC like P0301", c)
		}
	}
	nowMs := now.UnixMilli()
	switch {
	case ev.TimeMs < minTimeMs:
		return errorf(CodeTimeRange, "time_ms", "%d is before 2000-01-01", ev.TimeMs)
	case ev.TimeMs > nowMs+cfg.MaxSkew.Milliseconds():
		return errorf(CodeFuture, "time_ms", "%s is %s ahead of now", time.UnixMilli(ev.TimeMs).UTC().Format(time.RFC3339Nano),
			time.Duration(ev.TimeMs-nowMs)*time.Millisecond)
	case cfg.MaxAge > 0 && ev.TimeMs < nowMs-cfg.MaxAge.Milliseconds():
		return errorf(CodeTooOld, "time_ms", "%s is older than %s", time.UnixMilli(ev.TimeMs).UTC().Format(time.RFC3339Nano), cfg.MaxAge)
	}
	return nil
}

// allFinite reports whether the twelve numbers Validate checks are all
// finite: x - x is +0 for a finite x and NaN for NaN or ±Inf, so the sum is
// 0 exactly when every one is finite (Validate then names the first that is
// not).
func allFinite(ev *Event) bool {
	s := (ev.Lat - ev.Lat) + (ev.Lon - ev.Lon) + (ev.HDOP - ev.HDOP) + (ev.SpeedKmh - ev.SpeedKmh) +
		(ev.HeadingDeg - ev.HeadingDeg) + (ev.AccelLonMS2 - ev.AccelLonMS2) + (ev.AccelLatMS2 - ev.AccelLatMS2) +
		(ev.SpeedLimitKmh - ev.SpeedLimitKmh) + (ev.OdometerKm - ev.OdometerKm) + (ev.FuelPct - ev.FuelPct) +
		(ev.BatteryV - ev.BatteryV) + (ev.CoolantC - ev.CoolantC)
	return s == 0
}

// accelWithin is !(math.Hypot(lon, lat) > max) for finite inputs, without
// the Hypot when the sum of squares is clearly below max² (its rounding is
// a few ulps; the margin, 1e-6 of max², is far above that).
func accelWithin(lon, lat, max float64) bool {
	if lon*lon+lat*lat < max*max*(1-1e-6) {
		return true
	}
	return !(math.Hypot(lon, lat) > max)
}

// Normalize puts a valid event in canonical form: heading in [0, 360),
// no negative zeros, fault codes upper-case. Times are UTC milliseconds and
// units canonical already; tz is kept as sent.
func Normalize(ev *Event) {
	if ev.HeadingDeg == 360 {
		ev.HeadingDeg = 0
	}
	for _, p := range [...]*float64{&ev.Lat, &ev.Lon, &ev.HDOP, &ev.SpeedKmh, &ev.HeadingDeg, &ev.AccelLonMS2,
		&ev.AccelLatMS2, &ev.SpeedLimitKmh, &ev.OdometerKm, &ev.BatteryV} {
		if *p == 0 {
			*p = 0 // -0 -> +0
		}
	}
	for i, c := range ev.FaultCodes {
		ev.FaultCodes[i] = upper(c)
	}
}

func upper(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= 'a' && s[i] <= 'z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'a' && b[j] <= 'z' {
					b[j] -= 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// validDTC accepts OBD-II trouble codes: P, C, B or U, four hex digits, and
// up to three more letters or digits (manufacturer sub-codes), either case.
func validDTC(c string) bool {
	if len(c) < 5 || len(c) > 8 {
		return false
	}
	switch c[0] {
	case 'P', 'C', 'B', 'U', 'p', 'c', 'b', 'u':
	default:
		return false
	}
	for i := 1; i < len(c); i++ {
		ch := c[i]
		hex := ch >= '0' && ch <= '9' || ch >= 'A' && ch <= 'F' || ch >= 'a' && ch <= 'f'
		alnum := hex || ch >= 'A' && ch <= 'Z' || ch >= 'a' && ch <= 'z'
		if i < 5 && !hex || !alnum {
			return false
		}
	}
	return true
}

// validZones caches zone names already found valid (a few hundred exist),
// each as a *string; invalid names are not cached, so the cache cannot
// grow without bound. lastZone is the last one found there: a task's
// events mostly repeat one zone, and comparing with it is cheaper than the
// map's hash (a new *string is stored only once per zone).
var (
	validZones sync.Map
	lastZone   atomic.Pointer[string]
)

// ValidTZ reports whether tz names an IANA time zone ("UTC" included;
// "Local" and "" are not zones of a vehicle).
func ValidTZ(tz string) bool {
	if p := lastZone.Load(); p != nil && *p == tz {
		return true
	}
	if v, ok := validZones.Load(tz); ok {
		lastZone.Store(v.(*string))
		return true
	}
	if tz == "" || tz == "Local" || len(tz) > 64 {
		return false
	}
	if _, err := time.LoadLocation(tz); err != nil {
		return false
	}
	z := strings.Clone(tz)
	validZones.Store(z, &z)
	return true
}
