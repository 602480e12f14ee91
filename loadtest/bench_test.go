package loadtest

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/minecart/minecart/loadtest/fleet"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/services/gateway"
	"github.com/minecart/minecart/services/telemetry"
)

// BenchmarkIngestPaths pushes the same simulated events (generated before
// the clock starts) into a real embedded broker three ways and reports
// each rate: kafka-go straight into the raw topic (the baseline), and
// through the real gateway over loopback HTTP with JSON and with Avro
// bodies of 100 events. The ratios say what the HTTP edge costs.
//
//	go test -run XXX -bench IngestPaths -benchtime 1x ./loadtest
func BenchmarkIngestPaths(b *testing.B) {
	sim, err := fleet.New(fleet.Config{Seed: 1, Vehicles: 200, Days: 1, Start: monday})
	if err != nil {
		b.Fatal(err)
	}
	var events []telemetry.Event
	for c := range sim.Chunks() {
		events = append(events, c.Events...)
		if len(events) >= 200_000 {
			break
		}
	}
	regKey, _ := gateway.GenerateRegistryKey()
	for b.Loop() {
		brokers := kafkatest.Broker(b)
		pcfg := kafkatest.Config(brokers)
		pcfg.Logger = nil
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		prod, err := kafka.NewProducer(pcfg)
		if err != nil {
			b.Fatal(err)
		}
		if err := Provision(ctx, prod, nil, regKey, sim.Devices(), "Asia/Shanghai", time.Now()); err != nil {
			b.Fatal(err)
		}
		prod.Close()
		gw, err := gateway.New(ctx, gateway.Config{Pipelines: pcfg, DeviceKey: regKey, DeviceRate: -1})
		if err != nil {
			b.Fatal(err)
		}
		srv := httptest.NewServer(gw.Handler())

		kp, err := NewKafkaProducer(KafkaConfig{Brokers: brokers})
		if err != nil {
			b.Fatal(err)
		}
		if err := kp.Send(ctx, events); err != nil {
			b.Fatal(err)
		}
		kr, err := kp.Close()
		if err != nil {
			b.Fatal(err)
		}
		rates := map[string]Report{}
		for _, f := range []string{FormatJSON, FormatAvro} {
			s, err := NewSender(SenderConfig{URL: srv.URL, Devices: sim.Devices(), Format: f, Concurrency: 32})
			if err != nil {
				b.Fatal(err)
			}
			if err := s.Send(ctx, events); err != nil {
				b.Fatal(err)
			}
			r, err := s.Close()
			if err != nil || r.Events != int64(len(events)) {
				b.Fatalf("%s: %v (%v)", f, err, r)
			}
			rates[f] = r
		}
		srv.Close()
		gw.Close()
		cancel()
		b.Logf("kafka-go direct: %v", kr)
		b.Logf("gateway json:    %v", rates[FormatJSON])
		b.Logf("gateway avro:    %v", rates[FormatAvro])
		b.ReportMetric(kr.EventsPerSec, "kafka-go_events/s")
		b.ReportMetric(rates[FormatJSON].EventsPerSec, "gw_json_events/s")
		b.ReportMetric(rates[FormatAvro].EventsPerSec, "gw_avro_events/s")
		b.ReportMetric(rates[FormatJSON].EventsPerSec/kr.EventsPerSec, "json_x_kafka-go")
		b.ReportMetric(rates[FormatAvro].EventsPerSec/kr.EventsPerSec, "avro_x_kafka-go")
		b.ReportMetric(float64(rates[FormatAvro].P99.Microseconds()), "gw_avro_p99_us")
	}
}
