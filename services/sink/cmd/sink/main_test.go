package main

import (
	"context"
	"testing"
	"time"

	"github.com/minecart/minecart/infra/chserver/chtest"
	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/daemon/daemontest"
	"github.com/minecart/minecart/services/sink"
)

// TestMainSASL runs the command as docker-compose does (brokers and
// SCRAM-SHA-512 credentials from the environment) with an embedded
// ClickHouse: an undecodable telemetry record is dead-lettered, so the
// sink consumed and produced over SASL; a cancelled context ends run
// without error.
func TestMainSASL(t *testing.T) {
	cfg := daemontest.Broker(t)
	srv := chtest.Start(t)
	t.Setenv("MINECART_CLICKHOUSE_DSN", srv.WriterDSN()) // the sink and its migrations need no more
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"--metrics-addr", "", "--max-wait", "50ms"}) }()
	daemontest.WaitGroup(t, cfg, "sink", 60*time.Second)
	p, err := kafka.NewProducer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.ProduceSync(ctx, pipelines.TopicTelemetryClean, []byte("v-bad"), []byte{0xC3, 0x01, 1, 2}); err != nil {
		t.Fatal(err)
	}
	dead := daemontest.Read(t, cfg, pipelines.TopicDeadLetter, 1, 30*time.Second)
	var d avro.DeadLetter
	if err := schemas.SingleObject().Unmarshal(dead[0].Value, &d); err != nil || d.ReasonCode != sink.CodeDecode || d.SourceTopic != pipelines.TopicTelemetryClean {
		t.Fatalf("dead letter %+v %v", d, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}
