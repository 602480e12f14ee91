package stack

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/minecart/minecart/loadtest"
	"github.com/minecart/minecart/loadtest/fleet"
	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas/avro"
)

// TestEndToEndOutageScoresLikeLive runs the same two-day fleet through the
// whole pipeline twice: uploading live, and with the gateway down for 30
// simulated minutes across the first day's end while the boxes buffer
// (the restarted gateway reads its last marks back and catches up from
// them) and one box offline from 21:00 until 01:50, within the 2h grace.
// Every vehicle-day's DailyScore record, the ledger root and the balances
// must be the same, with no late event and no dead letter.
func TestEndToEndOutageScoresLikeLive(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	ctx := context.Background()
	sim := twoDays(t)
	end1 := sim.Start().AddDate(0, 0, 1)
	outages := fleet.Outages{
		Gateway: []fleet.Span{{From: end1.Add(-15 * time.Minute), To: end1.Add(15 * time.Minute)}},
		Offline: []fleet.Offline{{Vehicle: 3, Span: fleet.Span{From: end1.Add(-3 * time.Hour), To: end1.Add(110 * time.Minute)}}},
	}
	// The outages must hold events back, or the comparison proves nothing.
	held := map[int]int{}
	for d := range sim.Deliveries(outages, sim.End()) {
		for _, ev := range d.Events {
			if d.At.Sub(time.UnixMilli(ev.TimeMs)) > 10*time.Minute {
				held[d.At.Compare(end1.Add(time.Hour))]++ // -1: the gateway's backlog, 1: the offline box's
			}
		}
	}
	if held[-1] == 0 || held[1] == 0 {
		t.Fatalf("events held back: %v", held)
	}
	run := func(o fleet.Outages) (outcome, map[string]avro.DailyScore, map[int32]int64) {
		st := startStack(t, ctx, t.TempDir(), "")
		defer st.Close()
		if err := st.ProvisionFleet(ctx, sim); err != nil {
			t.Fatal(err)
		}
		rep, err := st.SendDeliveries(ctx, sim, o, 0, loadtest.SenderConfig{}, nil)
		if err != nil || rep.Failed > 0 || rep.Rejected > 0 {
			t.Fatalf("sending: %v (%s)", err, rep)
		}
		out := settle(t, ctx, st, sim)
		sum, err := st.Summary(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if sum.LateEvents != 0 || sum.DeadLetters != 0 {
			t.Fatalf("%d late events, %d dead letters", sum.LateEvents, sum.DeadLetters)
		}
		scores := map[string]avro.DailyScore{}
		if err := st.scan(ctx, pipelines.TopicScores, func(r pipelines.Record) error {
			v, err := st.ClearScore(ctx, r) // sealed (docs/privacy.md)
			if err != nil {
				return err
			}
			var s avro.DailyScore
			if v != nil && st.Serde.Unmarshal(v, &s) == nil {
				if _, dup := scores[s.ID]; dup {
					t.Errorf("score %s twice", s.ID)
				}
				scores[s.ID] = s
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		marks := map[int32]int64{}
		if err := st.scan(ctx, pipelines.TopicTelemetryClean, func(r pipelines.Record) error {
			if pipelines.IsMark(&r) {
				marks[r.Partition]++
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out, scores, marks
	}
	liveOut, live, liveMarks := run(fleet.Outages{})
	gotOut, got, gotMarks := run(outages)
	t.Logf("held back: %d by the gateway, %d by the offline box", held[-1], held[1])
	t.Logf("live: %d scores, root %s, marks per partition %v; outage: marks %v", len(live), liveOut.root, liveMarks, gotMarks)
	if len(live) != 2*e2eVehicles {
		t.Fatalf("%d live scores, want %d", len(live), 2*e2eVehicles)
	}
	if len(gotMarks) != pipelines.TelemetryPartitions || gotMarks[0] >= liveMarks[0] {
		t.Fatalf("marks per partition: live %v, outage %v (want fewer with the gateway down)", liveMarks, gotMarks)
	}
	for id, s := range live {
		if g, ok := got[id]; !ok || !reflect.DeepEqual(g, s) {
			t.Errorf("vehicle-day %s differs after the outage:\n got %+v\nwant %+v", id, g, s)
		}
	}
	if len(got) != len(live) {
		t.Errorf("%d scores after the outage, %d live", len(got), len(live))
	}
	if gotOut != liveOut {
		t.Errorf("outcome differs:\nlive   %+v\noutage %+v", liveOut, gotOut)
	}
}
