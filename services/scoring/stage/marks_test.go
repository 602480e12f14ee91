package stage

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
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
		st, err := NewStage(Config{Serde: serde, Lateness: -1}) // late events to the late topic (re-scoring: late_test.go)
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

// deliveryOrder lays the clean topic out as the gateway would have written
// it: each event delivered at the end of its 10-minute window, after the
// marks of that moment on every partition. down is a gateway outage: no
// marks, and what falls in it is delivered when it ends, where the
// restarted gateway's marks start from the last one and catch up at 4x;
// offline holds one vehicle's events until its box is back.
func deliveryOrder(t *testing.T, serde *schemas.Serde, events []kafka.Output, times []int64, vehicles []string, down [2]int64, offline string, off [2]int64) []kafka.Output {
	t.Helper()
	const win = int64(10 * time.Minute / time.Millisecond)
	ceil := func(ms int64) int64 { return (ms + win - 1) / win * win }
	type item struct {
		at  int64
		seq int
		rec kafka.Output
	}
	var items []item
	last := int64(-1)
	for i, ev := range events {
		at := ceil(times[i] + 1)
		if vehicles[i] == offline && at >= off[0] && at < off[1] {
			at = ceil(off[1])
		}
		if at >= down[0] && at < down[1] {
			at = ceil(down[1])
		}
		items = append(items, item{at, 1 + i, ev})
		last = max(last, at)
	}
	var base, restart int64 = -1, -1
	for at := ceil(times[0]); at <= last+3*time.Hour.Milliseconds(); at += win {
		if at >= down[0] && at < down[1] {
			continue
		}
		mt := at
		if at >= down[1] && down[1] > 0 {
			if restart < 0 {
				base, restart = down[0]-win, at
			}
			mt = max(base, min(at, base+4*(at-restart)))
		}
		for p := range int32(pipelines.TelemetryPartitions) {
			b, err := serde.Marshal(&avro.TimeMark{Gateway: "gw", Partition: p, TimeMs: time.UnixMilli(mt).UTC()})
			if err != nil {
				t.Fatal(err)
			}
			items = append(items, item{at, 0, kafka.Output{Topic: pipelines.TopicTelemetryClean, Key: []byte(pipelines.MarkKeyPrefix + "gw"),
				Value: b, Headers: pipelines.MarkHeaders(), ToPartition: true, Partition: p}})
		}
	}
	slices.SortStableFunc(items, func(a, b item) int {
		if a.at != b.at {
			return int(a.at - b.at)
		}
		return a.seq - b.seq
	})
	out := make([]kafka.Output, len(items))
	for i := range items {
		out[i] = items[i].rec
	}
	return out
}

// TestStageBackfillScoresLikeLive runs the scoring stage on a real broker
// over the same events delivered three ways: live; with the gateway down
// for 30 minutes across the first day's end (boxes buffer, the restarted
// gateway catches up from its last mark) and one box offline from the
// morning until 1h50 after midnight (within the 2h grace), with
// transactions failing before commit along the way; and, as the control
// that the comparison can fail, that box back only at 2h30. The first two
// must give every vehicle-day the same score and no late event; the
// control must lose the box's day to the late topic.
func TestStageBackfillScoresLikeLive(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three embedded brokers")
	}
	serde := schemas.SingleObject()
	recs, days := stageTraffic(t, serde)
	// Four vehicles drive across the first day's end.
	day1 := time.Date(2026, 11, 20, 0, 0, 0, 0, shanghai)
	end1 := day1.AddDate(0, 0, 1)
	var night []telemetry.Event
	for v := range 4 {
		tr := scoringtest.NewTrip(fmt.Sprintf("night-%d", v), end1.Add(-40*time.Minute+time.Duration(v)*time.Minute), uint64(100+v))
		tr.PeriodMs = 10000
		tr.Drive(360, 50)
		night = append(night, tr.Evs...)
	}
	for i := range night {
		b, err := serde.Encode(schemas.TelemetryEvent, telemetry.ToNative(&night[i]))
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, kafka.Output{Topic: pipelines.TopicTelemetryClean, Key: []byte(night[i].VehicleID), Value: b})
	}
	days += 2 * 4 // each night vehicle has the 20th and the 21st
	times := make([]int64, len(recs))
	vehicles := make([]string, len(recs))
	for i, r := range recs {
		native, err := serde.DecodeAs(schemas.TelemetryEvent, r.Value)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := telemetry.FromNative(native)
		if err != nil {
			t.Fatal(err)
		}
		times[i], vehicles[i] = ev.TimeMs, ev.VehicleID
	}
	idx := make([]int, len(recs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return int(times[a] - times[b]) })
	sorted := func(xs []kafka.Output) []kafka.Output {
		out := make([]kafka.Output, len(idx))
		for i, j := range idx {
			out[i] = xs[j]
		}
		return out
	}
	recs = sorted(recs)
	ts, vs := make([]int64, len(idx)), make([]string, len(idx))
	for i, j := range idx {
		ts[i], vs[i] = times[j], vehicles[j]
	}
	times, vehicles = ts, vs
	e1 := end1.UnixMilli()
	const m = int64(time.Minute / time.Millisecond)
	down := [2]int64{e1 - 15*m, e1 + 15*m}
	offFrom := day1.Add(6 * time.Hour).UnixMilli()
	live := deliveryOrder(t, serde, recs, times, vehicles, [2]int64{}, "", [2]int64{})
	outage := deliveryOrder(t, serde, recs, times, vehicles, down, "veh-005", [2]int64{offFrom, e1 + 110*m})
	control := deliveryOrder(t, serde, recs, times, vehicles, down, "veh-005", [2]int64{offFrom, e1 + 150*m})
	run := func(recs []kafka.Output, crash bool, want int) (map[string]avro.DailyScore, int) {
		b := kafkatest.Broker(t)
		kafkatest.Produce(t, b, recs...)
		st, err := NewStage(Config{Serde: serde, Lateness: -1, MaxClosesPerBatch: 5, TickEvery: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		rc := kafkatest.Config(b)
		if crash {
			st = failingStage(st, crashEvery)
			rc.MaxBatch = 97
		}
		stop := kafkatest.Run(t, rc, st)
		got, _ := scoresByID(t, b, serde, want)
		stop()
		lateRecs, err := kafkatest.ReadCommitted(context.Background(), b, pipelines.TopicLateEvents)
		if err != nil {
			t.Fatal(err)
		}
		return got, len(lateRecs)
	}
	want, late := run(live, false, days)
	if len(want) != days || late != 0 {
		t.Fatalf("live: %d scores (want %d), %d late", len(want), days, late)
	}
	got, late := run(outage, true, days)
	if len(got) != days || late != 0 {
		t.Fatalf("after the outage: %d scores (want %d), %d late", len(got), days, late)
	}
	for id, s := range want {
		if !reflect.DeepEqual(got[id], s) {
			t.Errorf("score %s differs after the outage:\n got %+v\nwant %+v", id, got[id], s)
		}
	}
	// The control: veh-005's 20th is closed before its box is back.
	got, late = run(control, false, days-1)
	if late == 0 || len(got) != days-1 {
		t.Fatalf("control: %d late, %d scores; want veh-005's 20th late and unscored", late, len(got))
	}
	if _, ok := got["veh-005/2026-11-20"]; ok {
		t.Fatal("control: veh-005's 20th scored")
	}
}
