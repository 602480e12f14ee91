package stage

import (
	"context"
	"encoding/binary"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/scoring"
	"github.com/minecart/minecart/services/scoring/replay"
	"github.com/minecart/minecart/services/scoring/scoringtest"
	"github.com/minecart/minecart/services/telemetry"
)

// TestProcessorVerdict: a closed day's trips are published once per LSH
// band (key the band key, value the fingerprint record); a global replay
// verdict for the kept day makes one revision flagged replayed_trace with
// 0 points; the same verdict again, before or after a restart from the
// changelog, changes nothing; a verdict for a day not kept and a bad
// verdict are dead letters with their reasons.
func TestProcessorVerdict(t *testing.T) {
	serde := schemas.SingleObject()
	ctx := context.Background()
	day := time.Date(2026, 11, 24, 0, 0, 0, 0, shanghai)
	changelog := map[string][]byte{}
	newProc := func() *processor {
		st, err := NewStage(Config{Serde: serde, IdleTimeout: -1})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(st.Inputs, []string{pipelines.TopicTelemetryClean, pipelines.TopicReplayVerdicts}) {
			t.Fatalf("inputs %v", st.Inputs)
		}
		pr, err := st.NewProcessor(ctx, pipelines.Task{Stage: st.Name, Partition: 2})
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range changelog {
				if !yield(k) {
					return
				}
			}
		}) {
			if err := pr.(pipelines.Restorer).Restore(ctx, pipelines.Record{Key: []byte(k), Value: changelog[k]}); err != nil {
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
		return pipelines.Record{Topic: pipelines.TopicTelemetryClean, Partition: 2, Key: []byte(ev.VehicleID), Value: b,
			Timestamp: time.UnixMilli(ev.TimeMs).Add(time.Second)}
	}
	verdict := func(v replay.Verdict) pipelines.Record {
		return pipelines.Record{Topic: pipelines.TopicReplayVerdicts, Partition: 2, Key: []byte(v.Vehicle), Value: replay.AppendVerdict(nil, &v)}
	}
	batch := func(p *processor, recs ...pipelines.Record) (*emitted, []error) {
		t.Helper()
		out := &emitted{}
		var errs []error
		for _, r := range recs {
			errs = append(errs, p.Process(ctx, r, out))
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
		return out, errs
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

	tr := scoringtest.NewTrip("car", day.Add(8*time.Hour), 5)
	for i := range 40 {
		tr.Drive(60, 30+float64(i%7)*10)
	}
	p := newProc()
	var recs []pipelines.Record
	for i := range tr.Evs {
		recs = append(recs, rec(&tr.Evs[i]))
	}
	next := scoringtest.Event("car", day.Add(27*time.Hour))
	next.TZ = "Asia/Shanghai"
	out, _ := batch(p, append(recs, rec(next))...) // the day closes on the next day's event
	base := scores(out)
	if len(base) != 1 || base[0].Points == 0 || slices.Contains(base[0].Flags, scoring.FlagReplay) {
		t.Fatalf("at the close: %+v", base)
	}
	fps := out.on(pipelines.TopicFingerprints)
	if len(fps) == 0 || len(fps)%replay.Bands != 0 {
		t.Fatalf("%d fingerprint records, want a multiple of %d", len(fps), replay.Bands)
	}
	for i, r := range fps {
		fp, err := replay.Decode(r.Value)
		if err != nil || fp.Vehicle != "car" || fp.Date != "2026-11-24" {
			t.Fatalf("fingerprint record %d: %+v %v", i, fp, err)
		}
		if got := binary.BigEndian.Uint64(r.Key); got != replay.BandKey(&fp, i%replay.Bands) {
			t.Fatalf("record %d keyed %016x, want band %d's key", i, got, i%replay.Bands)
		}
	}
	t.Logf("%d trips: %d fingerprint records", len(fps)/replay.Bands, len(fps))

	v := replay.Verdict{Vehicle: "car", Date: "2026-11-24", Trip: 0, OfVehicle: "other", OfDate: "2026-11-23", ContainPermille: 930}
	cl := map[string][]byte{}
	for k, b := range changelog {
		cl[k] = b
	}
	out, errs := batch(p, verdict(v))
	got := scores(out)
	if errs[0] != nil || len(got) != 1 {
		t.Fatalf("verdict: %v, %d scores", errs[0], len(got))
	}
	s := got[0]
	if s.Revision != 1 || s.Points != 0 || !slices.Contains(s.Flags, scoring.FlagReplay) || s.DistanceKm != base[0].DistanceKm ||
		!strings.Contains(strings.Join(s.FlagReasons, ";"), "repeats other/2026-11-23 trip 0 (93% of its shingles; global check)") {
		t.Fatalf("revision %+v", s)
	}
	if out, errs = batch(p, verdict(v), verdict(replay.Verdict{Vehicle: "car", Date: "2026-11-24", Trip: 0, OfVehicle: "third", OfDate: "2026-11-20", ContainPermille: 600})); errs[0] != nil || errs[1] != nil || len(scores(out)) != 0 {
		t.Fatalf("verdicts applied again: %v, %d scores", errs, len(scores(out)))
	}
	if out, _ = batch(newProc(), verdict(v)); len(scores(out)) != 0 {
		t.Fatal("a restart after the revision applied the verdict again")
	}
	changelog = cl // a restart before the verdict's transaction committed: the same revision
	if out, _ = batch(newProc(), verdict(v)); len(scores(out)) != 1 || scores(out)[0].Revision != 1 || scores(out)[0].Points != 0 {
		t.Fatalf("restart before the verdict: %+v", scores(out))
	}
	for _, c := range []struct {
		rec  pipelines.Record
		code string
	}{
		{verdict(replay.Verdict{Vehicle: "car", Date: "2026-11-01", OfVehicle: "x", OfDate: "2026-10-31"}), CodeVerdictNotKept},
		{verdict(replay.Verdict{Vehicle: "nobody", Date: "2026-11-24", OfVehicle: "x", OfDate: "2026-11-23"}), CodeVerdictNotKept},
		{pipelines.Record{Topic: pipelines.TopicReplayVerdicts, Key: []byte("car"), Value: []byte{9, 9}}, CodeBadVerdict},
		{pipelines.Record{Topic: pipelines.TopicReplayVerdicts, Key: []byte("bus"), Value: replay.AppendVerdict(nil, &v)}, CodeBadVerdict},
	} {
		_, errs := batch(p, c.rec)
		if code, ok := pipelines.RejectCode(errs[0]); !ok || code != c.code {
			t.Errorf("%x: %v, want reject %s", c.rec.Value, errs[0], c.code)
		}
	}
}
