package telemetry

import (
	"encoding/binary"
	"unicode/utf8"
)

// Stamp is what the gateway binds a device's events to: the device, its
// vehicle and the vehicle's time zone, filled into events that leave them
// empty.
type Stamp struct {
	DeviceID, VehicleID, TZ string
}

// Mismatch is the first event of a batch that names another device or
// vehicle than its Stamp (after the stamping): its index and the ids it
// names.
type Mismatch struct {
	Index               int
	DeviceID, VehicleID string
}

// TranscodeAvroBatch reads a minecart.telemetry.Batch (Avro binary, no
// framing) with exactly the checks and errors of DecodeAvroBatch, and
// appends to dst, for each event, header followed by the event's Avro
// encoding as AppendAvro writes the decoded event once device_id,
// vehicle_id and tz left empty are set from st; ends gets the offset in
// dst where each event's value ends (it starts where the previous one
// ended, or at len(dst) on entry). The output is canonical (minimal
// varints, fault codes in one block) whatever encoding the body used, but
// no Event and no string is built: string bytes and the doubles are copied
// from the body. On error dst and ends are returned as they were.
//
// If an event names another device or vehicle than st, mis is the first
// one; the batch is still read to its end first, so a decode error
// anywhere wins over a mismatch, as DecodeAvroBatch followed by a check of
// the events would order them.
func TranscodeAvroBatch(dst []byte, ends []int, header, b []byte, lim Limits, st Stamp) (_ []byte, _ []int, mis *Mismatch, err error) {
	lim = lim.Defaults()
	dst0, ends0 := len(dst), len(ends)
	fail := func(err error) ([]byte, []int, *Mismatch, error) {
		return dst[:dst0], ends[:ends0], nil, err
	}
	r := reader{b: b}
	var codes [][]byte
	count := 0
	for r.err == nil {
		n := r.long("events")
		if r.err != nil || n == 0 {
			break
		}
		if n < 0 { // a block with its byte size: skip the size
			n = -n
			r.long("events")
		}
		if n < 0 || n > int64(lim.MaxEvents-count) {
			return fail(errorf(CodeTooManyEvents, "events", "more than %d events", lim.MaxEvents))
		}
		if n > int64(r.left()/minEventBytes) {
			r.fail("events", "block of %d events in %d bytes", n, r.left())
			break
		}
		for i := int64(0); i < n && r.err == nil; i++ {
			var ev rawEvent
			codes = r.rawEvent(&ev, codes[:0], lim)
			if r.err != nil {
				return fail(atIndex(count, r.err))
			}
			if err := ev.check(lim); err != nil {
				return fail(atIndex(count, err))
			}
			dev, veh, tz := string(ev.deviceID), string(ev.vehicleID), string(ev.tz) // no allocation: compared or stamped
			if len(ev.deviceID) == 0 {
				dev = st.DeviceID
			}
			if len(ev.vehicleID) == 0 {
				veh = st.VehicleID
			}
			if len(ev.tz) == 0 {
				tz = st.TZ
			}
			if mis == nil && (dev != st.DeviceID || veh != st.VehicleID) {
				mis = &Mismatch{Index: count, DeviceID: string(ev.deviceID), VehicleID: string(ev.vehicleID)}
				if len(ev.deviceID) == 0 {
					mis.DeviceID = st.DeviceID
				}
				if len(ev.vehicleID) == 0 {
					mis.VehicleID = st.VehicleID
				}
			}
			dst = append(dst, header...)
			dst = appendBytes(dst, ev.eventID)
			dst = appendString(dst, dev)
			dst = appendString(dst, veh)
			dst = binary.AppendVarint(dst, ev.seq)
			dst = binary.AppendVarint(dst, ev.timeMs)
			dst = appendString(dst, tz)
			dst = append(dst, ev.fixed...)
			if len(codes) > 0 {
				dst = binary.AppendVarint(dst, int64(len(codes)))
				for _, c := range codes {
					dst = appendBytes(dst, c)
				}
			}
			dst = append(dst, 0)
			ends = append(ends, len(dst))
			count++
		}
	}
	if r.err == nil && r.i != len(r.b) {
		r.fail("", "%d bytes after the batch", len(r.b)-r.i)
	}
	if r.err != nil {
		return fail(r.err)
	}
	if count == 0 {
		return fail(errorf(CodeEmptyBatch, "events", "batch has no events"))
	}
	return dst, ends, mis, nil
}

// rawEvent is an event as TranscodeAvroBatch reads it: its strings as
// slices of the body, and the bytes from lat to coolant_c (twelve
// doubles and the engine_on boolean, validated) as they were sent.
type rawEvent struct {
	eventID, deviceID, vehicleID, tz []byte
	seq, timeMs                      int64
	fixed                            []byte
}

// fixedBytes is the encoding from lat to coolant_c: 9 doubles, a
// boolean, 3 doubles.
const fixedBytes = 9*8 + 1 + 3*8

// rawEvent reads one event as reader.event does (same checks, same
// errors, in the same order), appending its fault codes to codes.
func (r *reader) rawEvent(ev *rawEvent, codes [][]byte, lim Limits) [][]byte {
	ev.eventID = r.strBytes("event_id", lim.MaxIDLen)
	ev.deviceID = r.strBytes("device_id", lim.MaxIDLen)
	ev.vehicleID = r.strBytes("vehicle_id", lim.MaxIDLen)
	ev.seq = r.long("seq")
	if ev.seq < 0 {
		r.fail("seq", "negative: %d", ev.seq)
	}
	ev.timeMs = r.long("time_ms")
	ev.tz = r.strBytes("tz", lim.MaxTZLen)
	if r.err != nil {
		return codes
	}
	start := r.i
	if r.left() >= fixedBytes && r.b[r.i+9*8] <= 1 { // all there, a valid boolean: nothing can fail
		r.i += fixedBytes
		ev.fixed = r.b[start:r.i]
	} else {
		r.fixedSlow()
		if r.err != nil {
			return codes
		}
		ev.fixed = r.b[start:r.i]
	}
	for r.err == nil {
		n := r.long("fault_codes")
		if r.err != nil || n == 0 {
			return codes
		}
		if n < 0 {
			n = -n
			r.long("fault_codes")
		}
		if n < 0 || n > int64(lim.MaxFaultCodes-len(codes)) {
			r.err = errorf(CodeFieldTooLong, "fault_codes", "more than %d codes", lim.MaxFaultCodes)
			return codes
		}
		if n > int64(r.left()) {
			r.fail("fault_codes", "block of %d codes in %d bytes", n, r.left())
			return codes
		}
		for i := int64(0); i < n && r.err == nil; i++ {
			codes = append(codes, r.strBytes("fault_codes", lim.MaxFaultCodeLen))
		}
	}
	return codes
}

// fixedSlow reads lat to coolant_c field by field, for the error of a
// short or bad encoding (the field it fails at).
func (r *reader) fixedSlow() {
	for _, f := range [...]string{"lat", "lon", "hdop", "speed_kmh", "heading_deg", "accel_lon_ms2",
		"accel_lat_ms2", "speed_limit_kmh", "odometer_km"} {
		r.double(f)
	}
	r.boolean("engine_on")
	for _, f := range [...]string{"fuel_pct", "battery_v", "coolant_c"} {
		r.double(f)
	}
}

// strBytes is reader.str without the copy: the string's bytes in the body.
func (r *reader) strBytes(field string, max int) []byte {
	n := r.long(field)
	if r.err != nil {
		return nil
	}
	if n < 0 || n > int64(r.left()) {
		r.fail(field, "string of %d bytes with %d left", n, r.left())
		return nil
	}
	if n > int64(max) {
		r.err = errorf(CodeFieldTooLong, field, "%d bytes, limit %d", n, max)
		return nil
	}
	s := r.b[r.i : r.i+int(n) : r.i+int(n)]
	r.i += int(n)
	return s
}

// check is checkFields on a rawEvent (seq and the fault codes are
// bounded by the reader already, as they are for a decoded Event).
func (ev *rawEvent) check(lim Limits) error {
	if len(ev.eventID) == 0 {
		return errorf(CodeMissingField, "event_id", "required")
	}
	if err := checkIDBytes("event_id", ev.eventID, lim.MaxIDLen); err != nil {
		return err
	}
	if err := checkIDBytes("device_id", ev.deviceID, lim.MaxIDLen); err != nil {
		return err
	}
	if err := checkIDBytes("vehicle_id", ev.vehicleID, lim.MaxIDLen); err != nil {
		return err
	}
	return checkIDBytes("tz", ev.tz, lim.MaxTZLen)
}

// checkIDBytes is checkID on bytes.
func checkIDBytes(field string, s []byte, max int) error {
	if len(s) > max {
		return errorf(CodeFieldTooLong, field, "%d bytes, limit %d", len(s), max)
	}
	var high byte // the OR of the bytes: below 0x80, all ASCII (valid UTF-8)
	for i, c := range s {
		if c < 0x20 || c == 0x7f {
			return errorf(CodeBadID, field, "control character at byte %d", i)
		}
		high |= c
	}
	if high >= 0x80 && !utf8.Valid(s) {
		return errorf(CodeBadID, field, "not valid UTF-8")
	}
	return nil
}

func appendBytes(dst, s []byte) []byte {
	dst = binary.AppendVarint(dst, int64(len(s)))
	return append(dst, s...)
}
