package owner

import (
	"encoding/json"
	"math"
	"strconv"
	"sync"
	"time"
)

// The largest answers (a track's points, a month of reports) write their
// own JSON: byte for byte what encoding/json's Encoder writes for the same
// value (FuzzAppendJSON and TestAppendJSON compare them), without its
// reflection, which was ~90 % of a request's CPU when answered from the
// view (docs/scale.md, "The owner view"). A value it cannot write the same
// way (a NaN or infinite float, a year outside 0-9999) reports false and
// goes through encoding/json, which then answers as before.

// jsonAppender is an answer that appends its JSON encoding (no newline).
type jsonAppender interface {
	appendJSON(b []byte) ([]byte, bool)
}

var jsonBufs = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// appendJSONString appends s as encoding/json writes it (HTML-escaped,
// invalid UTF-8 replaced): plain ASCII directly, anything else through
// encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendJSONFloat is encoding/json's floatEncoder.
func appendJSONFloat(b []byte, f float64, bits int) ([]byte, bool) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return b, false
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	b = strconv.AppendFloat(b, f, format, -1, bits)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}

// appendJSONTime is time.Time's MarshalJSON.
func appendJSONTime(b []byte, t time.Time) ([]byte, bool) {
	if y := t.Year(); y < 0 || y > 9999 {
		return b, false
	}
	if _, off := t.Zone(); off <= -24*3600 || off >= 24*3600 {
		return b, false
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), true
}

func appendJSONStrings(b []byte, a []string) []byte {
	if a == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range a {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

func (t Track) appendJSON(b []byte) ([]byte, bool) {
	ok, ok2 := true, true
	b = append(b, `{"vehicle_id":`...)
	b = appendJSONString(b, t.VehicleID)
	b = append(b, `,"from":`...)
	b, ok = appendJSONTime(b, t.From)
	b = append(b, `,"to":`...)
	b, ok2 = appendJSONTime(b, t.To)
	ok = ok && ok2
	b = append(b, `,"events_in_range":`...)
	b = strconv.AppendUint(b, t.InRange, 10)
	b = append(b, `,"downsampled":`...)
	b = strconv.AppendBool(b, t.Downsampled)
	if t.BucketMs != 0 {
		b = append(b, `,"bucket_ms":`...)
		b = strconv.AppendInt(b, t.BucketMs, 10)
	}
	b = append(b, `,"points":`...)
	if t.Points == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, p := range t.Points {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"time":`...)
			b, ok2 = appendJSONTime(b, p.Time)
			ok = ok && ok2
			b = append(b, `,"lat":`...)
			b, ok2 = appendJSONFloat(b, p.Lat, 64)
			ok = ok && ok2
			b = append(b, `,"lon":`...)
			b, ok2 = appendJSONFloat(b, p.Lon, 64)
			ok = ok && ok2
			b = append(b, `,"speed_kmh":`...)
			b, ok2 = appendJSONFloat(b, float64(p.SpeedKmh), 32)
			ok = ok && ok2
			b = append(b, `,"heading_deg":`...)
			b, ok2 = appendJSONFloat(b, float64(p.HeadingDeg), 32)
			ok = ok && ok2
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if t.NextCursor != "" {
		b = append(b, `,"next_cursor":`...)
		b = appendJSONString(b, t.NextCursor)
	}
	return append(b, '}'), ok
}

func (rs Reports) appendJSON(b []byte) ([]byte, bool) {
	ok, ok2 := true, true
	b = append(b, `{"vehicle_id":`...)
	b = appendJSONString(b, rs.VehicleID)
	b = append(b, `,"from":`...)
	b = appendJSONString(b, rs.From)
	b = append(b, `,"to":`...)
	b = appendJSONString(b, rs.To)
	b = append(b, `,"reports":`...)
	if rs.Reports == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range rs.Reports {
			if i > 0 {
				b = append(b, ',')
			}
			b, ok2 = rs.Reports[i].appendJSON(b)
			ok = ok && ok2
		}
		b = append(b, ']')
	}
	if rs.NextCursor != "" {
		b = append(b, `,"next_cursor":`...)
		b = appendJSONString(b, rs.NextCursor)
	}
	return append(b, '}'), ok
}

func (x *Report) appendJSON(b []byte) ([]byte, bool) {
	ok := true
	f := func(name string, v float64, bits int) {
		b = append(b, name...)
		var o bool
		b, o = appendJSONFloat(b, v, bits)
		ok = ok && o
	}
	u := func(name string, v uint64) {
		b = append(b, name...)
		b = strconv.AppendUint(b, v, 10)
	}
	tm := func(name string, t time.Time) {
		b = append(b, name...)
		var o bool
		b, o = appendJSONTime(b, t)
		ok = ok && o
	}
	b = append(b, `{"date":`...)
	b = appendJSONString(b, x.Date)
	b = append(b, `,"score_id":`...)
	b = appendJSONString(b, x.ScoreID)
	b = append(b, `,"tz":`...)
	b = appendJSONString(b, x.TZ)
	tm(`,"window_start":`, x.WindowStart)
	tm(`,"window_end":`, x.WindowEnd)
	b = append(b, `,"config_version":`...)
	b = appendJSONString(b, x.ConfigVersion)
	f(`,"score":`, float64(x.Score), 32)
	b = append(b, `,"points":`...)
	b = strconv.AppendInt(b, x.Points, 10)
	f(`,"distance_km":`, x.DistanceKm, 64)
	f(`,"gps_km":`, x.GPSKm, 64)
	f(`,"odometer_km":`, x.OdometerKm, 64)
	u(`,"driving_s":`, uint64(x.DrivingS))
	u(`,"harsh_brake":`, uint64(x.HarshBrake))
	u(`,"harsh_accel":`, uint64(x.HarshAccel))
	u(`,"harsh_corner":`, uint64(x.HarshCorner))
	u(`,"speeding_s":`, uint64(x.SpeedingS))
	u(`,"night_s":`, uint64(x.NightS))
	u(`,"fatigue_events":`, uint64(x.FatigueEvents))
	u(`,"events":`, x.Events)
	if x.LateEvents != nil {
		u(`,"late_events":`, *x.LateEvents)
	}
	u(`,"gps_jumps":`, uint64(x.GPSJumps))
	u(`,"hdop_rejected":`, x.HDOPRejected)
	u(`,"odometer_rollbacks":`, uint64(x.OdometerRollbacks))
	b = append(b, `,"flags":`...)
	b = appendJSONStrings(b, x.Flags)
	b = append(b, `,"flag_reasons":`...)
	b = appendJSONStrings(b, x.FlagReasons)
	u(`,"revision":`, uint64(x.Revision))
	if x.LateAdded != 0 {
		u(`,"late_added":`, x.LateAdded)
	}
	if x.RevisionReason != "" {
		b = append(b, `,"revision_reason":`...)
		b = appendJSONString(b, x.RevisionReason)
	}
	return append(b, '}'), ok
}
