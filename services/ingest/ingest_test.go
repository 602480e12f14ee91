package ingest

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/telemetry"
	"github.com/minecart/minecart/services/telemetry/wire"
)

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func event(vehicle string, seq int) telemetry.Event {
	return telemetry.Event{EventID: fmt.Sprintf("%s-e%d", vehicle, seq), DeviceID: "dev-" + vehicle, VehicleID: vehicle,
		Seq: uint64(seq), TimeMs: now.Add(-time.Hour + time.Duration(seq)*time.Second).UnixMilli(), TZ: "Asia/Shanghai",
		Lat: 31.2, Lon: 121.4, SpeedKmh: 50, OdometerKm: 1000 + float64(seq)/100, FuelPct: -1, CoolantC: -273}
}

// emitted is what a Processor emitted (the stage interface, not Kafka).
type emitted struct {
	topic     string
	partition int32
	key       string
	value     []byte
	headers   []pipelines.Header
}

type collector struct{ out []emitted }

func (c *collector) Emit(topic string, key, value []byte, h ...pipelines.Header) {
	c.out = append(c.out, emitted{topic, -1, string(key), value, slices.Clone(h)}) // Emit copies the headers slice
}

func (c *collector) EmitTo(topic string, p int32, key, value []byte, h ...pipelines.Header) {
	c.out = append(c.out, emitted{topic, p, string(key), value, slices.Clone(h)})
}

func newProcessor(t *testing.T, cfg Config) *Processor {
	t.Helper()
	cfg.Now = func() time.Time { return now }
	st, err := NewStage(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := st.NewProcessor(context.Background(), pipelines.Task{Stage: st.Name, Partition: 3})
	if err != nil {
		t.Fatal(err)
	}
	return p.(*Processor)
}

func TestProcessor(t *testing.T) {
	codec, _ := wire.NewCodec(schemas.SingleObject())
	p := newProcessor(t, Config{Validation: telemetry.ValidateConfig{MaxAge: 24 * time.Hour}})
	raw := func(ev telemetry.Event) pipelines.Record {
		return pipelines.Record{Topic: pipelines.TopicTelemetryRaw, Key: []byte(ev.VehicleID), Value: codec.AppendEvent(nil, &ev),
			Headers: []pipelines.Header{{Key: "device", Value: []byte(ev.DeviceID)}}}
	}
	var out collector
	for _, tc := range []struct {
		name string
		rec  pipelines.Record
		code string // "" = accepted
	}{
		{"good", raw(event("v1", 1)), ""},
		{"good 2", raw(event("v1", 2)), ""},
		{"other vehicle", raw(event("v2", 1)), ""},
		{"repeat", raw(event("v1", 1)), "dup"},
		{"garbage", pipelines.Record{Key: []byte("v1"), Value: []byte{0xC3, 0x01, 9, 9, 9, 9, 9, 9, 9, 9, 0}}, telemetry.CodeDecode},
		{"truncated", func() pipelines.Record { r := raw(event("v1", 3)); r.Value = r.Value[:20]; return r }(), telemetry.CodeDecode},
		{"key mismatch", func() pipelines.Record { r := raw(event("v1", 4)); r.Key = []byte("v2"); return r }(), telemetry.CodeVehicleMismatch},
		{"header mismatch", func() pipelines.Record { r := raw(event("v1", 4)); r.Headers[0].Value = []byte("x"); return r }(), CodeDeviceMismatch},
		{"speed", raw(func() telemetry.Event { e := event("v1", 5); e.SpeedKmh = 400; return e }()), telemetry.CodeSpeed},
		{"future", raw(func() telemetry.Event { e := event("v1", 6); e.TimeMs = now.Add(time.Hour).UnixMilli(); return e }()), telemetry.CodeFuture},
		{"old", raw(func() telemetry.Event { e := event("v1", 7); e.TimeMs = now.Add(-25 * time.Hour).UnixMilli(); return e }()), telemetry.CodeTooOld},
		{"tz", raw(func() telemetry.Event { e := event("v1", 8); e.TZ = "Asia/Atlantis"; return e }()), telemetry.CodeBadTZ},
		{"odometer decreased: written, marked (TestOdometerMarks)", raw(func() telemetry.Event { e := event("v1", 9); e.OdometerKm = 10; return e }()), ""},
	} {
		n := len(out.out)
		err := p.Process(context.Background(), tc.rec, &out)
		code, rejected := pipelines.RejectCode(err)
		switch {
		case tc.code == "" && (err != nil || len(out.out) != n+1):
			t.Errorf("%s: err %v, emitted %d", tc.name, err, len(out.out)-n)
		case tc.code == "dup" && (err != nil || len(out.out) != n):
			t.Errorf("%s: repeat written: err %v", tc.name, err)
		case tc.code != "" && tc.code != "dup" && (!rejected || code != tc.code || len(out.out) != n):
			t.Errorf("%s: got %v, want reject %s", tc.name, err, tc.code)
		}
	}
	for _, e := range out.out {
		if e.topic != pipelines.TopicTelemetryClean {
			t.Fatalf("emitted to %s", e.topic)
		}
		ev, err := codec.DecodeEvent(e.value, telemetry.Limits{})
		if err != nil || ev.VehicleID != e.key {
			t.Fatalf("clean record: %v %+v", err, ev)
		}
	}
	// One changelog record per vehicle per batch, to the task's partition.
	out.out = nil
	if err := p.Flush(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.out) != 2 || out.out[0].topic != pipelines.TopicIngestChangelog || out.out[0].partition != 3 {
		t.Fatalf("flush: %+v", out.out)
	}
	// A new processor restored from the changelog knows the events.
	q := newProcessor(t, Config{Validation: telemetry.ValidateConfig{MaxAge: 24 * time.Hour}})
	for _, e := range out.out {
		if err := q.Restore(context.Background(), pipelines.Record{Key: []byte(e.key), Value: e.value}); err != nil {
			t.Fatal(err)
		}
	}
	var out2 collector
	if err := q.Process(context.Background(), raw(event("v1", 2)), &out2); err != nil || len(out2.out) != 0 {
		t.Fatalf("restored processor wrote a repeat: %v", err)
	}
	if err := q.Restore(context.Background(), pipelines.Record{Key: []byte("v9"), Value: []byte("junk")}); err != nil {
		t.Fatalf("corrupt changelog record must be skipped: %v", err)
	}
	// Tick forgets vehicles idle past MaxAge, with tombstones.
	out2.out = nil
	if err := q.Tick(context.Background(), now.Add(48*time.Hour), &out2); err != nil {
		t.Fatal(err)
	}
	if len(out2.out) != 2 || out2.out[0].value != nil || q.dedup.Len() != 0 {
		t.Fatalf("tick: %+v", out2.out)
	}
}

// TestStage runs the stage on a real broker: re-uploaded events are
// written once, bad ones are dead-lettered with their bytes and reason,
// and after a restart the restored state still drops repeats.
func TestStage(t *testing.T) {
	brokers := kafkatest.Broker(t)
	codec, _ := wire.NewCodec(schemas.SingleObject())
	st, err := NewStage(Config{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	const vehicles, per = 20, 30
	batch := func(from, to int) []kafka.Output {
		var recs []kafka.Output
		for v := 0; v < vehicles; v++ {
			for s := from; s < to; s++ {
				ev := event(fmt.Sprintf("v%02d", v), s)
				recs = append(recs, kafka.Output{Topic: pipelines.TopicTelemetryRaw, Key: []byte(ev.VehicleID),
					Value: codec.AppendEvent(nil, &ev), Headers: []pipelines.Header{{Key: "device", Value: []byte(ev.DeviceID)}}})
			}
		}
		return recs
	}
	bad := event("v00", 999)
	bad.SpeedKmh = 1000
	badRec := kafka.Output{Topic: pipelines.TopicTelemetryRaw, Key: []byte("v00"), Value: codec.AppendEvent(nil, &bad)}
	first := batch(0, per)
	kafkatest.Produce(t, brokers, append(first, badRec)...)
	kafkatest.Produce(t, brokers, batch(0, per/2)...) // a re-upload of the first half
	stop := kafkatest.Run(t, kafkatest.Config(brokers), st)
	kafkatest.WaitRecords(t, brokers, pipelines.TopicTelemetryClean, vehicles*per, 30*time.Second)
	dead := kafkatest.WaitRecords(t, brokers, pipelines.TopicDeadLetter, 1, 10*time.Second)
	stop()
	// Restart: a second re-upload, and new events.
	kafkatest.Produce(t, brokers, batch(per/2, per+5)...)
	stop = kafkatest.Run(t, kafkatest.Config(brokers), st)
	kafkatest.WaitRecords(t, brokers, pipelines.TopicTelemetryClean, vehicles*(per+5), 30*time.Second)
	stop()
	clean, err := kafkatest.ReadCommitted(context.Background(), brokers, pipelines.TopicTelemetryClean)
	if err != nil {
		t.Fatal(err)
	}
	if len(clean) != vehicles*(per+5) {
		t.Fatalf("clean topic has %d records, want %d (each event once)", len(clean), vehicles*(per+5))
	}
	seen := map[string]bool{}
	for _, r := range clean {
		ev, err := codec.DecodeEvent(r.Value, telemetry.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if seen[ev.EventID] || string(r.Key) != ev.VehicleID {
			t.Fatalf("event %s twice or under key %q", ev.EventID, r.Key)
		}
		seen[ev.EventID] = true
	}
	if len(dead) != 1 {
		t.Fatalf("%d dead letters", len(dead))
	}
	var dl avro.DeadLetter
	if err := schemas.SingleObject().Unmarshal(dead[0].Value, &dl); err != nil {
		t.Fatal(err)
	}
	if dl.ReasonCode != telemetry.CodeSpeed || string(dl.Value) != string(badRec.Value) {
		t.Fatalf("dead letter: %v", dl.ReasonCode)
	}
	// The changelog holds a few records per vehicle (one per batch), not one per event.
	cl, err := kafkatest.ReadCommitted(context.Background(), brokers, pipelines.TopicIngestChangelog)
	if err != nil {
		t.Fatal(err)
	}
	if len(cl) < vehicles || len(cl) > vehicles*(per+5)/4 {
		t.Fatalf("changelog has %d records for %d vehicles", len(cl), vehicles)
	}
}

// TestStageRebalance: a second instance joins mid-stream and takes over
// some partitions, restoring their dedup state from the changelog; a
// re-upload spread over both is still written once.
func TestStageRebalance(t *testing.T) {
	brokers := kafkatest.Broker(t)
	codec, _ := wire.NewCodec(schemas.SingleObject())
	st, err := NewStage(Config{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	const vehicles = 24
	batch := func(from, to int) []kafka.Output {
		var recs []kafka.Output
		for v := 0; v < vehicles; v++ {
			for s := from; s < to; s++ {
				ev := event(fmt.Sprintf("v%02d", v), s)
				recs = append(recs, kafka.Output{Topic: pipelines.TopicTelemetryRaw, Key: []byte(ev.VehicleID), Value: codec.AppendEvent(nil, &ev)})
			}
		}
		return recs
	}
	kafkatest.Produce(t, brokers, batch(0, 20)...)
	cfgA, cfgB := kafkatest.Config(brokers), kafkatest.Config(brokers)
	cfgA.InstanceID, cfgB.InstanceID = "a", "b"
	stopA := kafkatest.Run(t, cfgA, st)
	kafkatest.WaitRecords(t, brokers, pipelines.TopicTelemetryClean, vehicles*20, 30*time.Second)
	regB := prometheus.NewRegistry()
	cfgB.Registerer = regB
	stopB := kafkatest.Run(t, cfgB, st)
	// While both run (whoever owns what): 10..14 again.
	kafkatest.Produce(t, brokers, batch(10, 15)...)
	if _, _, err := timeGroup(context.Background(), brokers, st.Name, 0, vehicles*(20+5)); err != nil {
		t.Fatal(err)
	}
	// A leaves: B takes its partitions, restoring their state from the
	// changelog, and gets 15..19 again and 20..24 new.
	stopA()
	kafkatest.Produce(t, brokers, batch(15, 25)...)
	if _, _, err := timeGroup(context.Background(), brokers, st.Name, 0, vehicles*(20+5+10)); err != nil {
		t.Fatal(err)
	}
	stopB()
	if got := counter(t, regB, "minecart_pipeline_records_in_total"); got < vehicles*10 {
		t.Fatalf("instance B processed %v records, want at least %d", got, vehicles*10)
	}
	clean, err := kafkatest.ReadCommitted(context.Background(), brokers, pipelines.TopicTelemetryClean)
	if err != nil {
		t.Fatal(err)
	}
	if len(clean) != vehicles*25 {
		t.Fatalf("clean topic has %d records, want %d", len(clean), vehicles*25)
	}
}

func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// TestCleanValue: an event whose raw value is already its canonical
// encoding is forwarded as the same bytes (no copy); one that Normalize
// changes is written re-encoded, and the raw bytes are left as they were.
func TestCleanValue(t *testing.T) {
	codec, _ := wire.NewCodec(schemas.SingleObject())
	p := newProcessor(t, Config{})
	for i, tc := range []struct {
		name    string
		edit    func(*telemetry.Event)
		forward bool // the raw bytes themselves are written
	}{
		{"canonical", func(*telemetry.Event) {}, true},
		{"heading 360 -> 0", func(e *telemetry.Event) { e.HeadingDeg = 360 }, false},
		{"negative zero speed", func(e *telemetry.Event) { e.SpeedKmh = math.Copysign(0, -1) }, false},
		{"lower-case fault code", func(e *telemetry.Event) { e.FaultCodes = []string{"p0301"} }, false},
		{"upper-case fault code", func(e *telemetry.Event) { e.FaultCodes = []string{"P0301"} }, true},
	} {
		ev := event(fmt.Sprintf("v%d", i), 1)
		tc.edit(&ev)
		raw := codec.AppendEvent(nil, &ev)
		orig := slices.Clone(raw)
		var out collector
		err := p.Process(context.Background(), pipelines.Record{Topic: pipelines.TopicTelemetryRaw, Key: []byte(ev.VehicleID), Value: raw,
			Headers: []pipelines.Header{{Key: "device", Value: []byte(ev.DeviceID)}}}, &out)
		if err != nil || len(out.out) != 1 {
			t.Fatalf("%s: err %v, %d records", tc.name, err, len(out.out))
		}
		got := out.out[0]
		want := ev
		telemetry.Normalize(&want)
		if !bytes.Equal(got.value, codec.AppendEvent(nil, &want)) {
			t.Errorf("%s: clean value is not the normalised event's encoding", tc.name)
		}
		if same := &got.value[0] == &raw[0]; same != tc.forward {
			t.Errorf("%s: raw bytes forwarded %v, want %v", tc.name, same, tc.forward)
		}
		if !bytes.Equal(raw, orig) {
			t.Errorf("%s: raw value changed", tc.name)
		}
		if len(got.headers) != 1 || got.headers[0].Key != "device" || string(got.headers[0].Value) != ev.DeviceID {
			t.Errorf("%s: headers %+v", tc.name, got.headers)
		}
	}
}
