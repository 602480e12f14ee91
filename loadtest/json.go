package loadtest

import (
	"strconv"

	"github.com/minecart/minecart/services/telemetry"
)

// appendJSONBatch appends events as the gateway's JSON batch body, the
// format telemetry.DecodeJSON reads (field names of the Avro schema). It
// writes the same values as telemetry.EncodeJSON several times faster
// (measured in BenchmarkJSONEncode), so that the load generator, not the
// gateway, is never what a load test measures. TestAppendJSONBatch checks
// DecodeJSON gives back the events exactly.
func appendJSONBatch(b []byte, events []telemetry.Event) []byte {
	b = append(b, `{"events":[`...)
	for i := range events {
		e := &events[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"event_id":`...)
		b = appendJSONString(b, e.EventID)
		b = append(b, `,"device_id":`...)
		b = appendJSONString(b, e.DeviceID)
		b = append(b, `,"vehicle_id":`...)
		b = appendJSONString(b, e.VehicleID)
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, e.Seq, 10)
		b = append(b, `,"time_ms":`...)
		b = strconv.AppendInt(b, e.TimeMs, 10)
		b = append(b, `,"tz":`...)
		b = appendJSONString(b, e.TZ)
		b = appendNum(b, `,"lat":`, e.Lat)
		b = appendNum(b, `,"lon":`, e.Lon)
		b = appendNum(b, `,"hdop":`, e.HDOP)
		b = appendNum(b, `,"speed_kmh":`, e.SpeedKmh)
		b = appendNum(b, `,"heading_deg":`, e.HeadingDeg)
		b = appendNum(b, `,"accel_lon_ms2":`, e.AccelLonMS2)
		b = appendNum(b, `,"accel_lat_ms2":`, e.AccelLatMS2)
		b = appendNum(b, `,"speed_limit_kmh":`, e.SpeedLimitKmh)
		b = appendNum(b, `,"odometer_km":`, e.OdometerKm)
		b = append(b, `,"engine_on":`...)
		b = strconv.AppendBool(b, e.EngineOn)
		b = appendNum(b, `,"fuel_pct":`, e.FuelPct)
		b = appendNum(b, `,"battery_v":`, e.BatteryV)
		b = appendNum(b, `,"coolant_c":`, e.CoolantC)
		if len(e.FaultCodes) > 0 {
			b = append(b, `,"fault_codes":[`...)
			for k, c := range e.FaultCodes {
				if k > 0 {
					b = append(b, ',')
				}
				b = appendJSONString(b, c)
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// appendNum writes key and x in the shortest form that reads back as x
// (NaN and infinities, which JSON cannot hold, never come from the
// simulator; they would be refused by the gateway as bad JSON).
func appendNum(b []byte, key string, x float64) []byte {
	b = append(b, key...)
	return strconv.AppendFloat(b, x, 'g', -1, 64)
}

const hexDigits = "0123456789abcdef"

// appendJSONString writes s as a JSON string, escaping quotes, backslashes
// and control characters.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
