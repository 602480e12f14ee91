package loadtest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/loadtest/fleet"
	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/telemetry"
	"github.com/minecart/minecart/services/telemetry/wire"
)

var monday = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)

// normal makes decoded and simulated events comparable (nil and empty
// fault code lists are the same).
func normal(e telemetry.Event) telemetry.Event {
	if len(e.FaultCodes) == 0 {
		e.FaultCodes = nil
	}
	return e
}

// TestKafkaProducer writes a simulated fleet with kafka-go into a real
// (kfake) broker and reads it back with franz-go: every event arrives,
// byte-for-byte the same after decoding, on the partition franz-go's (and
// Java's) murmur2 partitioner picks for the vehicle, in order.
func TestKafkaProducer(t *testing.T) {
	const parts = 8
	c, err := kfake.NewCluster(kfake.Ports(0), kfake.SeedTopics(parts, pipelines.TopicTelemetryRaw))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sim, err := fleet.New(fleet.Config{Seed: 5, Vehicles: 6, Days: 1, Start: monday})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]telemetry.Event{}
	for ch := range sim.Chunks() {
		for _, e := range ch.Events {
			want[e.EventID] = e
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := NewKafkaProducer(KafkaConfig{Brokers: c.ListenAddrs(), CallSize: 4000})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := p.SendChunks(ctx, sim.Chunks())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kafka-go: %v", rep)
	if rep.Events != int64(len(want)) || rep.Failed != 0 {
		t.Fatalf("report %d events, %d failed; simulated %d", rep.Events, rep.Failed, len(want))
	}
	recs, err := kafkatest.ReadCommitted(ctx, c.ListenAddrs(), pipelines.TopicTelemetryRaw)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(want) {
		t.Fatalf("read %d records, produced %d", len(recs), len(want))
	}
	codec, err := wire.NewCodec(schemas.SingleObject())
	if err != nil {
		t.Fatal(err)
	}
	part := kgo.StickyKeyPartitioner(nil).ForTopic(pipelines.TopicTelemetryRaw)
	lastSeq := map[string]uint64{}
	for _, r := range recs {
		ev, err := codec.DecodeEvent(r.Value, telemetry.Limits{})
		if err != nil {
			t.Fatalf("partition %d offset %d: %v", r.Partition, r.Offset, err)
		}
		w, ok := want[ev.EventID]
		if !ok || !reflect.DeepEqual(normal(ev), normal(w)) {
			t.Fatalf("record %s differs:\n got %+v\nwant %+v", ev.EventID, ev, w)
		}
		delete(want, ev.EventID)
		if string(r.Key) != ev.VehicleID || string(r.Header("device")) != ev.DeviceID {
			t.Fatalf("record %s: key %q header %q", ev.EventID, r.Key, r.Header("device"))
		}
		if p := part.Partition(&kgo.Record{Key: r.Key}, parts); int32(p) != r.Partition {
			t.Fatalf("vehicle %s on partition %d, franz-go would use %d", r.Key, r.Partition, p)
		}
		if ev.Seq <= lastSeq[ev.DeviceID] {
			t.Fatalf("device %s: seq %d after %d", ev.DeviceID, ev.Seq, lastSeq[ev.DeviceID])
		}
		lastSeq[ev.DeviceID] = ev.Seq
	}
	if len(want) != 0 {
		t.Fatalf("%d events missing", len(want))
	}
}
