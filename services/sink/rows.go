package sink

import (
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/services/telemetry"
)

// telemetryColumns are the columns of table telemetry the sink writes, in
// the order of telemetryRows' slices.
const telemetryInsert = `INSERT INTO telemetry (vehicle_id, time, device_id, seq, event_id, tz, lat_e6, lon_e6, hdop,
	speed_kmh, heading_deg, accel_lon_ms2, accel_lat_ms2, speed_limit_kmh, odometer_m, engine_on,
	fuel_pct, battery_v, coolant_c, fault_codes, src_topic, src_partition, src_offset)`

// telemetryRows holds a batch of telemetry rows column by column, the way
// clickhouse-go appends fastest.
type telemetryRows struct {
	vehicle, device, eventID, tz, srcTopic   []string
	time                                     []time.Time
	seq, odometerM                           []uint64
	latE6, lonE6                             []int32
	speed, heading, accelLon, accelLat       []float32
	hdop, speedLimit, fuel, battery, coolant []*float32
	engineOn                                 []bool
	faults                                   [][]string
	srcPartition                             []int32
	srcOffset                                []int64

	// optional values live here, five per row, instead of in an
	// allocation each (pointers into an outgrown array stay valid).
	slab []float32
}

func (t *telemetryRows) len() int { return len(t.vehicle) }

// grow makes room for n more rows, so that add allocates nothing but
// the slab.
func (t *telemetryRows) grow(n int) {
	t.vehicle = slices.Grow(t.vehicle, n)
	t.device = slices.Grow(t.device, n)
	t.eventID = slices.Grow(t.eventID, n)
	t.tz = slices.Grow(t.tz, n)
	t.srcTopic = slices.Grow(t.srcTopic, n)
	t.time = slices.Grow(t.time, n)
	t.seq = slices.Grow(t.seq, n)
	t.odometerM = slices.Grow(t.odometerM, n)
	t.latE6 = slices.Grow(t.latE6, n)
	t.lonE6 = slices.Grow(t.lonE6, n)
	t.speed = slices.Grow(t.speed, n)
	t.heading = slices.Grow(t.heading, n)
	t.accelLon = slices.Grow(t.accelLon, n)
	t.accelLat = slices.Grow(t.accelLat, n)
	t.hdop = slices.Grow(t.hdop, n)
	t.speedLimit = slices.Grow(t.speedLimit, n)
	t.fuel = slices.Grow(t.fuel, n)
	t.battery = slices.Grow(t.battery, n)
	t.coolant = slices.Grow(t.coolant, n)
	t.engineOn = slices.Grow(t.engineOn, n)
	t.faults = slices.Grow(t.faults, n)
	t.srcPartition = slices.Grow(t.srcPartition, n)
	t.srcOffset = slices.Grow(t.srcOffset, n)
	t.slab = slices.Grow(t.slab, 5*n)
}

func (t *telemetryRows) columns() []any {
	return []any{t.vehicle, t.time, t.device, t.seq, t.eventID, t.tz, t.latE6, t.lonE6, t.hdop,
		t.speed, t.heading, t.accelLon, t.accelLat, t.speedLimit, t.odometerM, t.engineOn,
		t.fuel, t.battery, t.coolant, t.faults, t.srcTopic, t.srcPartition, t.srcOffset}
}

// optional is v as a nullable column value: NULL when unknown(v).
func (t *telemetryRows) optional(v float64, unknown bool) *float32 {
	if unknown || math.IsNaN(v) {
		return nil
	}
	t.slab = append(t.slab, float32(v))
	return &t.slab[len(t.slab)-1]
}

// add appends ev, positions as integer micro-degrees, mapping the event's
// sentinel values to NULL: hdop 0,
// speed limit 0, fuel -1 (any negative), battery 0, coolant -273 or colder.
func (t *telemetryRows) add(ev *telemetry.Event, rec *pipelines.Record) {
	t.vehicle = append(t.vehicle, ev.VehicleID)
	t.time = append(t.time, time.UnixMilli(ev.TimeMs).UTC())
	t.device = append(t.device, ev.DeviceID)
	t.seq = append(t.seq, ev.Seq)
	t.eventID = append(t.eventID, ev.EventID)
	t.tz = append(t.tz, ev.TZ)
	t.latE6 = append(t.latE6, int32(math.Round(ev.Lat*1e6)))
	t.lonE6 = append(t.lonE6, int32(math.Round(ev.Lon*1e6)))
	t.hdop = append(t.hdop, t.optional(ev.HDOP, ev.HDOP == 0))
	t.speed = append(t.speed, float32(ev.SpeedKmh))
	t.heading = append(t.heading, float32(ev.HeadingDeg))
	t.accelLon = append(t.accelLon, float32(ev.AccelLonMS2))
	t.accelLat = append(t.accelLat, float32(ev.AccelLatMS2))
	t.speedLimit = append(t.speedLimit, t.optional(ev.SpeedLimitKmh, ev.SpeedLimitKmh <= 0))
	t.odometerM = append(t.odometerM, uint64(math.Round(max(ev.OdometerKm, 0)*1000)))
	t.engineOn = append(t.engineOn, ev.EngineOn)
	t.fuel = append(t.fuel, t.optional(ev.FuelPct, ev.FuelPct < 0))
	t.battery = append(t.battery, t.optional(ev.BatteryV, ev.BatteryV == 0))
	t.coolant = append(t.coolant, t.optional(ev.CoolantC, ev.CoolantC <= -273))
	t.faults = append(t.faults, ev.FaultCodes) // nil is an empty array
	t.srcTopic = append(t.srcTopic, rec.Topic)
	t.srcPartition = append(t.srcPartition, rec.Partition)
	t.srcOffset = append(t.srcOffset, rec.Offset)
}

// row is one row of a table written with Append.
type row []any

const scoresInsert = `INSERT INTO daily_scores (date, vehicle_id, id, device_id, tz, window_start, window_end,
	config_version, distance_km, gps_km, odometer_km, driving_s, harsh_brake, harsh_accel, harsh_corner,
	speeding_s, night_s, fatigue_events, events, late_events, gps_jumps, hdop_rejected, odometer_rollbacks,
	score, points, flags, flag_reasons, events_hash, src_topic, src_partition, src_offset)`

// scoreRow maps a minecart.scoring.DailyScore native record.
func scoreRow(m map[string]any, rec *pipelines.Record) (row, error) {
	g := getter{m: m}
	date, err := time.Parse(time.DateOnly, g.str("date"))
	if err != nil && g.err == nil {
		g.err = fmt.Errorf("date: %w", err)
	}
	var late *uint64
	if v, ok := g.union("late_events", "long").(int64); ok {
		u := uint64(max(v, 0))
		late = &u
	}
	r := row{date, g.str("vehicle_id"), g.str("id"), g.str("device_id"), g.str("tz"), g.time("window_start"), g.time("window_end"),
		g.str("config_version"), g.f64("distance_km"), g.f64("gps_km"), g.f64("odometer_km"), g.u32("driving_s"),
		g.u32("harsh_brake"), g.u32("harsh_accel"), g.u32("harsh_corner"), g.u32("speeding_s"), g.u32("night_s"),
		g.u32("fatigue_events"), uint64(g.i64("events")), late, g.u32("gps_jumps"), uint64(g.i64("hdop_rejected")),
		g.u32("odometer_rollbacks"), float32(g.f64("score")), g.i64("points"), g.strs("flags"), g.strs("flag_reasons"),
		string(g.bytes("events_hash")), rec.Topic, rec.Partition, rec.Offset}
	return r, g.err
}

const ledgerInsert = `INSERT INTO ledger_entries (leaf_index, block_height, tree_size, block_time, kind, id, vehicle_id,
	account, delta, date, config_version, reason, redemption_id, ref, root, entry, src_topic, src_partition, src_offset)`

// ledgerRow maps a minecart.ledger.Entry native record.
func ledgerRow(m map[string]any, rec *pipelines.Record) (row, error) {
	g := getter{m: m}
	var date *time.Time
	if s := g.str("date"); s != "" {
		d, err := time.Parse(time.DateOnly, s)
		if err != nil && g.err == nil {
			g.err = fmt.Errorf("date: %w", err)
		}
		date = &d
	}
	r := row{uint64(g.i64("leaf_index")), uint64(g.i64("block_height")), uint64(g.i64("tree_size")),
		time.UnixMilli(g.i64("block_timestamp_ms")).UTC(), g.str("kind"), g.str("id"), g.str("vehicle_id"),
		g.str("account"), g.i64("delta"), date, g.str("config_version"), g.str("reason"), g.str("redemption_id"),
		g.str("ref"), hex.EncodeToString(g.bytes("root")), string(g.bytes("entry")), rec.Topic, rec.Partition, rec.Offset}
	return r, g.err
}

const redemptionsInsert = `INSERT INTO redemptions (redemption_id, updated, status, requested, idempotency_key, owner,
	partner, item_id, quantity, points, reason, seq, partner_ref, debit_leaf_index, debit_block_height,
	src_topic, src_partition, src_offset)`

// redemptionRow maps a minecart.settlement.Redemption native record.
func redemptionRow(m map[string]any, rec *pipelines.Record) (row, error) {
	g := getter{m: m}
	var reason, ref *string
	if s, ok := g.union("reason", "string").(string); ok {
		reason = &s
	}
	if s, ok := g.union("partner_ref", "string").(string); ok {
		ref = &s
	}
	var leaf, height *uint64
	if d, ok := g.union("debit", "minecart.settlement.LedgerProof").(map[string]any); ok {
		dg := getter{m: d}
		l, h := uint64(dg.i64("leaf_index")), uint64(dg.i64("block_height"))
		if dg.err != nil && g.err == nil {
			g.err = dg.err
		}
		leaf, height = &l, &h
	}
	q := g.i64("quantity")
	r := row{g.str("redemption_id"), g.time("updated_ms"), g.str("status"), g.time("requested_ms"),
		g.str("idempotency_key"), g.str("owner"), g.str("partner"), g.str("item_id"), uint32(max(q, 0)),
		g.i64("points"), reason, g.i64("seq"), ref, leaf, height, rec.Topic, rec.Partition, rec.Offset}
	return r, g.err
}

// getter reads goavro native values, remembering the first type error.
type getter struct {
	m   map[string]any
	err error
}

func (g *getter) fail(k string, v any, want string) {
	if g.err == nil {
		g.err = fmt.Errorf("field %s: want %s, have %T", k, want, v)
	}
}

func (g *getter) str(k string) string {
	v, ok := g.m[k].(string)
	if !ok {
		g.fail(k, g.m[k], "string")
	}
	return v
}

func (g *getter) f64(k string) float64 {
	v, ok := g.m[k].(float64)
	if !ok {
		g.fail(k, g.m[k], "double")
	}
	return v
}

func (g *getter) i64(k string) int64 {
	switch v := g.m[k].(type) {
	case int64:
		return v
	case int32:
		return int64(v)
	case int:
		return int64(v)
	}
	g.fail(k, g.m[k], "long")
	return 0
}

func (g *getter) u32(k string) uint32 {
	v := g.i64(k)
	if v < 0 || v > math.MaxUint32 {
		if g.err == nil {
			g.err = fmt.Errorf("field %s: %d out of range", k, v)
		}
		return 0
	}
	return uint32(v)
}

func (g *getter) time(k string) time.Time {
	switch v := g.m[k].(type) {
	case time.Time:
		return v.UTC()
	case int64:
		return time.UnixMilli(v).UTC()
	}
	g.fail(k, g.m[k], "timestamp-millis")
	return time.Time{}
}

func (g *getter) bytes(k string) []byte {
	v, ok := g.m[k].([]byte)
	if !ok {
		g.fail(k, g.m[k], "bytes")
	}
	return v
}

func (g *getter) strs(k string) []string {
	a, ok := g.m[k].([]any)
	if !ok {
		g.fail(k, g.m[k], "array of string")
		return []string{}
	}
	out := make([]string, 0, len(a))
	for _, v := range a {
		s, ok := v.(string)
		if !ok {
			g.fail(k, v, "string item")
		}
		out = append(out, s)
	}
	return out
}

// union returns the branch value of a ["null", T] union, nil for null.
func (g *getter) union(k, branch string) any {
	switch v := g.m[k].(type) {
	case nil:
		return nil
	case map[string]any:
		return v[branch]
	default:
		g.fail(k, v, "union")
		return nil
	}
}
