package stage

import (
	"context"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/scoring"
	"github.com/minecart/minecart/services/scoring/scoringtest"
	"github.com/minecart/minecart/services/telemetry"
)

// emitted collects what a processor emits (the runtime's Emitter contract).
type emitted struct{ recs []kafka.Output }

func (e *emitted) Emit(topic string, key, value []byte, _ ...pipelines.Header) {
	e.recs = append(e.recs, kafka.Output{Topic: topic, Key: key, Value: value})
}

func (e *emitted) EmitTo(topic string, _ int32, key, value []byte, _ ...pipelines.Header) {
	e.recs = append(e.recs, kafka.Output{Topic: topic, Key: key, Value: value})
}

func (e *emitted) on(topic string) []kafka.Output {
	var out []kafka.Output
	for _, r := range e.recs {
		if r.Topic == topic {
			out = append(out, r)
		}
	}
	return out
}

var shanghai, _ = time.LoadLocation("Asia/Shanghai")

func eq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

func TestProcessor(t *testing.T) {
	serde := schemas.SingleObject()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	st, err := NewStage(Config{Serde: serde, Now: clock, IdleTimeout: 5 * time.Minute, Lateness: -1}) // late events to the late topic
	if err != nil {
		t.Fatal(err)
	}
	pr, err := st.NewProcessor(context.Background(), pipelines.Task{Stage: st.Name, Partition: 3})
	if err != nil {
		t.Fatal(err)
	}
	p := pr.(*processor)
	ctx := context.Background()
	day := time.Date(2026, 11, 24, 0, 0, 0, 0, shanghai)
	rec := func(ev *telemetry.Event) pipelines.Record {
		b, err := serde.Encode(schemas.TelemetryEvent, telemetry.ToNative(ev))
		if err != nil {
			t.Fatal(err)
		}
		return pipelines.Record{Topic: pipelines.TopicTelemetryClean, Partition: 3, Key: []byte(ev.VehicleID), Value: b,
			Timestamp: time.UnixMilli(ev.TimeMs).Add(time.Second)}
	}

	var out emitted
	for i, h := range []time.Duration{9 * time.Hour, 9*time.Hour + time.Second, 27 * time.Hour} {
		ev := scoringtest.Event("car", day.Add(h))
		ev.EventID += string(rune('a' + i))
		if err := p.Process(ctx, rec(ev), &out); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx, &out); err != nil {
		t.Fatal(err)
	}
	scores := out.on(pipelines.TopicScores)
	if len(scores) != 2 { // the 24th's score, then the watermark
		t.Fatalf("%d records on scores", len(scores))
	}
	var sc avro.DailyScore
	if err := serde.Unmarshal(scores[0].Value, &sc); err != nil {
		t.Fatal(err)
	}
	eq(t, "id", sc.ID, "car/2026-11-24")
	eq(t, "events", sc.Events, 2)
	eq(t, "config_version", sc.ConfigVersion, scoring.DefaultRules().Version)
	eq(t, "key", string(scores[0].Key), "car")
	var wm avro.Watermark
	if err := serde.Unmarshal(scores[1].Value, &wm); err != nil {
		t.Fatal(err)
	}
	eq(t, "wm key", string(scores[1].Key), "wm/3")
	eq(t, "wm task", wm.Task, 3)
	eq(t, "wm tasks", wm.Tasks, int32(pipelines.TelemetryPartitions))
	eq(t, "wm", wm.ClosedThroughMs.UnixMilli(), day.Add(25*time.Hour).UnixMilli())
	cl := out.on(pipelines.TopicScoringChangelog)
	// tombstone of the 24th, the 25th's window, the car's end (its last
	// fix on the 24th: the anchor of its next day's first trip), the task meta
	if len(cl) != 4 || string(cl[0].Key) != "car/2026-11-24" || cl[0].Value != nil || string(cl[2].Key) != "#end/car" ||
		cl[2].Value == nil || string(cl[3].Key) != "task" {
		t.Fatalf("changelog %v", cl)
	}

	// Late event: to the late topic, with the reason.
	out = emitted{}
	if err := p.Process(ctx, rec(scoringtest.Event("car", day.Add(20*time.Hour))), &out); err != nil {
		t.Fatal(err)
	}
	late := out.on(pipelines.TopicLateEvents)
	if len(late) != 1 {
		t.Fatalf("late records %v", out.recs)
	}
	var le avro.LateEvent
	if err := serde.Unmarshal(late[0].Value, &le); err != nil {
		t.Fatal(err)
	}
	if le.Reason == "" || le.VehicleID != "car" {
		t.Fatalf("late event %+v", le)
	}

	// Bad input is rejected with a code and changes nothing.
	before := p.w.StreamTime()
	for _, c := range []struct {
		code string
		rec  pipelines.Record
	}{
		{"decode", pipelines.Record{Value: []byte{0xC3, 0x01, 1, 2}}},
		{telemetry.CodeSpeed, func() pipelines.Record {
			e := scoringtest.Event("car", day.Add(40*time.Hour))
			e.SpeedKmh = 900
			return rec(e)
		}()},
		{telemetry.CodeBadTZ, func() pipelines.Record {
			e := scoringtest.Event("car", day.Add(40*time.Hour))
			e.TZ = "Nowhere/Else"
			return rec(e)
		}()},
		{telemetry.CodeFuture, func() pipelines.Record {
			r := rec(scoringtest.Event("car", day.Add(40*time.Hour)))
			r.Timestamp = r.Timestamp.Add(-time.Hour)
			return r
		}()},
	} {
		err := p.Process(ctx, c.rec, &emitted{})
		if code, ok := pipelines.RejectCode(err); !ok || code != c.code {
			t.Fatalf("want reject %s, got %v", c.code, err)
		}
	}
	eq(t, "stream time", p.w.StreamTime(), before)

	// A tick in the same batch as records is never idle, whatever the clock.
	now = now.Add(time.Hour)
	out = emitted{}
	if err := p.Tick(ctx, day.Add(60*time.Hour), &out); err != nil || len(out.recs) != 0 {
		t.Fatalf("tick after records in the batch: %v %v", err, out.recs)
	}
	if err := p.Flush(ctx, &out); err != nil {
		t.Fatal(err)
	}

	// Idle: nothing closes before IdleTimeout of wall time, then the wall clock closes the 25th.
	out = emitted{}
	tick := day.Add(60 * time.Hour)
	now = now.Add(4 * time.Minute)
	if err := p.Tick(ctx, tick, &out); err != nil || len(out.recs) != 0 {
		t.Fatalf("tick before idle timeout: %v %v", err, out.recs)
	}
	now = now.Add(2 * time.Minute)
	if err := p.Tick(ctx, tick, &out); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(ctx, &out); err != nil {
		t.Fatal(err)
	}
	if s := out.on(pipelines.TopicScores); len(s) != 2 {
		t.Fatalf("idle close: %d records on scores", len(s))
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestLeftoverClosesDrainWithoutInput: days left over by MaxClosesPerBatch
// are emitted by the following ticks' flushes even when no record comes and
// idle closing is off.
func TestLeftoverClosesDrainWithoutInput(t *testing.T) {
	serde := schemas.SingleObject()
	st, err := NewStage(Config{Serde: serde, IdleTimeout: -1, MaxClosesPerBatch: 2})
	if err != nil {
		t.Fatal(err)
	}
	if st.TickEvery <= 0 {
		t.Fatal("no ticks: leftover closed days would wait for the next record")
	}
	pr, err := st.NewProcessor(context.Background(), pipelines.Task{Stage: st.Name, Partition: 0})
	if err != nil {
		t.Fatal(err)
	}
	p := pr.(*processor)
	ctx := context.Background()
	day := time.Date(2026, 11, 24, 0, 0, 0, 0, shanghai)
	var out emitted
	for _, v := range []string{"a", "b", "c", "d", "e"} {
		e := scoringtest.Event(v, day.Add(9*time.Hour))
		b, _ := serde.Encode(schemas.TelemetryEvent, telemetry.ToNative(e))
		if err := p.Process(ctx, pipelines.Record{Value: b}, &out); err != nil {
			t.Fatal(err)
		}
	}
	e := scoringtest.Event("z", day.Add(27*time.Hour))
	b, _ := serde.Encode(schemas.TelemetryEvent, telemetry.ToNative(e))
	if err := p.Process(ctx, pipelines.Record{Value: b}, &out); err != nil {
		t.Fatal(err)
	}
	scores := func() int {
		n := 0
		for _, r := range out.on(pipelines.TopicScores) {
			if name, _ := serde.Name(r.Value); name == schemas.DailyScore {
				n++
			}
		}
		return n
	}
	for round := 0; scores() < 5; round++ {
		if round > 3 {
			t.Fatalf("%d of 5 days emitted after %d tick flushes", scores(), round)
		}
		if err := p.Tick(ctx, time.Now(), &out); err != nil {
			t.Fatal(err)
		}
		if err := p.Flush(ctx, &out); err != nil {
			t.Fatal(err)
		}
	}
}
