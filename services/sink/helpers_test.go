package sink_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/minecart/minecart/infra/chserver/chtest"
	chschema "github.com/minecart/minecart/infra/clickhouse"
	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/sink"
	"github.com/minecart/minecart/services/telemetry"
)

var serde = schemas.SingleObject()

func connect(t testing.TB, srv *chtest.Server) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{srv.Addr}, Protocol: clickhouse.HTTP})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func migrated(t testing.TB) (*chtest.Server, driver.Conn) {
	t.Helper()
	srv := chtest.Start(t)
	conn := connect(t, srv)
	if err := chschema.Migrate(context.Background(), conn); err != nil {
		t.Fatal(err)
	}
	return srv, conn
}

var base = time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)

// event is the i-th event of a small synthetic fleet.
func event(i int) telemetry.Event {
	v := i % 50
	n := i / 50
	ev := telemetry.Event{
		EventID: fmt.Sprintf("e-%d", i), DeviceID: fmt.Sprintf("d-%03d", v), VehicleID: fmt.Sprintf("v-%03d", v),
		Seq: uint64(n + 1), TimeMs: base.Add(time.Duration(n) * time.Second).UnixMilli(), TZ: "Europe/Berlin",
		Lat: 52.5 + float64(v)/100 + float64(n)*1e-5, Lon: 13.4 + float64(n)*1e-5, HDOP: 0.9,
		SpeedKmh: float64(n % 120), HeadingDeg: 90, AccelLonMS2: float64(n%9) - 4.5, AccelLatMS2: 0.2,
		SpeedLimitKmh: 50, OdometerKm: 10000 + float64(n)*0.02, EngineOn: true, FuelPct: 55, BatteryV: 12.6, CoolantC: 88,
	}
	if n%100 == 0 {
		ev.FaultCodes = []string{"P0301"}
	}
	return ev
}

func encodeEvent(t testing.TB, ev telemetry.Event) []byte {
	t.Helper()
	b, err := serde.Encode(schemas.TelemetryEvent, telemetry.ToNative(&ev))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func encode(t testing.TB, name string, m map[string]any) []byte {
	t.Helper()
	b, err := serde.Encode(name, m)
	if err != nil {
		t.Fatalf("encode %s: %v", name, err)
	}
	return b
}

func scoreNative(vehicle, date string, points int64, flags ...string) map[string]any {
	d, _ := time.Parse(time.DateOnly, date)
	fl := []any{}
	reasons := []any{}
	for _, f := range flags {
		fl = append(fl, f)
		reasons = append(reasons, "because "+f)
	}
	return map[string]any{
		"id": vehicle + "/" + date, "vehicle_id": vehicle, "device_id": "d-" + vehicle, "date": date, "tz": "UTC",
		"window_start": d, "window_end": d.Add(24 * time.Hour), "config_version": "v1",
		"distance_km": 42.5, "gps_km": 42.5, "odometer_km": 43.0, "driving_s": int64(3600),
		"harsh_brake": int32(2), "harsh_accel": int32(1), "harsh_corner": int32(0), "speeding_s": int64(30),
		"night_s": int64(0), "fatigue_events": int32(0), "events": int64(3600), "late_events": nil,
		"gps_jumps": int32(0), "hdop_rejected": int64(3), "odometer_rollbacks": int32(0),
		"score": 91.5, "points": points, "flags": fl, "flag_reasons": reasons, "events_hash": make([]byte, 32),
	}
}

func entryNative(leaf int64, kind, id, vehicle, account string, delta int64, at time.Time) map[string]any {
	date := ""
	if kind == "credit" {
		date = at.Format(time.DateOnly)
	}
	return map[string]any{
		"entry": []byte("entry-" + id), "leaf_index": leaf, "block_height": leaf / 10, "tree_size": leaf + 1,
		"root": make([]byte, 32), "proof": []any{}, "checkpoint": "cp", "kind": kind, "id": id,
		"vehicle_id": vehicle, "account": account, "delta": delta, "date": date, "config_version": "v1",
		"events_hash": []byte{}, "reason": "", "redemption_id": "", "ref": "", "block_timestamp_ms": at.UnixMilli(),
	}
}

func redemptionNative(id, status string, points int64, at time.Time, debitLeaf int64) map[string]any {
	var debit any
	if debitLeaf >= 0 {
		debit = map[string]any{"minecart.settlement.LedgerProof": map[string]any{
			"entry_id": id, "leaf_index": debitLeaf, "block_height": int64(7), "tree_size": debitLeaf + 1,
			"root": make([]byte, 32), "leaf_hash": make([]byte, 32), "leaf": []byte{}, "audit_path": []any{}, "checkpoint": "cp"}}
	}
	return map[string]any{
		"redemption_id": id, "idempotency_key": "k-" + id, "owner": "alice", "partner": "fuelco", "item_id": "voucher-10",
		"quantity": int32(1), "points": points, "status": status, "reason": nil, "seq": int64(1),
		"requested_ms": at, "updated_ms": at, "partner_ref": nil, "debit": debit,
	}
}

// newStage is the sink stage over conn with cfg, failing the test on error.
func newStage(t testing.TB, conn driver.Conn, cfg sink.Config) pipelines.SinkStage {
	t.Helper()
	cfg.Conn = conn
	st, err := sink.NewStage(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// runSink runs the sink as its main does (Open, Migrate, NewStage,
// kafka.RunSink) until the returned stop is called or the test ends.
func runSink(t testing.TB, rcfg kafka.Config, dsn string, cfg sink.Config) (stop func()) {
	t.Helper()
	conn, err := sink.Open(dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := sink.Migrate(context.Background(), conn, rcfg.Logger); err != nil {
		t.Fatal(err)
	}
	return kafkatest.RunSink(t, rcfg, newStage(t, conn, cfg))
}

// waitCount polls q until it returns want or the deadline passes.
func waitCount(t testing.TB, conn driver.Conn, q string, want uint64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	var n uint64
	for {
		err := conn.QueryRow(context.Background(), q).Scan(&n)
		if err == nil && n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %d (err %v), want %d", q, n, err, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
