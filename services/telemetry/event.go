// Package telemetry is the vehicle telemetry event: its fields and units,
// decoding of device batches (JSON and Avro), validation against physical
// sense, and de-duplication of re-uploaded events. It is pure domain code:
// no Kafka, no HTTP.
package telemetry

// Event is one telemetry sample from a vehicle's box, in canonical units:
// UTC Unix milliseconds, degrees, km/h, m/s², km, volts, °C.
type Event struct {
	EventID   string // unique per device, assigned by the box
	DeviceID  string // the box that sent it (bound to one vehicle)
	VehicleID string
	Seq       uint64 // per-device sequence number, increasing
	TimeMs    int64  // event time, UTC Unix milliseconds
	TZ        string // the vehicle's IANA time zone, e.g. "Asia/Shanghai"

	Lat, Lon      float64 // WGS84 degrees
	HDOP          float64 // GPS horizontal dilution of precision (0 = unknown)
	SpeedKmh      float64 // GPS/vehicle speed
	HeadingDeg    float64 // 0..360, clockwise from north
	AccelLonMS2   float64 // longitudinal acceleration, + accelerating, - braking
	AccelLatMS2   float64 // lateral acceleration, + to the right
	SpeedLimitKmh float64 // posted limit where the box knows it, 0 = unknown
	OdometerKm    float64

	EngineOn   bool
	FuelPct    float64  // 0..100, -1 = not reported
	BatteryV   float64  // 0 = not reported
	CoolantC   float64  // -273 = not reported
	FaultCodes []string // OBD-II DTCs currently set, e.g. "P0301"
}
