package campaign

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/scoring"
)

// Var is one variable a rule may use: its name and CEL type.
type Var struct{ Name, Type string }

// Vars are the variables of VarsVersion, in the order of the canonical
// inputs. Changing them is a new VarsVersion.
var Vars = []Var{
	{"points", "int"},            // the day's credited points (DailyScore.points)
	{"score", "double"},          // behaviour score 0..100
	{"distance_km", "double"},    // rewarded distance basis
	{"gps_km", "double"},         //
	{"odometer_km", "double"},    //
	{"driving_s", "int"},         //
	{"harsh_brake", "int"},       //
	{"harsh_accel", "int"},       //
	{"harsh_corner", "int"},      //
	{"speeding_s", "int"},        //
	{"night_s", "int"},           //
	{"fatigue_events", "int"},    //
	{"events", "int"},            //
	{"flags", "list(string)"},    // anti-fraud codes, sorted
	{"date", "string"},           // local date yyyy-mm-dd
	{"tz", "string"},             // IANA zone of the day
	{"config_version", "string"}, // scoring rules version
	{"weekday", "int"},           // ISO weekday of date: 1 Monday .. 7 Sunday
	{"region", "string"},         // coarse region of the day's first fix (Region), "" if unknown
	{"tenure_days", "int"},       // days from the vehicle's first credit in the book to date
}

// Input bounds: the static cost estimate assumes them, and inputs beyond
// them are refused (that day earns no bonus).
const (
	MaxFlags       = 16
	MaxStringBytes = 64
)

// Inputs are the values of Vars for one vehicle-day: everything a rule
// sees. Their canonical bytes go into the bonus entry, so the bonus is
// recomputed from the entry and the rule alone.
type Inputs struct {
	Points                                                   int64
	Score, DistanceKm, GpsKm, OdometerKm                     float64
	DrivingS, HarshBrake, HarshAccel, HarshCorner, SpeedingS int64
	NightS, FatigueEvents, Events                            int64
	Flags                                                    []string
	Date, TZ, ConfigVersion                                  string
	Weekday                                                  int64
	Region                                                   string
	TenureDays                                               int64
}

// ErrInputs marks inputs that are refused.
var ErrInputs = errors.New("invalid campaign inputs")

// FromScore makes the inputs of a daily score, given the date of the
// vehicle's first credit in the book (firstCredit, "" if none: tenure 0).
// The region is the score's (empty if the score has none).
func FromScore(s *avro.DailyScore, firstCredit string) (Inputs, error) {
	in := Inputs{
		Points: s.Points, Score: s.Score, DistanceKm: s.DistanceKm, GpsKm: s.GpsKm, OdometerKm: s.OdometerKm,
		DrivingS: s.DrivingS, HarshBrake: int64(s.HarshBrake), HarshAccel: int64(s.HarshAccel), HarshCorner: int64(s.HarshCorner),
		SpeedingS: s.SpeedingS, NightS: s.NightS, FatigueEvents: int64(s.FatigueEvents), Events: s.Events,
		Date: s.Date, TZ: s.TZ, ConfigVersion: s.ConfigVersion, Region: s.Region,
	}
	if len(s.Flags) > 0 {
		in.Flags = slices.Compact(slices.Sorted(slices.Values(s.Flags)))
	}
	day, err := ParseDate(s.Date)
	if err != nil {
		return in, fmt.Errorf("%w: %v", ErrInputs, err)
	}
	in.Weekday = Weekday(day)
	in.TenureDays = TenureDays(firstCredit, s.Date)
	return in, in.Validate()
}

// Weekday is the ISO weekday (1 Monday .. 7 Sunday) of a day number.
func Weekday(day int64) int64 {
	return (day+3)%7 + 1 // 1970-01-01 was a Thursday (4)
}

// TenureDays is the number of days from first to date (both yyyy-mm-dd),
// 0 if first is empty, invalid or later.
func TenureDays(first, date string) int64 {
	f, err1 := ParseDate(first)
	d, err2 := ParseDate(date)
	if err1 != nil || err2 != nil || d < f {
		return 0
	}
	return d - f
}

// Region is the coarse region code of a position in degrees
// (scoring.Region of the position rounded to 1e-7 degrees, as scoring
// keeps fixes): "N31E121" for latitude in [31, 32) and longitude in
// [121, 122). It names an area of about 100 km, never a position.
func Region(lat, lon float64) string {
	if !(lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180) {
		return ""
	}
	return scoring.Region(int32(math.Round(lat*1e7)), int32(math.Round(lon*1e7)))
}

// Validate checks the inputs' bounds.
func (in *Inputs) Validate() error {
	if len(in.Flags) > MaxFlags {
		return fmt.Errorf("%d flags, at most %d: %w", len(in.Flags), MaxFlags, ErrInputs)
	}
	for _, s := range append([]string{in.Date, in.TZ, in.ConfigVersion, in.Region}, in.Flags...) {
		if len(s) > MaxStringBytes {
			return fmt.Errorf("string of %d bytes, at most %d: %w", len(s), MaxStringBytes, ErrInputs)
		}
	}
	for _, f := range [...]float64{in.Score, in.DistanceKm, in.GpsKm, in.OdometerKm} {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("non-finite number: %w", ErrInputs)
		}
	}
	if in.Weekday < 1 || in.Weekday > 7 || in.TenureDays < 0 {
		return fmt.Errorf("weekday %d, tenure %d: %w", in.Weekday, in.TenureDays, ErrInputs)
	}
	return nil
}

// inputsVersion is the first byte of canonical inputs.
const inputsVersion = 1

// Encode is the canonical encoding of the inputs: 0x01, then each of Vars
// in order, an int as 8 bytes big-endian, a double as its IEEE 754 bits
// big-endian, a string as a 4-byte length then the bytes, a list as a
// 4-byte count then each string.
func (in *Inputs) Encode() []byte {
	b := make([]byte, 0, 256)
	b = append(b, inputsVersion)
	i64 := func(v int64) { b = binary.BigEndian.AppendUint64(b, uint64(v)) }
	f64 := func(v float64) { b = binary.BigEndian.AppendUint64(b, math.Float64bits(v)) }
	i64(in.Points)
	f64(in.Score)
	f64(in.DistanceKm)
	f64(in.GpsKm)
	f64(in.OdometerKm)
	for _, v := range [...]int64{in.DrivingS, in.HarshBrake, in.HarshAccel, in.HarshCorner, in.SpeedingS, in.NightS, in.FatigueEvents, in.Events} {
		i64(v)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(in.Flags)))
	for _, f := range in.Flags {
		b = appendStr(b, f)
	}
	b = appendStr(b, in.Date)
	b = appendStr(b, in.TZ)
	b = appendStr(b, in.ConfigVersion)
	i64(in.Weekday)
	b = appendStr(b, in.Region)
	i64(in.TenureDays)
	return b
}

// DecodeInputs parses canonical inputs; it refuses anything Encode would
// not produce byte for byte.
func DecodeInputs(b []byte) (Inputs, error) {
	r := reader{b: b}
	var in Inputs
	if r.byte() != inputsVersion {
		return in, fmt.Errorf("inputs version: %w", ErrInputs)
	}
	i64 := func() int64 { return int64(r.u64()) }
	f64 := func() float64 { return math.Float64frombits(r.u64()) }
	in.Points = i64()
	in.Score, in.DistanceKm, in.GpsKm, in.OdometerKm = f64(), f64(), f64(), f64()
	in.DrivingS, in.HarshBrake, in.HarshAccel, in.HarshCorner = i64(), i64(), i64(), i64()
	in.SpeedingS, in.NightS, in.FatigueEvents, in.Events = i64(), i64(), i64(), i64()
	n := r.u32()
	if n > MaxFlags {
		return in, fmt.Errorf("%d flags: %w", n, ErrInputs)
	}
	for range n {
		in.Flags = append(in.Flags, r.str())
	}
	in.Date, in.TZ, in.ConfigVersion = r.str(), r.str(), r.str()
	in.Weekday = i64()
	in.Region = r.str()
	in.TenureDays = i64()
	if r.err != nil || len(r.b) != 0 {
		return in, fmt.Errorf("inputs truncated or trailing bytes: %w", ErrInputs)
	}
	if err := in.Validate(); err != nil {
		return in, err
	}
	if string(in.Encode()) != string(b) {
		return in, fmt.Errorf("inputs not canonical: %w", ErrInputs)
	}
	return in, nil
}

// dayOf is the day number of a date the inputs hold (valid by Validate's
// callers).
func dayOf(date string) int64 {
	d, _ := ParseDate(date)
	return d
}
