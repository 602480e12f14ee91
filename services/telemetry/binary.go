package telemetry

import (
	"encoding/binary"
	"math"
)

// A schema-specialised Avro binary codec for minecart.telemetry.Event and
// minecart.telemetry.Batch (the body after any framing header). Why not only
// goavro: goavro sizes an array from its block count before reading it
// (make([]any, 0, count), up to 2^31), so a 10-byte body can ask for 32 GiB;
// this decoder checks every count and length against the bytes left and the
// Limits before allocating. It is also ~5x faster, which the ingest stage
// needs. Its output is tested to be byte-identical to goavro's for the
// schemas in schemas/*.avsc (differential tests and fuzzing).

// minEventBytes is the smallest encoding of one Event: 4 empty strings,
// seq, time, 13 doubles, a boolean and an empty array.
const minEventBytes = 4 + 1 + 1 + 13*8 + 1 + 1

// AppendAvro appends ev's Avro binary encoding (schema
// minecart.telemetry.Event, no framing) to dst.
func AppendAvro(dst []byte, ev *Event) []byte {
	dst = appendString(dst, ev.EventID)
	dst = appendString(dst, ev.DeviceID)
	dst = appendString(dst, ev.VehicleID)
	dst = binary.AppendVarint(dst, int64(ev.Seq))
	dst = binary.AppendVarint(dst, ev.TimeMs)
	dst = appendString(dst, ev.TZ)
	for _, f := range [...]float64{ev.Lat, ev.Lon, ev.HDOP, ev.SpeedKmh, ev.HeadingDeg, ev.AccelLonMS2,
		ev.AccelLatMS2, ev.SpeedLimitKmh, ev.OdometerKm} {
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
	}
	if ev.EngineOn {
		dst = append(dst, 1)
	} else {
		dst = append(dst, 0)
	}
	for _, f := range [...]float64{ev.FuelPct, ev.BatteryV, ev.CoolantC} {
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
	}
	if n := len(ev.FaultCodes); n > 0 {
		dst = binary.AppendVarint(dst, int64(n))
		for _, c := range ev.FaultCodes {
			dst = appendString(dst, c)
		}
	}
	return append(dst, 0)
}

// AppendAvroBatch appends the Avro binary encoding of a
// minecart.telemetry.Batch holding events (no framing) to dst.
func AppendAvroBatch(dst []byte, events []Event) []byte {
	if len(events) > 0 {
		dst = binary.AppendVarint(dst, int64(len(events)))
		for i := range events {
			dst = AppendAvro(dst, &events[i])
		}
	}
	return append(dst, 0)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendVarint(dst, int64(len(s)))
	return append(dst, s...)
}

// DecodeAvro decodes one minecart.telemetry.Event from its Avro binary
// encoding (no framing). Every string and array is checked against lim
// before it is allocated; trailing bytes are an error.
func DecodeAvro(b []byte, lim Limits) (Event, error) {
	return DecodeAvroInterned(b, lim, nil) // no table: every string its own
}

// DecodeAvroBatch decodes a minecart.telemetry.Batch from its Avro binary
// encoding (no framing) with the same checks as DecodeJSON.
func DecodeAvroBatch(b []byte, lim Limits) ([]Event, error) {
	lim = lim.Defaults()
	r := reader{b: b}
	var out []Event
	for r.err == nil {
		n := r.long("events")
		if r.err != nil || n == 0 {
			break
		}
		if n < 0 { // a block with its byte size: skip the size
			n = -n
			r.long("events")
		}
		if n < 0 || n > int64(lim.MaxEvents-len(out)) {
			return nil, errorf(CodeTooManyEvents, "events", "more than %d events", lim.MaxEvents)
		}
		if n > int64(r.left()/minEventBytes) {
			r.fail("events", "block of %d events in %d bytes", n, r.left())
			break
		}
		if out == nil {
			out = make([]Event, 0, n)
		}
		for i := int64(0); i < n && r.err == nil; i++ {
			out = append(out, Event{})
			r.event(&out[len(out)-1], lim)
			if r.err != nil {
				return nil, atIndex(len(out)-1, r.err)
			}
			if err := checkFields(&out[len(out)-1], lim); err != nil {
				return nil, atIndex(len(out)-1, err)
			}
		}
	}
	if r.err == nil && r.i != len(r.b) {
		r.fail("", "%d bytes after the batch", len(r.b)-r.i)
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(out) == 0 {
		return nil, errorf(CodeEmptyBatch, "events", "batch has no events")
	}
	return out, nil
}

type reader struct {
	b   []byte
	i   int
	err error
	in  *Interner // DecodeAvroInterned: ids and zone interned, event id aliased
}

func (r *reader) left() int { return len(r.b) - r.i }

func (r *reader) fail(field, format string, args ...any) {
	if r.err == nil {
		r.err = errorf(CodeDecode, field, "avro: "+format, args...)
	}
}

func (r *reader) long(field string) int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b[r.i:])
	if n <= 0 {
		r.fail(field, "bad long at byte %d", r.i)
		return 0
	}
	r.i += n
	return v
}

func (r *reader) str(field string, max int) string {
	n := r.long(field)
	if r.err != nil {
		return ""
	}
	if n < 0 || n > int64(r.left()) {
		r.fail(field, "string of %d bytes with %d left", n, r.left())
		return ""
	}
	if n > int64(max) {
		r.err = errorf(CodeFieldTooLong, field, "%d bytes, limit %d", n, max)
		return ""
	}
	s := string(r.b[r.i : r.i+int(n)])
	r.i += int(n)
	return s
}

func (r *reader) double(field string) float64 {
	if r.err != nil {
		return 0
	}
	if r.left() < 8 {
		r.fail(field, "short double")
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.b[r.i:]))
	r.i += 8
	return v
}

func (r *reader) boolean(field string) bool {
	if r.err != nil {
		return false
	}
	if r.left() < 1 || r.b[r.i] > 1 {
		r.fail(field, "bad boolean")
		return false
	}
	r.i++
	return r.b[r.i-1] == 1
}

func (r *reader) event(ev *Event, lim Limits) {
	ev.EventID = r.eventID(lim.MaxIDLen)
	ev.DeviceID = r.idStr("device_id", lim.MaxIDLen, internDevice)
	ev.VehicleID = r.idStr("vehicle_id", lim.MaxIDLen, internVehicle)
	seq := r.long("seq")
	if seq < 0 {
		r.fail("seq", "negative: %d", seq)
	}
	ev.Seq = uint64(seq)
	ev.TimeMs = r.long("time_ms")
	ev.TZ = r.idStr("tz", lim.MaxTZLen, internZone)
	if !r.fixed(ev) {
		r.fixedFields(ev)
	}
	for r.err == nil {
		n := r.long("fault_codes")
		if r.err != nil || n == 0 {
			return
		}
		if n < 0 {
			n = -n
			r.long("fault_codes")
		}
		if n < 0 || n > int64(lim.MaxFaultCodes-len(ev.FaultCodes)) {
			r.err = errorf(CodeFieldTooLong, "fault_codes", "more than %d codes", lim.MaxFaultCodes)
			return
		}
		if n > int64(r.left()) {
			r.fail("fault_codes", "block of %d codes in %d bytes", n, r.left())
			return
		}
		for i := int64(0); i < n && r.err == nil; i++ {
			ev.FaultCodes = append(ev.FaultCodes, r.str("fault_codes", lim.MaxFaultCodeLen))
		}
	}
}

// fixed reads the fixed-size part of an Event in one bounds check when the
// bytes are there and engine_on is a valid boolean, and reports whether it
// did; otherwise (or after an error) it reads nothing, and fixedFields
// reads the fields one by one with their errors.
func (r *reader) fixed(ev *Event) bool {
	if r.err != nil || r.left() < fixedBytes {
		return false
	}
	b := r.b[r.i : r.i+fixedBytes]
	if b[72] > 1 {
		return false
	}
	f := func(o int) float64 { return math.Float64frombits(binary.LittleEndian.Uint64(b[o:])) }
	ev.Lat, ev.Lon, ev.HDOP = f(0), f(8), f(16)
	ev.SpeedKmh, ev.HeadingDeg, ev.AccelLonMS2 = f(24), f(32), f(40)
	ev.AccelLatMS2, ev.SpeedLimitKmh, ev.OdometerKm = f(48), f(56), f(64)
	ev.EngineOn = b[72] == 1
	ev.FuelPct, ev.BatteryV, ev.CoolantC = f(73), f(81), f(89)
	r.i += fixedBytes
	return true
}

// fixedFields reads the fixed-size part field by field (a short or bad
// record: the error names the first field that does not decode).
func (r *reader) fixedFields(ev *Event) {
	ev.Lat = r.double("lat")
	ev.Lon = r.double("lon")
	ev.HDOP = r.double("hdop")
	ev.SpeedKmh = r.double("speed_kmh")
	ev.HeadingDeg = r.double("heading_deg")
	ev.AccelLonMS2 = r.double("accel_lon_ms2")
	ev.AccelLatMS2 = r.double("accel_lat_ms2")
	ev.SpeedLimitKmh = r.double("speed_limit_kmh")
	ev.OdometerKm = r.double("odometer_km")
	ev.EngineOn = r.boolean("engine_on")
	ev.FuelPct = r.double("fuel_pct")
	ev.BatteryV = r.double("battery_v")
	ev.CoolantC = r.double("coolant_c")
}
