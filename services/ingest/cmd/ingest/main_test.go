package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/daemon/daemontest"
	"github.com/minecart/minecart/services/telemetry"
	"github.com/minecart/minecart/services/telemetry/wire"
)

// TestMainSASL runs the command as docker-compose does (brokers and
// SCRAM-SHA-512 credentials from the environment, topics created by the
// command): a good raw event comes out clean, a bad one is dead-lettered,
// and a cancelled context ends run without error.
func TestMainSASL(t *testing.T) {
	cfg := daemontest.Broker(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"--metrics-addr", "", "--instance-id", "test-0"}) }()
	daemontest.WaitGroup(t, cfg, "ingest", 30*time.Second)

	codec, err := wire.NewCodec(schemas.SingleObject())
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-time.Hour).UnixMilli()
	good := telemetry.Event{EventID: "e1", DeviceID: "dev-1", VehicleID: "veh-1", Seq: 1, TimeMs: at, TZ: "Asia/Shanghai",
		Lat: 31.2, Lon: 121.4, SpeedKmh: 50, OdometerKm: 1000, FuelPct: -1, CoolantC: -273}
	bad := good
	bad.EventID, bad.Seq, bad.SpeedKmh = "e2", 2, 900
	p, err := kafka.NewProducer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var recs []kafka.Output
	for _, ev := range []telemetry.Event{good, bad} {
		recs = append(recs, kafka.Output{Topic: pipelines.TopicTelemetryRaw, Key: []byte(ev.VehicleID),
			Value: codec.AppendEvent(nil, &ev), Headers: []pipelines.Header{{Key: "device", Value: []byte(ev.DeviceID)}}})
	}
	if err := p.ProduceBatch(ctx, recs); err != nil {
		t.Fatal(err)
	}
	clean := daemontest.Read(t, cfg, pipelines.TopicTelemetryClean, 1, 30*time.Second)
	if string(clean[0].Key) != "veh-1" {
		t.Errorf("clean key %q", clean[0].Key)
	}
	dead := daemontest.Read(t, cfg, pipelines.TopicDeadLetter, 1, 30*time.Second)
	if !strings.Contains(string(dead[0].Value), "speed") {
		t.Errorf("dead letter %q does not give the speed as its reason", dead[0].Value)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}
