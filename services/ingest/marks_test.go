package ingest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/telemetry"
	"github.com/minecart/minecart/services/telemetry/wire"
)

// TestStageForwardsMarks: every gateway time mark on raw partition p comes
// out on clean partition p, in the same place among that partition's
// events (a re-uploaded event dropped by de-duplication aside), and a bad
// mark is dead-lettered as bad_mark.
func TestStageForwardsMarks(t *testing.T) {
	brokers := kafkatest.Broker(t)
	serde := schemas.SingleObject()
	codec, _ := wire.NewCodec(serde)
	mark := func(p int32, minute int, gw string) kafka.Output {
		b, err := serde.Marshal(&avro.TimeMark{Gateway: gw, Partition: p, TimeMs: now.Add(time.Duration(minute) * time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		return kafka.Output{Topic: pipelines.TopicTelemetryRaw, Key: []byte(pipelines.MarkKeyPrefix + gw), Value: b,
			Headers: pipelines.MarkHeaders(), ToPartition: true, Partition: p}
	}
	var recs []kafka.Output
	for round := range 3 {
		for p := range int32(pipelines.TelemetryPartitions) {
			recs = append(recs, mark(p, round, "gw"))
		}
		for v := range 10 {
			ev := event(fmt.Sprintf("v%02d", v), round)
			recs = append(recs, kafka.Output{Topic: pipelines.TopicTelemetryRaw, Key: []byte(ev.VehicleID), Value: codec.AppendEvent(nil, &ev)})
			if round == 2 { // a re-upload: dropped
				recs = append(recs, recs[len(recs)-1])
			}
		}
	}
	bad := mark(1, 9, "gw")
	bad.Partition = 2 // says 1, sits on 2
	recs = append(recs, bad)
	kafkatest.Produce(t, brokers, recs...)

	st, err := NewStage(Config{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	stop := kafkatest.Run(t, kafkatest.Config(brokers), st)
	kafkatest.WaitRecords(t, brokers, pipelines.TopicDeadLetter, 1, 30*time.Second)
	stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	shape := func(topic string, dedup bool) map[int32][]string {
		rs, err := kafkatest.ReadCommitted(ctx, brokers, topic)
		if err != nil {
			t.Fatal(err)
		}
		out := map[int32][]string{}
		seen := map[string]bool{}
		for _, r := range rs {
			s := "e:"
			if pipelines.IsMark(&r) {
				var m avro.TimeMark
				if err := serde.Unmarshal(r.Value, &m); err != nil || m.Partition != r.Partition {
					continue // the bad one (raw only)
				}
				s = "m:" + m.TimeMs.Format("1504")
			} else {
				ev, err := codec.DecodeEvent(r.Value, telemetry.Limits{})
				if err != nil {
					t.Fatal(err)
				}
				if s += ev.EventID + "/" + ev.VehicleID; dedup && seen[s] {
					continue
				}
				seen[s] = true
			}
			out[r.Partition] = append(out[r.Partition], s)
		}
		return out
	}
	raw, clean := shape(pipelines.TopicTelemetryRaw, true), shape(pipelines.TopicTelemetryClean, false)
	if len(clean) != pipelines.TelemetryPartitions {
		t.Fatalf("clean partitions with records: %d", len(clean))
	}
	for p, want := range raw {
		if !slices.Equal(clean[p], want) {
			t.Fatalf("clean partition %d:\n got %v\nwant %v", p, clean[p], want)
		}
	}
	dead := kafkatest.WaitRecords(t, brokers, pipelines.TopicDeadLetter, 1, time.Second)
	var dl avro.DeadLetter
	if err := serde.Unmarshal(dead[0].Value, &dl); err != nil || dl.ReasonCode != CodeBadMark {
		t.Fatalf("dead letter %v %v", dl.ReasonCode, err)
	}
}
