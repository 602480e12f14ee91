package stage

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/scoring"
	"github.com/minecart/minecart/services/scoring/scoringtest"
	"github.com/minecart/minecart/services/telemetry"
)

// TestProcessorLateRescore: a box offline across midnight uploads its
// evening after the day closed (log time past midnight + grace). The late
// events re-score the kept day: at the next time mark one DailyScore
// revision 1 with the points of the whole day scored in order; a processor
// restored from the changelog in between emits the same revision, one
// restored after it emits none; an event past the lateness goes to the
// late topic with the reason.
func TestProcessorLateRescore(t *testing.T) {
	serde := schemas.SingleObject()
	ctx := context.Background()
	day := time.Date(2026, 11, 24, 0, 0, 0, 0, shanghai)
	end := day.Add(24 * time.Hour)
	changelog := map[string][]byte{}
	newProc := func() *processor {
		st, err := NewStage(Config{Serde: serde})
		if err != nil {
			t.Fatal(err)
		}
		pr, err := st.NewProcessor(ctx, pipelines.Task{Stage: st.Name, Partition: 3})
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range changelog {
			if err := pr.(pipelines.Restorer).Restore(ctx, pipelines.Record{Topic: pipelines.TopicScoringChangelog, Key: []byte(k), Value: v}); err != nil {
				t.Fatal(err)
			}
		}
		return pr.(*processor)
	}
	rec := func(ev *telemetry.Event) pipelines.Record {
		b, err := serde.Encode(schemas.TelemetryEvent, telemetry.ToNative(ev))
		if err != nil {
			t.Fatal(err)
		}
		return pipelines.Record{Topic: pipelines.TopicTelemetryClean, Partition: 3, Key: []byte(ev.VehicleID), Value: b,
			Timestamp: time.UnixMilli(ev.TimeMs).Add(time.Second)}
	}
	mark := func(at time.Time) pipelines.Record { return markRecord(t, serde, "gw", 3, at, false) }
	// One transaction: process, flush, keep the changelog.
	batch := func(p *processor, recs ...pipelines.Record) *emitted {
		t.Helper()
		out := &emitted{}
		for _, r := range recs {
			if err := p.Process(ctx, r, out); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.Flush(ctx, out); err != nil {
			t.Fatal(err)
		}
		for _, r := range out.on(pipelines.TopicScoringChangelog) {
			if r.Value == nil {
				delete(changelog, string(r.Key))
			} else {
				changelog[string(r.Key)] = r.Value
			}
		}
		return out
	}
	scores := func(out *emitted) []avro.DailyScore {
		var got []avro.DailyScore
		for _, r := range out.on(pipelines.TopicScores) {
			var s avro.DailyScore
			if serde.Unmarshal(r.Value, &s) == nil {
				got = append(got, s)
			}
		}
		return got
	}

	tr := scoringtest.NewTrip("car", day.Add(8*time.Hour), 11).Drive(1200, 60).Stop(time.Minute)
	n := len(tr.Evs)
	tr.T = day.Add(23 * time.Hour).UnixMilli()
	tr.Drive(1500, 50)
	r := scoring.DefaultRules()
	whole := scoring.NewDay(day.UnixMilli(), end.UnixMilli(), 5*3600*1000)
	var buf []byte
	for i := range tr.Evs {
		buf = whole.Add(&r, &tr.Evs[i], buf)
	}
	want := whole.Result(&r)

	p := newProc()
	first := []pipelines.Record{mark(day.Add(8 * time.Hour))}
	for i := range tr.Evs[:n] {
		first = append(first, rec(&tr.Evs[i]))
	}
	batch(p, first...)
	out := batch(p, mark(end.Add(2*time.Hour+time.Second))) // the day closes
	base := scores(out)
	if len(base) != 1 || base[0].Revision != 0 || base[0].Points >= want.Points {
		t.Fatalf("at the close: %+v, want revision 0 below %d points", base, want.Points)
	}
	if _, ok := changelog[scoring.ClosedKeyPrefix+"car/2026-11-24"]; !ok {
		t.Fatal("closed day not in the changelog")
	}
	var late []pipelines.Record
	for i := range tr.Evs[n:] {
		late = append(late, rec(&tr.Evs[n+i]))
	}
	out = batch(p, late[:700]...)
	out2 := batch(p, late[700:]...)
	if len(out.on(pipelines.TopicLateEvents))+len(out2.on(pipelines.TopicLateEvents)) != 0 || len(scores(out))+len(scores(out2)) != 0 {
		t.Fatal("late events within the lateness went to the late topic, or a revision came before a mark")
	}
	restored := newProc() // a restart before the mark
	check := func(out *emitted) {
		t.Helper()
		got := scores(out)
		if len(got) != 1 {
			t.Fatalf("%d revisions at the mark, want 1", len(got))
		}
		s := got[0]
		if s.Revision != 1 || s.LateAdded != 1500 || s.Points != want.Points || string(s.EventsHash) != string(want.EventsHash[:]) ||
			s.Events != want.Events || s.ReleaseMs <= end.UnixMilli() || s.ReleaseMs%(15*60*1000) != 0 {
			t.Errorf("revision %d late %d points %d events %d release %d; want 1 1500 %d %d", s.Revision, s.LateAdded, s.Points, s.Events, s.ReleaseMs, want.Points, want.Events)
		}
		t.Logf("revision 0: %d points; revision 1: %d points = in order %d", base[0].Points, s.Points, want.Points)
	}
	cl := map[string][]byte{}
	for k, v := range changelog {
		cl[k] = v
	}
	check(batch(p, mark(end.Add(2*time.Hour+2*time.Second))))
	after := newProc() // a restart after the mark's transaction committed
	changelog = cl
	check(batch(restored, mark(end.Add(2*time.Hour+2*time.Second))))
	if got := scores(batch(after, mark(end.Add(2*time.Hour+3*time.Second)))); len(got) != 0 {
		t.Errorf("restart after the revision: %d more revisions", len(got))
	}
	// The close, the late upload and the next mark in one batch: the day's
	// revision 0 (waiting in the emission queue when its late events came)
	// is written before its revision 1, which is the same as above.
	changelog = map[string][]byte{}
	q := newProc()
	batch(q, first...)
	same := append([]pipelines.Record{mark(end.Add(2*time.Hour + time.Second))}, late...)
	out = batch(q, append(same, mark(end.Add(2*time.Hour+2*time.Second)))...)
	if got := scores(out); len(got) != 2 || got[0].Revision != 0 || got[0].Points != base[0].Points || got[1].Revision != 1 || got[1].Points != want.Points {
		t.Fatalf("one batch: %d scores %+v", len(got), got)
	}
	// Past the lateness: the late topic, with the reason; the kept day is gone.
	out = batch(after, mark(end.Add(DefaultLateness+3*time.Hour)))
	out = batch(after, rec(&tr.Evs[n+3]))
	lr := out.on(pipelines.TopicLateEvents)
	if len(lr) != 1 {
		t.Fatalf("%d late events past the lateness, want 1", len(lr))
	}
	var le avro.LateEvent
	if err := serde.Unmarshal(lr[0].Value, &le); err != nil || !strings.Contains(le.Reason, "lateness") {
		t.Errorf("late event %q, %v", le.Reason, err)
	}
	if _, ok := changelog[scoring.ClosedKeyPrefix+"car/2026-11-24"]; ok || after.closed.Len() != 0 {
		t.Error("the closed day was kept past the lateness")
	}
}
