package telemetry

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"
	"unsafe"
)

// Limits bound what one device batch may hold. The zero value of a field
// means its default.
type Limits struct {
	MaxEvents       int // events per batch (default 20,000: ~5.5 h at 1 Hz)
	MaxIDLen        int // bytes of event_id, device_id, vehicle_id (default 64)
	MaxTZLen        int // bytes of tz (default 64)
	MaxFaultCodes   int // fault codes per event (default 32)
	MaxFaultCodeLen int // bytes per fault code (default 8)
}

// Defaults returns l with every zero field set to its default.
func (l Limits) Defaults() Limits {
	if l.MaxEvents == 0 {
		l.MaxEvents = 20000
	}
	if l.MaxIDLen == 0 {
		l.MaxIDLen = 64
	}
	if l.MaxTZLen == 0 {
		l.MaxTZLen = 64
	}
	if l.MaxFaultCodes == 0 {
		l.MaxFaultCodes = 32
	}
	if l.MaxFaultCodeLen == 0 {
		l.MaxFaultCodeLen = 8
	}
	return l
}

// Validate reports a negative limit.
func (l Limits) Validate() error {
	if l.MaxEvents < 0 || l.MaxIDLen < 0 || l.MaxTZLen < 0 || l.MaxFaultCodes < 0 || l.MaxFaultCodeLen < 0 {
		return errors.New("telemetry limits must not be negative")
	}
	return nil
}

// jsonBatch is the JSON body of POST /v1/telemetry:
//
//	{"events": [{"event_id": "e1", "seq": 1, "time_ms": 1764000000000, "lat": 31.2, "lon": 121.5, ...}]}
//
// Field names are those of the Avro schema minecart.telemetry.Event.
type jsonBatch struct {
	Events []jsonEvent `json:"events"`
}

type jsonEvent struct {
	EventID       string   `json:"event_id"`
	DeviceID      string   `json:"device_id"`
	VehicleID     string   `json:"vehicle_id"`
	Seq           *uint64  `json:"seq"`
	TimeMs        *int64   `json:"time_ms"`
	TZ            string   `json:"tz"`
	Lat           *float64 `json:"lat"`
	Lon           *float64 `json:"lon"`
	HDOP          float64  `json:"hdop"`
	SpeedKmh      float64  `json:"speed_kmh"`
	HeadingDeg    float64  `json:"heading_deg"`
	AccelLonMS2   float64  `json:"accel_lon_ms2"`
	AccelLatMS2   float64  `json:"accel_lat_ms2"`
	SpeedLimitKmh float64  `json:"speed_limit_kmh"`
	OdometerKm    float64  `json:"odometer_km"`
	EngineOn      bool     `json:"engine_on"`
	FuelPct       *float64 `json:"fuel_pct"`
	BatteryV      float64  `json:"battery_v"`
	CoolantC      *float64 `json:"coolant_c"`
	FaultCodes    []string `json:"fault_codes"`
}

// DecodeJSON decodes a JSON device batch strictly: one object with an
// "events" array, no unknown fields, no trailing data, every required field
// (event_id, seq, time_ms, lat, lon) present and every field within lim.
// device_id, vehicle_id and tz may be empty: the gateway fills them from the
// device registry. Errors are *Error with a reason code and the event index.
func DecodeJSON(body []byte, lim Limits) ([]Event, error) {
	return decodeJSONFast(nil, body, lim.Defaults())
}

// DecodeJSONInto is DecodeJSON decoding into dst's array (dst[:0],
// grown as needed; every element is zeroed before it is decoded into), for
// callers that reuse one slice across batches. On error it returns nil.
func DecodeJSONInto(dst []Event, body []byte, lim Limits) ([]Event, error) {
	return decodeJSONFast(dst, body, lim.Defaults())
}

// decodeJSONReference is DecodeJSON written with encoding/json: the
// reference the fast decoder is fuzzed against.
func decodeJSONReference(body []byte, lim Limits) ([]Event, error) {
	lim = lim.Defaults()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var b jsonBatch
	if err := dec.Decode(&b); err != nil {
		return nil, errorf(CodeDecode, "", "json: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errorf(CodeDecode, "", "json: data after the batch object")
	}
	if len(b.Events) == 0 {
		return nil, errorf(CodeEmptyBatch, "events", "batch has no events")
	}
	if len(b.Events) > lim.MaxEvents {
		return nil, errorf(CodeTooManyEvents, "events", "%d events, limit %d", len(b.Events), lim.MaxEvents)
	}
	out := make([]Event, len(b.Events))
	for i := range b.Events {
		j := &b.Events[i]
		ev := &out[i]
		switch {
		case j.Seq == nil:
			return nil, atIndex(i, errorf(CodeMissingField, "seq", "required"))
		case j.TimeMs == nil:
			return nil, atIndex(i, errorf(CodeMissingField, "time_ms", "required"))
		case j.Lat == nil:
			return nil, atIndex(i, errorf(CodeMissingField, "lat", "required"))
		case j.Lon == nil:
			return nil, atIndex(i, errorf(CodeMissingField, "lon", "required"))
		}
		*ev = Event{
			EventID: j.EventID, DeviceID: j.DeviceID, VehicleID: j.VehicleID,
			Seq: *j.Seq, TimeMs: *j.TimeMs, TZ: j.TZ,
			Lat: *j.Lat, Lon: *j.Lon, HDOP: j.HDOP, SpeedKmh: j.SpeedKmh, HeadingDeg: j.HeadingDeg,
			AccelLonMS2: j.AccelLonMS2, AccelLatMS2: j.AccelLatMS2, SpeedLimitKmh: j.SpeedLimitKmh,
			OdometerKm: j.OdometerKm, EngineOn: j.EngineOn,
			FuelPct: -1, BatteryV: j.BatteryV, CoolantC: -273, FaultCodes: j.FaultCodes,
		}
		if j.FuelPct != nil {
			ev.FuelPct = *j.FuelPct
		}
		if j.CoolantC != nil {
			ev.CoolantC = *j.CoolantC
		}
		if err := checkFields(ev, lim); err != nil {
			return nil, atIndex(i, err)
		}
	}
	return out, nil
}

// EncodeJSON writes events as a JSON device batch that DecodeJSON reads
// (for the simulator, load tester and tests).
func EncodeJSON(events []Event) ([]byte, error) {
	b := jsonBatch{Events: make([]jsonEvent, len(events))}
	for i := range events {
		ev := &events[i]
		b.Events[i] = jsonEvent{
			EventID: ev.EventID, DeviceID: ev.DeviceID, VehicleID: ev.VehicleID,
			Seq: &ev.Seq, TimeMs: &ev.TimeMs, TZ: ev.TZ, Lat: &ev.Lat, Lon: &ev.Lon,
			HDOP: ev.HDOP, SpeedKmh: ev.SpeedKmh, HeadingDeg: ev.HeadingDeg,
			AccelLonMS2: ev.AccelLonMS2, AccelLatMS2: ev.AccelLatMS2, SpeedLimitKmh: ev.SpeedLimitKmh,
			OdometerKm: ev.OdometerKm, EngineOn: ev.EngineOn, FuelPct: &ev.FuelPct,
			BatteryV: ev.BatteryV, CoolantC: &ev.CoolantC, FaultCodes: ev.FaultCodes,
		}
	}
	return json.Marshal(b)
}

// IndexError tells which event of a batch was refused.
type IndexError struct {
	Index int
	Err   error
}

func (e *IndexError) Error() string { return fmt.Sprintf("event %d: %v", e.Index, e.Err) }
func (e *IndexError) Unwrap() error { return e.Err }

func atIndex(i int, err error) error { return &IndexError{Index: i, Err: err} }

// checkFields enforces presence and sizes of the string fields; device_id,
// vehicle_id and tz may be empty here (the gateway fills them).
func checkFields(ev *Event, lim Limits) error {
	if ev.EventID == "" {
		return errorf(CodeMissingField, "event_id", "required")
	}
	if err := checkID("event_id", ev.EventID, lim.MaxIDLen); err != nil {
		return err
	}
	if err := checkID("device_id", ev.DeviceID, lim.MaxIDLen); err != nil {
		return err
	}
	if err := checkID("vehicle_id", ev.VehicleID, lim.MaxIDLen); err != nil {
		return err
	}
	if err := checkID("tz", ev.TZ, lim.MaxTZLen); err != nil {
		return err
	}
	if ev.Seq > 1<<63-1 {
		return errorf(CodeDecode, "seq", "%d does not fit an Avro long", ev.Seq)
	}
	if len(ev.FaultCodes) > lim.MaxFaultCodes {
		return errorf(CodeFieldTooLong, "fault_codes", "%d codes, limit %d", len(ev.FaultCodes), lim.MaxFaultCodes)
	}
	for _, c := range ev.FaultCodes {
		if len(c) > lim.MaxFaultCodeLen {
			return errorf(CodeFieldTooLong, "fault_codes", "code of %d bytes, limit %d", len(c), lim.MaxFaultCodeLen)
		}
	}
	return nil
}

func checkID(field, s string, max int) error {
	if len(s) > max {
		return errorf(CodeFieldTooLong, field, "%d bytes, limit %d", len(s), max)
	}
	if plainASCII(s) {
		return nil
	}
	var high byte // the OR of the bytes: below 0x80, all ASCII (valid UTF-8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f {
			return errorf(CodeBadID, field, "control character at byte %d", i)
		}
		high |= c
	}
	if high >= 0x80 && !utf8.ValidString(s) {
		return errorf(CodeBadID, field, "not valid UTF-8")
	}
	return nil
}

// plainASCII reports whether every byte of s is printable ASCII (0x20 to
// 0x7e), eight bytes at a time: the ids and zones of the stages' hot path.
// False sends checkID to its byte loop, which names the bad byte or
// accepts valid UTF-8.
func plainASCII(s string) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(s[i:]), 8))
		// A byte below 0x20 (w - 0x20 borrows into its high bit where
		// the byte's own is clear), equal to 0x7f (w ^ 0x7f has a zero
		// byte), or at or above 0x80 (its high bit).
		x := w ^ (0x7f * ones)
		if ((w-0x20*ones)&^w|(x-ones)&^x|w)&highs != 0 {
			return false
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// minTimeMs is 2000-01-01T00:00:00Z: no box reports earlier events.
var minTimeMs = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
