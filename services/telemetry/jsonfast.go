package telemetry

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// decodeJSONFast is the gateway's JSON batch decoder: a hand-written strict
// parser for exactly the batch shape, ~10x faster than encoding/json and
// with the event count checked while parsing. It accepts a subset of what
// the encoding/json reference accepts (keys must match exactly, strings
// must be valid UTF-8) and yields the same events for it, which
// FuzzDecodeJSON checks.
// The events are appended to dst[:0] (a nil dst: a new slice).
func decodeJSONFast(dst []Event, b []byte, lim Limits) ([]Event, error) {
	d := jdec{b: b}
	var out []Event
	seen := false
	d.ws()
	d.expect('{')
	d.ws()
	if d.peek() == '}' {
		d.i++
	} else {
		for d.err == nil {
			key := d.key()
			d.ws()
			d.expect(':')
			d.ws()
			if string(key) != "events" {
				d.fail("json: unknown field %q", key)
				break
			}
			if seen {
				d.fail("json: duplicate field \"events\"")
				break
			}
			seen = true
			if cap(dst) == 0 {
				dst = make([]Event, 0, 64)
			}
			out = d.events(dst[:0], lim)
			d.ws()
			if d.peek() == ',' {
				d.i++
				d.ws()
				continue
			}
			d.expect('}')
			break
		}
	}
	d.ws()
	if d.err == nil && d.i != len(d.b) {
		d.fail("json: data after the batch object")
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(out) == 0 {
		return nil, errorf(CodeEmptyBatch, "events", "batch has no events")
	}
	for i := range out {
		if err := checkFields(&out[i], lim); err != nil {
			return nil, atIndex(i, err)
		}
	}
	return out, nil
}

type jdec struct {
	b   []byte
	i   int
	err error
	tmp []byte
}

func (d *jdec) fail(format string, args ...any) {
	if d.err == nil {
		d.err = errorf(CodeDecode, "", format, args...)
	}
}

func (d *jdec) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *jdec) peek() byte {
	if d.err != nil || d.i >= len(d.b) {
		return 0
	}
	return d.b[d.i]
}

func (d *jdec) expect(c byte) {
	if d.err != nil {
		return
	}
	if d.i >= len(d.b) || d.b[d.i] != c {
		d.fail("json: want %q at byte %d", c, d.i)
		return
	}
	d.i++
}

// null consumes a literal null if one is next.
func (d *jdec) null() bool {
	if d.err == nil && len(d.b)-d.i >= 4 && string(d.b[d.i:d.i+4]) == "null" {
		d.i += 4
		return true
	}
	return false
}

func (d *jdec) events(out []Event, lim Limits) []Event {
	if d.null() {
		return out[:0]
	}
	d.expect('[')
	d.ws()
	if d.peek() == ']' {
		d.i++
		return out
	}
	for d.err == nil {
		if len(out) >= lim.MaxEvents {
			d.err = errorf(CodeTooManyEvents, "events", "more than %d events", lim.MaxEvents)
			return out
		}
		out = append(out, Event{})
		if err := d.event(&out[len(out)-1]); err != nil {
			if d.err == nil {
				d.err = atIndex(len(out)-1, err)
			}
			return out
		}
		d.ws()
		if d.peek() == ',' {
			d.i++
			d.ws()
			continue
		}
		d.expect(']')
		break
	}
	return out
}

// event parses one event object; presence errors carry the field.
func (d *jdec) event(ev *Event) error {
	var seen uint8 // seq, time_ms, lat, lon
	ev.FuelPct, ev.CoolantC = -1, -273
	if d.null() {
		return errorf(CodeMissingField, "seq", "required")
	}
	d.expect('{')
	d.ws()
	if d.peek() == '}' {
		d.i++
	} else {
		for d.err == nil {
			key := d.key()
			d.ws()
			d.expect(':')
			d.ws()
			if d.err != nil {
				break
			}
			isNull := d.null()
			switch string(key) {
			case "event_id":
				ev.EventID = d.optStr(isNull, ev.EventID)
			case "device_id":
				ev.DeviceID = d.optStr(isNull, ev.DeviceID)
			case "vehicle_id":
				ev.VehicleID = d.optStr(isNull, ev.VehicleID)
			case "tz":
				ev.TZ = d.optStr(isNull, ev.TZ)
			case "seq":
				if isNull {
					seen &^= 1
				} else {
					ev.Seq, seen = d.uint(), seen|1
				}
			case "time_ms":
				if isNull {
					seen &^= 2
				} else {
					ev.TimeMs, seen = d.int(), seen|2
				}
			case "lat":
				if isNull {
					seen &^= 4
				} else {
					ev.Lat, seen = d.float(), seen|4
				}
			case "lon":
				if isNull {
					seen &^= 8
				} else {
					ev.Lon, seen = d.float(), seen|8
				}
			case "hdop":
				ev.HDOP = d.optFloat(isNull, ev.HDOP)
			case "speed_kmh":
				ev.SpeedKmh = d.optFloat(isNull, ev.SpeedKmh)
			case "heading_deg":
				ev.HeadingDeg = d.optFloat(isNull, ev.HeadingDeg)
			case "accel_lon_ms2":
				ev.AccelLonMS2 = d.optFloat(isNull, ev.AccelLonMS2)
			case "accel_lat_ms2":
				ev.AccelLatMS2 = d.optFloat(isNull, ev.AccelLatMS2)
			case "speed_limit_kmh":
				ev.SpeedLimitKmh = d.optFloat(isNull, ev.SpeedLimitKmh)
			case "odometer_km":
				ev.OdometerKm = d.optFloat(isNull, ev.OdometerKm)
			case "battery_v":
				ev.BatteryV = d.optFloat(isNull, ev.BatteryV)
			case "fuel_pct":
				if isNull {
					ev.FuelPct = -1
				} else {
					ev.FuelPct = d.float()
				}
			case "coolant_c":
				if isNull {
					ev.CoolantC = -273
				} else {
					ev.CoolantC = d.float()
				}
			case "engine_on":
				if !isNull {
					ev.EngineOn = d.bool()
				}
			case "fault_codes":
				if isNull {
					ev.FaultCodes = nil
				} else {
					ev.FaultCodes = d.strings(ev.FaultCodes[:0])
				}
			default:
				d.fail("json: unknown field %q", key)
			}
			d.ws()
			if d.peek() == ',' {
				d.i++
				d.ws()
				continue
			}
			d.expect('}')
			break
		}
	}
	if d.err != nil {
		return d.err
	}
	switch {
	case seen&1 == 0:
		return errorf(CodeMissingField, "seq", "required")
	case seen&2 == 0:
		return errorf(CodeMissingField, "time_ms", "required")
	case seen&4 == 0:
		return errorf(CodeMissingField, "lat", "required")
	case seen&8 == 0:
		return errorf(CodeMissingField, "lon", "required")
	}
	return nil
}

func (d *jdec) optStr(isNull bool, old string) string {
	if isNull {
		return old // encoding/json leaves a string untouched on null
	}
	return string(d.str())
}

func (d *jdec) optFloat(isNull bool, old float64) float64 {
	if isNull {
		return old
	}
	return d.float()
}

func (d *jdec) strings(out []string) []string {
	d.expect('[')
	d.ws()
	if d.peek() == ']' {
		d.i++
		if out == nil {
			out = []string{}
		}
		return out
	}
	for d.err == nil {
		if len(out) >= 1024 {
			d.fail("json: fault_codes: too many")
			return out
		}
		if d.null() {
			out = append(out, "")
		} else {
			out = append(out, string(d.str()))
		}
		d.ws()
		if d.peek() == ',' {
			d.i++
			d.ws()
			continue
		}
		d.expect(']')
		break
	}
	return out
}

func (d *jdec) bool() bool {
	switch {
	case d.err != nil:
	case len(d.b)-d.i >= 4 && string(d.b[d.i:d.i+4]) == "true":
		d.i += 4
		return true
	case len(d.b)-d.i >= 5 && string(d.b[d.i:d.i+5]) == "false":
		d.i += 5
	default:
		d.fail("json: want a boolean at byte %d", d.i)
	}
	return false
}

// number returns the bytes of a JSON number and whether it is an integer.
func (d *jdec) number() ([]byte, bool) {
	if d.err != nil {
		return nil, false
	}
	start, b, i := d.i, d.b, d.i
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	integer := true
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case digits() == 0:
		d.fail("json: want a number at byte %d", start)
		return nil, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		integer = false
		if digits() == 0 {
			d.fail("json: bad number at byte %d", start)
			return nil, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		integer = false
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			d.fail("json: bad number at byte %d", start)
			return nil, false
		}
	}
	d.i = i
	return b[start:i], integer
}

func (d *jdec) float() float64 {
	tok, _ := d.number()
	if d.err != nil {
		return 0
	}
	if f, ok := exactFloat(tok); ok {
		return f
	}
	f, err := strconv.ParseFloat(string(tok), 64)
	if err != nil {
		d.fail("json: number %s: %v", tok, err)
	}
	return f
}

// exactPow10 are the powers of ten a float64 holds exactly.
var exactPow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// exactFloat converts a number token (already checked by number) of at
// most 15 digits and no exponent, such as 52.5 or -13.4012, the way the
// boxes write them: its digits and its power of ten are exact float64s,
// so one division is the correctly rounded value, the one ParseFloat
// returns (Clinger's fast path, as strconv takes it). Anything else is
// left to ParseFloat.
func exactFloat(tok []byte) (float64, bool) {
	i, neg := 0, false
	if len(tok) > 0 && tok[0] == '-' {
		i, neg = 1, true
	}
	var m uint64
	digits, frac, dot := 0, 0, false
	for ; i < len(tok); i++ {
		c := tok[i]
		switch {
		case c >= '0' && c <= '9':
			m = m*10 + uint64(c-'0')
			digits++
			if dot {
				frac++
			}
		case c == '.' && !dot:
			dot = true
		default:
			return 0, false // an exponent
		}
	}
	if digits == 0 || digits > 15 {
		return 0, false
	}
	f := float64(m) / exactPow10[frac] // frac <= digits <= 15
	if neg {
		f = -f
	}
	return f, true
}

func (d *jdec) int() int64 {
	tok, integer := d.number()
	if d.err != nil {
		return 0
	}
	v, err := strconv.ParseInt(string(tok), 10, 64)
	if !integer || err != nil {
		d.fail("json: %s is not a 64-bit integer", tok)
	}
	return v
}

func (d *jdec) uint() uint64 {
	tok, integer := d.number()
	if d.err != nil {
		return 0
	}
	v, err := strconv.ParseUint(string(tok), 10, 64)
	if !integer || err != nil {
		d.fail("json: %s is not an unsigned 64-bit integer", tok)
	}
	return v
}

// key returns an object key; the slice is valid until the next call.
func (d *jdec) key() []byte { return d.str() }

// str parses a JSON string. Without escapes it returns a slice of the
// input; with escapes, of a scratch buffer reused by the next call.
func (d *jdec) str() []byte {
	d.expect('"')
	if d.err != nil {
		return nil
	}
	start := d.i
	var high byte // the OR of the bytes: below 0x80, all ASCII (valid UTF-8)
	for i := start; i < len(d.b); i++ {
		c := d.b[i]
		high |= c
		switch {
		case c == '"':
			d.i = i + 1
			s := d.b[start:i]
			if high >= 0x80 && !utf8.Valid(s) {
				d.fail("json: string at byte %d is not valid UTF-8", start)
			}
			return s
		case c == '\\':
			return d.strSlow(start)
		case c < 0x20:
			d.fail("json: control character in string at byte %d", i)
			return nil
		}
	}
	d.fail("json: unterminated string at byte %d", start)
	return nil
}

func (d *jdec) strSlow(start int) []byte {
	out := append(d.tmp[:0], d.b[start:d.i]...)
	i := d.i
	for ; i < len(d.b); i++ {
		c := d.b[i]
		switch {
		case c == '"':
			d.i = i + 1
			d.tmp = out
			if !utf8.Valid(out) {
				d.fail("json: string at byte %d is not valid UTF-8", start)
			}
			return out
		case c < 0x20:
			d.fail("json: control character in string at byte %d", i)
			return nil
		case c != '\\':
			out = append(out, c)
			continue
		}
		i++
		if i >= len(d.b) {
			break
		}
		switch d.b[i] {
		case '"', '\\', '/':
			out = append(out, d.b[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(d.b, i+1)
			if !ok {
				d.fail("json: bad \\u escape at byte %d", i)
				return nil
			}
			i += 4
			if utf16.IsSurrogate(r) {
				r2, ok2 := rune(0), false
				if i+2 < len(d.b) && d.b[i+1] == '\\' && d.b[i+2] == 'u' {
					r2, ok2 = hex4(d.b, i+3)
				}
				if dec := utf16.DecodeRune(r, r2); ok2 && dec != utf8.RuneError {
					r = dec
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			d.fail("json: bad escape at byte %d", i)
			return nil
		}
	}
	d.fail("json: unterminated string at byte %d", start)
	return nil
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
