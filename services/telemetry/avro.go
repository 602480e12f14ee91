package telemetry

import (
	"fmt"
	"time"
)

// The Avro side of an Event: the goavro native form (map[string]any) of the
// records minecart.telemetry.Event and minecart.telemetry.Batch
// (schemas/telemetry_Event.avsc, schemas/telemetry_Batch.avsc). Framing and
// codecs live in package schemas; this file only maps fields.

// AppendNative fills m with ev's fields in the native form goavro encodes
// for minecart.telemetry.Event, reusing m (and its fault_codes slice) when
// given, and returns it. time_ms is written as int64 milliseconds.
func AppendNative(m map[string]any, ev *Event) map[string]any {
	if m == nil {
		m = make(map[string]any, 20)
	}
	m["event_id"] = ev.EventID
	m["device_id"] = ev.DeviceID
	m["vehicle_id"] = ev.VehicleID
	m["seq"] = int64(ev.Seq)
	m["time_ms"] = ev.TimeMs
	m["tz"] = ev.TZ
	m["lat"] = ev.Lat
	m["lon"] = ev.Lon
	m["hdop"] = ev.HDOP
	m["speed_kmh"] = ev.SpeedKmh
	m["heading_deg"] = ev.HeadingDeg
	m["accel_lon_ms2"] = ev.AccelLonMS2
	m["accel_lat_ms2"] = ev.AccelLatMS2
	m["speed_limit_kmh"] = ev.SpeedLimitKmh
	m["odometer_km"] = ev.OdometerKm
	m["engine_on"] = ev.EngineOn
	m["fuel_pct"] = ev.FuelPct
	m["battery_v"] = ev.BatteryV
	m["coolant_c"] = ev.CoolantC
	fc, _ := m["fault_codes"].([]any)
	fc = fc[:0]
	for _, c := range ev.FaultCodes {
		fc = append(fc, c)
	}
	m["fault_codes"] = fc
	return m
}

// ToNative returns ev as a new native map for minecart.telemetry.Event.
func ToNative(ev *Event) map[string]any { return AppendNative(nil, ev) }

// FromNative reads an Event from the native form of
// minecart.telemetry.Event (or of one element of Batch.events), checking
// every field's Go type: a map from another schema is an error, never a
// panic. Presence and sizes are checked by Validate, not here.
func FromNative(m map[string]any) (Event, error) {
	var ev Event
	var err error
	str := func(k string) string {
		if err != nil {
			return ""
		}
		v, ok := m[k].(string)
		if !ok {
			err = errorf(CodeDecode, k, "want string, have %T", m[k])
		}
		return v
	}
	f64 := func(k string) float64 {
		if err != nil {
			return 0
		}
		v, ok := m[k].(float64)
		if !ok {
			err = errorf(CodeDecode, k, "want double, have %T", m[k])
		}
		return v
	}
	ev.EventID = str("event_id")
	ev.DeviceID = str("device_id")
	ev.VehicleID = str("vehicle_id")
	ev.TZ = str("tz")
	ev.Lat = f64("lat")
	ev.Lon = f64("lon")
	ev.HDOP = f64("hdop")
	ev.SpeedKmh = f64("speed_kmh")
	ev.HeadingDeg = f64("heading_deg")
	ev.AccelLonMS2 = f64("accel_lon_ms2")
	ev.AccelLatMS2 = f64("accel_lat_ms2")
	ev.SpeedLimitKmh = f64("speed_limit_kmh")
	ev.OdometerKm = f64("odometer_km")
	ev.FuelPct = f64("fuel_pct")
	ev.BatteryV = f64("battery_v")
	ev.CoolantC = f64("coolant_c")
	if err != nil {
		return Event{}, err
	}
	switch s := m["seq"].(type) {
	case int64:
		if s < 0 {
			return Event{}, errorf(CodeDecode, "seq", "negative: %d", s)
		}
		ev.Seq = uint64(s)
	default:
		return Event{}, errorf(CodeDecode, "seq", "want long, have %T", m["seq"])
	}
	switch t := m["time_ms"].(type) {
	case time.Time:
		ev.TimeMs = t.UnixMilli()
	case int64:
		ev.TimeMs = t
	default:
		return Event{}, errorf(CodeDecode, "time_ms", "want timestamp-millis, have %T", m["time_ms"])
	}
	on, ok := m["engine_on"].(bool)
	if !ok {
		return Event{}, errorf(CodeDecode, "engine_on", "want boolean, have %T", m["engine_on"])
	}
	ev.EngineOn = on
	switch fc := m["fault_codes"].(type) {
	case []any:
		if len(fc) > 0 {
			ev.FaultCodes = make([]string, len(fc))
			for i, c := range fc {
				s, ok := c.(string)
				if !ok {
					return Event{}, errorf(CodeDecode, "fault_codes", "item %d: want string, have %T", i, c)
				}
				ev.FaultCodes[i] = s
			}
		}
	case nil:
	default:
		return Event{}, errorf(CodeDecode, "fault_codes", "want array, have %T", m["fault_codes"])
	}
	return ev, nil
}

// BatchToNative returns events as the native form of
// minecart.telemetry.Batch.
func BatchToNative(events []Event) map[string]any {
	arr := make([]any, len(events))
	for i := range events {
		arr[i] = ToNative(&events[i])
	}
	return map[string]any{"events": arr}
}

// BatchFromNative reads the events of a decoded minecart.telemetry.Batch
// and applies the same presence and size checks as DecodeJSON.
func BatchFromNative(m map[string]any, lim Limits) ([]Event, error) {
	lim = lim.Defaults()
	arr, ok := m["events"].([]any)
	if !ok {
		return nil, errorf(CodeDecode, "events", "want array, have %T", m["events"])
	}
	if len(arr) == 0 {
		return nil, errorf(CodeEmptyBatch, "events", "batch has no events")
	}
	if len(arr) > lim.MaxEvents {
		return nil, errorf(CodeTooManyEvents, "events", "%d events, limit %d", len(arr), lim.MaxEvents)
	}
	out := make([]Event, len(arr))
	for i, a := range arr {
		em, ok := a.(map[string]any)
		if !ok {
			return nil, atIndex(i, errorf(CodeDecode, "", "want record, have %T", a))
		}
		ev, err := FromNative(em)
		if err != nil {
			return nil, atIndex(i, err)
		}
		if err := checkFields(&ev, lim); err != nil {
			return nil, atIndex(i, err)
		}
		out[i] = ev
	}
	return out, nil
}

// String is a short description for logs.
func (ev *Event) String() string {
	return fmt.Sprintf("%s/%s#%d@%d", ev.VehicleID, ev.DeviceID, ev.Seq, ev.TimeMs)
}
