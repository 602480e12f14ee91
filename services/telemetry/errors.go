package telemetry

import (
	"errors"
	"fmt"
)

// Reason codes: why an event or a batch was refused. They are the Code of
// an *Error, the reason of the ingest stage's dead letters and the "reason"
// label of the gateway's reject metric. docs/ingest.md explains each.
const (
	CodeDecode            = "decode"                // body or record is not valid JSON / Avro for the schema
	CodeTooManyEvents     = "too_many_events"       // batch longer than Limits.MaxEvents
	CodeEmptyBatch        = "empty_batch"           // batch without events
	CodeMissingField      = "missing_field"         // a required field is absent or empty
	CodeFieldTooLong      = "field_too_long"        // an id, tz or fault list over its limit
	CodeBadID             = "bad_id"                // an id with control characters or invalid UTF-8
	CodeNotFinite         = "not_finite"            // a number is NaN or ±Inf
	CodeBadTZ             = "bad_tz"                // tz is not an IANA zone name
	CodePosition          = "position_out_of_range" // lat outside -90..90 or lon outside -180..180
	CodePositionZero      = "position_zero"         // lat = lon = 0: a box without a fix
	CodeSpeed             = "speed_out_of_range"    // speed outside 0..MaxSpeedKmh
	CodeAccel             = "accel_implausible"     // |acceleration| above MaxAccelMS2
	CodeHeading           = "heading_out_of_range"  // heading outside 0..360
	CodeSensor            = "sensor_out_of_range"   // hdop, fuel, battery, coolant or speed limit impossible
	CodeOdometerRange     = "odometer_out_of_range" // odometer negative or above 10 million km
	CodeBadFaultCode      = "bad_fault_code"        // a DTC not shaped like P0301
	CodeTimeRange         = "time_out_of_range"     // event time before 2000-01-01
	CodeFuture            = "future_timestamp"      // event time later than now + MaxSkew
	CodeTooOld            = "too_old"               // event time earlier than now - MaxAge
	CodeOdometerDecreased = "odometer_decreased"    // odometer lower than an earlier event's of the vehicle
	CodeBeyondDedup       = "beyond_dedup_horizon"  // too far behind the vehicle's newest event to de-duplicate
	CodeVehicleMismatch   = "vehicle_mismatch"      // record key and event vehicle differ
)

// Error is a refusal with a machine-readable reason code.
type Error struct {
	Code  string // one of the Code constants
	Field string // the offending field, if one
	Msg   string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return e.Code + ": " + e.Field + ": " + e.Msg
	}
	return e.Code + ": " + e.Msg
}

func errorf(code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// CodeOf returns the reason code of the first *Error in err's chain, or
// CodeDecode when err carries none.
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeDecode
}
