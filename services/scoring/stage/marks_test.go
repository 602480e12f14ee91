package stage

import (
	"context"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/scoring/scoringtest"
	"github.com/minecart/minecart/services/telemetry"
)

// markRecord is gateway gw's time mark at t on partition p of the clean
// topic, stamped recTime (zero: t).
func markRecord(t *testing.T, serde *schemas.Serde, gw string, p int32, at time.Time, leaving bool) pipelines.Record {
	t.Helper()
	b, err := serde.Marshal(&avro.TimeMark{Gateway: gw, Partition: p, TimeMs: at.UTC(), Leaving: leaving})
	if err != nil {
		t.Fatal(err)
	}
	return pipelines.Record{Topic: pipelines.TopicTelemetryClean, Partition: p, Key: []byte(pipelines.MarkKeyPrefix + gw),
		Value: b, Headers: pipelines.MarkHeaders(), Timestamp: at}
}

// TestProcessorMarks: once marks arrive, days close on the lowest mark of
// the live gateways plus the grace, never on event time, so a box's backlog
// that arrives after later events is scored, not late; a lagging gateway
// holds the close back; the clock is in the changelog and a processor
// restored from it closes the same days; bad marks are rejected. Without
// marks the same records make the backlog late (the behaviour marks fix).
func TestProcessorMarks(t *testing.T) {
	serde := schemas.SingleObject()
	day := time.Date(2026, 11, 24, 0, 0, 0, 0, shanghai)
	end := day.Add(24 * time.Hour)
	ctx := context.Background()
	newProc := func() *processor {
		st, err := NewStage(Config{Serde: serde})
		if err != nil {
			t.Fatal(err)
		}
		pr, err := st.NewProcessor(ctx, pipelines.Task{Stage: st.Name, Partition: 3})
		if err != nil {
			t.Fatal(err)
		}
		return pr.(*processor)
	}
	ev := func(vehicle string, at time.Time) pipelines.Record {
		b, err := serde.Encode(schemas.TelemetryEvent, telemetry.ToNative(scoringtest.Event(vehicle, at)))
		if err != nil {
			t.Fatal(err)
		}
		return pipelines.Record{Topic: pipelines.TopicTelemetryClean, Partition: 3, Key: []byte(vehicle), Value: b, Timestamp: at.Add(time.Second)}
	}
	mark := func(gw string, at time.Time) pipelines.Record { return markRecord(t, serde, gw, 3, at, false) }
	scoresOf := func(out *emitted) map[string]avro.DailyScore {
		got := map[string]avro.DailyScore{}
		for _, r := range out.on(pipelines.TopicScores) {
			var s avro.DailyScore
			if serde.Unmarshal(r.Value, &s) == nil {
				got[s.ID] = s
			}
		}
		return got
	}
	// The records of a gateway outage: day 24 live, then the gateway is
	// down past midnight + grace; when it is back, one box uploads the
	// next morning first, then the other box its backlog of the 24th.
	backlog := []pipelines.Record{
		ev("a", day.Add(20*time.Hour)), ev("b", day.Add(20*time.Hour)),
		ev("a", end.Add(3*time.Hour)),  // event time past end + grace
		ev("b", day.Add(23*time.Hour)), // the backlog of the 24th
	}

	// Without marks, event time closes the 24th and b's backlog is late.
	p := newProc()
	var out emitted
	for _, r := range backlog {
		if err := p.Process(ctx, r, &out); err != nil {
			t.Fatal(err)
		}
	}
	if len(out.on(pipelines.TopicLateEvents)) != 1 {
		t.Fatalf("without marks: %d late events, want b's backlog late", len(out.on(pipelines.TopicLateEvents)))
	}

	// With marks from two gateways.
	p = newProc()
	out = emitted{}
	process := func(recs ...pipelines.Record) {
		t.Helper()
		for _, r := range recs {
			if err := p.Process(ctx, r, &out); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.Flush(ctx, &out); err != nil {
			t.Fatal(err)
		}
	}
	process(mark("g1", day.Add(19*time.Hour)), mark("g2", day.Add(19*time.Hour)))
	process(backlog...)
	lag := end.Add(2*time.Hour - 5*time.Minute) // g2 lags g1 by less than MarkExpiry: it holds the close
	process(mark("g1", lag.Add(-time.Minute)), mark("g2", lag.Add(-time.Minute)), mark("g1", end.Add(2*time.Hour)), mark("g2", lag))
	if n := len(scoresOf(&out)); n != 0 || len(out.on(pipelines.TopicLateEvents)) != 0 {
		t.Fatalf("g2 behind end+grace: %d scores, %d late; want the 24th open", n, len(out.on(pipelines.TopicLateEvents)))
	}
	eq(t, "log time", p.clock.Time(), lag.UnixMilli())

	// A processor restored from the changelog so far holds the same clock.
	r := newProc()
	for _, c := range out.on(pipelines.TopicScoringChangelog) {
		if err := r.Restore(ctx, pipelines.Record{Key: c.Key, Value: c.Value}); err != nil {
			t.Fatal(err)
		}
	}
	eq(t, "restored log time", r.clock.Time(), p.clock.Time())

	var rout emitted
	for _, q := range []struct {
		p   *processor
		out *emitted
	}{{p, &out}, {r, &rout}} {
		if err := q.p.Process(ctx, mark("g2", end.Add(2*time.Hour)), q.out); err != nil {
			t.Fatal(err)
		}
		if err := q.p.Flush(ctx, q.out); err != nil {
			t.Fatal(err)
		}
	}
	got := scoresOf(&out)
	if len(got) != 2 || got["b/2026-11-24"].Events != 2 || got["a/2026-11-24"].Events != 1 {
		t.Fatalf("scores after both gateways passed end+grace: %v", got)
	}
	if len(out.on(pipelines.TopicLateEvents)) != 0 {
		t.Fatal("late events with marks")
	}
	rgot := scoresOf(&rout)
	for id, s := range got {
		if rs, ok := rgot[id]; !ok || rs.Events != s.Events || string(rs.EventsHash) != string(s.EventsHash) {
			t.Fatalf("restored processor scored %s as %+v, want %+v", id, rs, s)
		}
	}
	// The 25th's event (end+3h) is not closed by its own event time.
	if p.w.Open() != 1 {
		t.Fatalf("%d open windows, want the 25th", p.w.Open())
	}

	// Bad marks are rejected and change nothing.
	before := p.clock.Time()
	for _, rec := range []pipelines.Record{
		markRecord(t, serde, "g1", 4, end.Add(9*time.Hour), false), // another partition's
		markRecord(t, serde, "", 3, end.Add(9*time.Hour), false),   // no gateway
		func() pipelines.Record { // dated past its record timestamp + MaxFuture
			m := mark("g1", end.Add(9*time.Hour))
			m.Timestamp = end.Add(8 * time.Hour)
			return m
		}(),
		{Partition: 3, Value: []byte{0xC3, 0x01, 1, 2}, Headers: pipelines.MarkHeaders()},
	} {
		err := p.Process(ctx, rec, &emitted{})
		if code, ok := pipelines.RejectCode(err); !ok || code != CodeBadMark {
			t.Fatalf("want reject %s, got %v", CodeBadMark, err)
		}
	}
	eq(t, "log time after bad marks", p.clock.Time(), before)
}
