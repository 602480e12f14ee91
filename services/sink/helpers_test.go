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
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/sink"
	"github.com/minecart/minecart/services/telemetry"
)

var serde = schemas.SingleObject()

func connect(t testing.TB, srv *chtest.Server) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{srv.Addr}, Protocol: clickhouse.HTTP,
		Auth: clickhouse.Auth{Username: srv.Writer.Name, Password: srv.Writer.Password}})
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

func encode(t testing.TB, r schemas.Record) []byte {
	t.Helper()
	b, err := serde.Marshal(r)
	if err != nil {
		t.Fatalf("encode %s: %v", r.AvroName(), err)
	}
	return b
}

func score(vehicle, date string, points int64, flags ...string) *avro.DailyScore {
	d, _ := time.Parse(time.DateOnly, date)
	s := &avro.DailyScore{
		ID: vehicle + "/" + date, VehicleID: vehicle, DeviceID: "d-" + vehicle, Date: date, TZ: "UTC",
		WindowStart: d, WindowEnd: d.Add(24 * time.Hour), ConfigVersion: "v1",
		DistanceKm: 42.5, GpsKm: 42.5, OdometerKm: 43.0, DrivingS: 3600, HarshBrake: 2, HarshAccel: 1, SpeedingS: 30,
		Events: 3600, HDOPRejected: 3, Score: 91.5, Points: points, EventsHash: make([]byte, 32),
	}
	for _, f := range flags {
		s.Flags = append(s.Flags, f)
		s.FlagReasons = append(s.FlagReasons, "because "+f)
	}
	return s
}

func entry(leaf int64, kind avro.EntryKind, id, vehicle, account string, delta int64, at time.Time) *avro.LedgerEntry {
	date := ""
	if kind == avro.EntryKindCredit {
		date = at.Format(time.DateOnly)
	}
	return &avro.LedgerEntry{
		Entry: []byte("entry-" + id), LeafIndex: leaf, BlockHeight: leaf / 10, TreeSize: leaf + 1, Root: make([]byte, 32),
		Checkpoint: "cp", Kind: kind, ID: id, VehicleID: vehicle, Account: account, Delta: delta, Date: date,
		ConfigVersion: "v1", BlockTimestampMs: at.UnixMilli(),
	}
}

// transferEntry is a kind-5 entry: debit pays credit, delta the effect
// on debit.
func transferEntry(leaf int64, id, debit, credit string, delta int64, at time.Time) *avro.LedgerEntry {
	e := entry(leaf, avro.EntryKindTransfer, id, "", debit, delta, at)
	e.CounterAccount = credit
	return e
}

func redemption(id string, status avro.RedemptionStatus, points int64, at time.Time, debitLeaf int64) *avro.Redemption {
	r := &avro.Redemption{
		RedemptionID: id, IdempotencyKey: "k-" + id, Owner: "alice", Partner: "fuelco", ItemID: "voucher-10",
		Quantity: 1, Points: points, Status: status, Seq: 1, RequestedMs: at, UpdatedMs: at,
	}
	if debitLeaf >= 0 {
		r.Debit = &avro.LedgerProof{EntryID: id, LeafIndex: debitLeaf, BlockHeight: 7, TreeSize: debitLeaf + 1,
			Root: make([]byte, 32), LeafHash: make([]byte, 32), Checkpoint: "cp"}
	}
	return r
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

// runSink runs the sink as its main does (Open, MigrateWhenUp, NewStage,
// kafka.RunSink) until the returned stop is called or the test ends.
func runSink(t testing.TB, rcfg kafka.Config, dsn string, cfg sink.Config) (stop func()) {
	t.Helper()
	conn, err := sink.Open(dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := chschema.MigrateWhenUp(context.Background(), conn, rcfg.Logger); err != nil {
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
