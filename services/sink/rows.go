package sink

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/shred"
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
	score, points, flags, flag_reasons, events_hash, revision, release_ms, late_added, region,
	src_topic, src_partition, src_offset)`

// transientError is a failure to read the pseudonym keys: the batch is
// retried, the record is not dead-lettered.
type transientError struct{ error }

func (e transientError) Unwrap() error { return e.error }

// open returns the value of rec to decode and its schema name: for a
// sealed record (docs/privacy.md) its inner value once opened, or
// shredded = true when its identity's key is destroyed (counted; no row).
// A sealed record that does not open is an error (dead-lettered), the
// pseudonyms topic out of reach a transientError.
func (w *writer) open(ctx context.Context, rec *pipelines.Record) (value []byte, name string, shredded bool, err error) {
	value = rec.Value
	name, err = w.serde.Name(value)
	if err != nil || name != schemas.Sealed {
		return value, name, false, err
	}
	if w.unseal == nil {
		return nil, "", false, fmt.Errorf("a sealed record on %s, and the sink has no pseudonym keys to open it", rec.Topic)
	}
	_, inner, _, err := w.unseal.Unseal(ctx, rec.Topic, rec.Key, value)
	switch {
	case errors.Is(err, shred.ErrShredded):
		w.m.shredded.Inc()
		return nil, "", true, nil
	case errors.Is(err, shred.ErrBad):
		return nil, "", false, err
	case err != nil:
		return nil, "", false, transientError{err}
	}
	name, err = w.serde.Name(inner)
	return inner, name, false, err
}

// scoreRow maps a record of the scores topic: a DailyScore to its row (each
// revision of a vehicle-day its own row, docs/analytics.md), a Watermark
// to none, a sealed score (docs/privacy.md) to its inner score's row, or
// to none when its vehicle's key is destroyed.
func (w *writer) scoreRow(ctx context.Context, rec *pipelines.Record) (row, error) {
	value, name, shredded, err := w.open(ctx, rec)
	if shredded {
		return nil, nil // names nobody any more: no row
	}
	switch {
	case err != nil:
		return nil, err
	case name == schemas.Watermark:
		return nil, w.serde.Unmarshal(value, &avro.Watermark{})
	case name != schemas.DailyScore:
		return nil, fmt.Errorf("record %s on %s", name, rec.Topic)
	}
	var s avro.DailyScore
	if err := w.serde.Unmarshal(value, &s); err != nil {
		return nil, err
	}
	date, err := time.Parse(time.DateOnly, s.Date)
	if err != nil {
		return nil, fmt.Errorf("date: %w", err)
	}
	var late *uint64
	if s.LateEvents != nil {
		u := uint64(max(*s.LateEvents, 0))
		late = &u
	}
	var c counts
	return row{date, s.VehicleID, s.ID, s.DeviceID, s.TZ, s.WindowStart, s.WindowEnd, s.ConfigVersion, s.DistanceKm, s.GpsKm,
		s.OdometerKm, c.u32("driving_s", s.DrivingS), c.u32("harsh_brake", int64(s.HarshBrake)), c.u32("harsh_accel", int64(s.HarshAccel)),
		c.u32("harsh_corner", int64(s.HarshCorner)), c.u32("speeding_s", s.SpeedingS), c.u32("night_s", s.NightS),
		c.u32("fatigue_events", int64(s.FatigueEvents)), uint64(s.Events), late, c.u32("gps_jumps", int64(s.GpsJumps)),
		uint64(s.HDOPRejected), c.u32("odometer_rollbacks", int64(s.OdometerRollbacks)), float32(s.Score), s.Points,
		strs(s.Flags), strs(s.FlagReasons), string(s.EventsHash), c.u32("revision", int64(s.Revision)), s.ReleaseMs,
		uint64(max(s.LateAdded, 0)), nullable(s.Region), rec.Topic, rec.Partition, rec.Offset}, c.err
}

const ledgerInsert = `INSERT INTO ledger_entries (leaf_index, block_height, tree_size, block_time, kind, id, vehicle_id,
	account, counter_account, delta, date, config_version, reason, redemption_id, ref, root, entry, src_topic, src_partition, src_offset)`

// ledgerRow maps a minecart.ledger.Entry record.
func (w *writer) ledgerRow(rec *pipelines.Record) (row, error) {
	var e avro.LedgerEntry
	if err := w.serde.Unmarshal(rec.Value, &e); err != nil {
		return nil, err
	}
	var date *time.Time
	if e.Date != "" {
		d, err := time.Parse(time.DateOnly, e.Date)
		if err != nil {
			return nil, fmt.Errorf("date: %w", err)
		}
		date = &d
	}
	return row{uint64(e.LeafIndex), uint64(e.BlockHeight), uint64(e.TreeSize), time.UnixMilli(e.BlockTimestampMs).UTC(),
		string(e.Kind), e.ID, e.VehicleID, e.Account, e.CounterAccount, e.Delta, date, e.ConfigVersion, e.Reason, e.RedemptionID, e.Ref,
		hex.EncodeToString(e.Root), string(e.Entry), rec.Topic, rec.Partition, rec.Offset}, nil
}

const redemptionsInsert = `INSERT INTO redemptions (redemption_id, updated, status, requested, idempotency_key, owner,
	partner, item_id, quantity, points, reason, seq, partner_ref, debit_leaf_index, debit_block_height,
	src_topic, src_partition, src_offset)`

// redemptionRow maps a minecart.settlement.Redemption record (its optional
// strings, written as null when empty, to NULL).
func (w *writer) redemptionRow(ctx context.Context, rec *pipelines.Record) (row, error) {
	value, name, shredded, err := w.open(ctx, rec)
	switch {
	case shredded:
		return nil, nil
	case err != nil:
		return nil, err
	case name != schemas.Redemption:
		return nil, fmt.Errorf("record %s on %s", name, rec.Topic)
	}
	var r avro.Redemption
	if err := w.serde.Unmarshal(value, &r); err != nil {
		return nil, err
	}
	opt := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	var leaf, height *uint64
	if r.Debit != nil {
		l, h := uint64(r.Debit.LeafIndex), uint64(r.Debit.BlockHeight)
		leaf, height = &l, &h
	}
	return row{r.RedemptionID, r.UpdatedMs, string(r.Status), r.RequestedMs, r.IdempotencyKey, r.Owner, r.Partner, r.ItemID,
		uint32(max(r.Quantity, 0)), r.Points, opt(r.Reason), r.Seq, opt(r.PartnerRef), leaf, height,
		rec.Topic, rec.Partition, rec.Offset}, nil
}

// counts converts counts to UInt32 columns, keeping the first that does
// not fit.
type counts struct{ err error }

func (c *counts) u32(field string, v int64) uint32 {
	if v < 0 || v > math.MaxUint32 {
		if c.err == nil {
			c.err = fmt.Errorf("field %s: %d out of range", field, v)
		}
		return 0
	}
	return uint32(v)
}

// nullable is s for a Nullable(String) column: NULL when empty (Avro null).
func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// strs is a for an Array(String) column: an empty array, never nil.
func strs(a []string) []string {
	if a == nil {
		return []string{}
	}
	return a
}
