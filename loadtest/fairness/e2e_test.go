package main

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/minecart/minecart/loadtest"
	"github.com/minecart/minecart/loadtest/fleet"
	"github.com/minecart/minecart/services/gateway"
	"github.com/minecart/minecart/services/scoring"
	"github.com/minecart/minecart/services/stack"
	"github.com/minecart/minecart/services/telemetry"
)

// TestEndToEndCasesThroughTheGateway sends one vehicle-day of each of a
// handful of classes through the whole pipeline (signed HTTP batches to the
// gateway, ingest, scoring on a real kfake broker), uploading each box's
// events in their arrival order at the end of the 10-minute window of the
// newest event it holds (held-back batches go with the next upload; a late
// box's tail after its day closed), and checks every published DailyScore
// against the pure scorer fed the same events in the same order: points,
// distance and flags. Out-of-order uploads must score as the clean day,
// the late day must lose exactly its late events to minecart.scoring.late.
func TestEndToEndCasesThroughTheGateway(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	ctx := context.Background()
	start := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	sim, err := fleet.New(fleet.Config{Seed: 11, Vehicles: 16, Days: 1, Start: start, Mix: fleet.Mix{Average: 1}})
	if err != nil {
		t.Fatal(err)
	}
	classes := []fleet.Case{fleet.CaseNone, fleet.CaseOutOfOrder, fleet.CasePowerLoss, fleet.CaseRepeat20Hz,
		fleet.CaseTunnel, fleet.CaseLate, fleet.CaseTeleport, fleet.CaseInflated, fleet.CaseSynthetic}
	var days []fleet.CaseDay
	used := map[int]bool{}
	for _, c := range classes {
		for i := range sim.Vehicles() {
			if used[i] {
				continue
			}
			if cd, ok := sim.CaseDayOf(i, 0, c); ok && len(cd.Clean) > 0 && cd.Truth.DistanceKm >= 5 {
				days, used[i] = append(days, cd), true
				break
			}
		}
	}
	if len(days) != len(classes) {
		t.Fatalf("%d of %d classes found a day", len(days), len(classes))
	}

	rules := scoring.DefaultRules()
	dayStart, dayEnd := sim.Start().UnixMilli(), sim.End().UnixMilli()
	score := func(evs ...[]telemetry.Event) scoring.Result {
		d := scoring.NewDay(dayStart, dayEnd, uint32(rules.NightEndHour)*3600_000)
		var buf []byte
		for _, e := range evs {
			for k := range e {
				buf = d.Add(&rules, &e[k], buf)
			}
		}
		return d.Result(&rules)
	}

	// The upload schedule: the end of the window of the newest event so far.
	const win = int64(10 * 60_000)
	grace := 2 * time.Hour
	lateAt := dayEnd + grace.Milliseconds() + 2*win
	uploads := map[int64][]telemetry.Event{}
	lateN := 0
	for _, cd := range days {
		hi := int64(0)
		for _, e := range cd.Events {
			hi = max(hi, dayStart+((e.TimeMs-dayStart)/win+1)*win)
			uploads[hi] = append(uploads[hi], e)
		}
		uploads[lateAt] = append(uploads[lateAt], cd.Late...)
		lateN += len(cd.Late)
	}

	st, err := stack.Start(ctx, stack.Config{DataDir: t.TempDir(), KafkaAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		Grace: grace, SessionTimeout: time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.ProvisionFleet(ctx, sim); err != nil {
		t.Fatal(err)
	}
	marker, err := st.Gateway.NewMarker(ctx, gateway.MarkConfig{ID: "gateway-0", Clock: st.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	for at := dayStart + win; at <= lateAt+win; at += win {
		st.Clock.Set(time.UnixMilli(at))
		if err := marker.Write(ctx); err != nil {
			t.Fatal(err)
		}
		evs := uploads[at]
		if len(evs) == 0 {
			continue
		}
		sender, err := loadtest.NewSender(loadtest.SenderConfig{URL: "http://" + st.HTTPAddr(), Devices: sim.Devices()})
		if err != nil {
			t.Fatal(err)
		}
		if err := sender.Send(ctx, evs); err != nil {
			sender.Abort()
			t.Fatal(err)
		}
		rep, err := sender.Close()
		if err != nil || rep.Failed > 0 || rep.Rejected > 0 {
			t.Fatalf("upload at %v: %v (%s)", time.UnixMilli(at).UTC(), err, rep)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := st.WaitSettled(wctx, sim.End(), 3*time.Second, nil); err != nil {
		t.Fatalf("settling: %v", err)
	}
	sum, err := st.Summary(ctx, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if sum.DeadLetters != 0 {
		t.Errorf("dead letters: %v", sum.DeadByReason)
	}
	// Within the lateness bound (7 days) late events re-score their closed
	// day (ClosedDays): none goes to the late topic.
	if sum.LateEvents != 0 || lateN == 0 {
		t.Errorf("%d late events published, %d uploaded after the close (all within the lateness)", sum.LateEvents, lateN)
	}
	got := map[string]stack.Driver{}
	for _, d := range sum.TopDrivers {
		got[d.VehicleID] = d
	}
	for _, cd := range days {
		want := score(cd.Events)
		if cd.Case == fleet.CaseLate { // the day's latest revision: re-scored with its late tail
			want = score(append(slices.Clone(cd.Events), cd.Late...))
		}
		g, ok := got[cd.Truth.VehicleID]
		if !ok {
			t.Errorf("%v: no score for %s", cd.Case, cd.Truth.VehicleID)
			continue
		}
		if g.Points != want.Points || g.KM != want.DistanceKm || !slices.Equal(g.Flags, want.Flags) {
			t.Errorf("%v %s: pipeline %d points %.6f km %v, pure scorer %d points %.6f km %v", cd.Case, cd.Truth.VehicleID,
				g.Points, g.KM, g.Flags, want.Points, want.DistanceKm, want.Flags)
		}
		clean := score(cd.Clean)
		switch {
		case cd.Case == fleet.CaseOutOfOrder && g.Points != clean.Points:
			t.Errorf("out-of-order %s: %d points, in order %d", cd.Truth.VehicleID, g.Points, clean.Points)
		case cd.Case.Fraud() && !slices.ContainsFunc(g.Flags, func(f string) bool { return slices.Contains(cd.Case.Want(), f) }):
			t.Errorf("%v %s not flagged %v: %v", cd.Case, cd.Truth.VehicleID, cd.Case.Want(), g.Flags)
		case !cd.Case.Fraud() && len(g.Flags) > 0:
			t.Errorf("honest %v %s flagged %v", cd.Case, cd.Truth.VehicleID, g.Flags)
		}
		t.Logf("%-14v %s: %5d points (in order %5d), %7.3f km (truth %7.3f), flags %v", cd.Case, cd.Truth.VehicleID,
			g.Points, clean.Points, g.KM, cd.Truth.DistanceKm, g.Flags)
	}
}
