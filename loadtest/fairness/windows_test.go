package main

import (
	"context"
	"testing"
	"time"

	"github.com/minecart/minecart/loadtest/fleet"
	"github.com/minecart/minecart/services/scoring"
	"github.com/minecart/minecart/services/scoring/replay"
)

// TestRunMatchesWindows holds the fairness program to the stage's own
// code path: the same fleet fed day by day through one scoring.Windows with
// replay detection on (each day's events per vehicle in arrival order,
// ingest's odometer marks, then stream time past the day's end + grace,
// which closes the day's windows in vehicle order) gives, per case, the
// same flags and points as Run. Own replays only (another vehicle's replay
// depends on the task split, which Run models and one Windows does not).
func TestRunMatchesWindows(t *testing.T) {
	var mix fleet.CaseMix
	mix[fleet.CaseReplayOwn], mix[fleet.CaseRollback], mix[fleet.CaseOutOfOrder], mix[fleet.CaseSynthetic] = 0.25, 0.1, 0.1, 0.05
	const vehicles, days = 12, 5
	start := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	rules := scoring.DefaultRules()
	rep, err := Run(context.Background(), Config{Seed: 11, Vehicles: vehicles, Days: days, Start: start, Mix: mix, Rules: rules, NoParked: true})
	if err != nil {
		t.Fatal(err)
	}
	sim, err := fleet.New(fleet.Config{Seed: 11, Vehicles: vehicles, Days: days, Start: start,
		Mix: fleet.Mix{Calm: 0.30, Average: 0.45, Aggressive: 0.25}, Cases: mix})
	if err != nil {
		t.Fatal(err)
	}
	w, err := scoring.NewWindows(&rules, sim.Vehicles()[0].TZ, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.EnableReplay(replay.DefaultConfig(), 30, 200_000); err != nil {
		t.Fatal(err)
	}
	wins := windows(sim, days, &rules)
	all := make([][]fleet.CaseDay, vehicles)
	odo := make([]odoMark, vehicles)
	for i := range vehicles {
		all[i] = sim.VehicleDays(i)
		for _, ev := range all[i][0].Clean { // as Run: ingest knew the box before day 0
			if ev.OdometerKm > 0 {
				odo[i] = odoMark{wins[0].start - 1, ev.OdometerKm}
				break
			}
		}
	}
	type sums struct {
		days, replayed, flagged int
		points                  int64
	}
	got := map[fleet.Case]*sums{}
	for c := range fleet.NumCases {
		got[c] = &sums{}
	}
	for d := range days {
		var caseOf = map[string]fleet.Case{}
		for i := range vehicles {
			cd := &all[i][d]
			caseOf[sim.Vehicles()[i].VehicleID] = cd.Case
			for k := range cd.Events {
				if _, err := w.AddRef(&cd.Events[k], odo[i].check(&cd.Events[k]), nil); err != nil {
					t.Fatal(err)
				}
			}
			if cd.Case.Fraud() { // as Run: ingest continues from the real last reading
				for k := len(cd.Clean) - 1; k >= 0; k-- {
					if cd.Clean[k].OdometerKm > 0 {
						odo[i] = odoMark{cd.Clean[k].TimeMs, cd.Clean[k].OdometerKm}
						break
					}
				}
			}
		}
		w.Advance(wins[d].end+2*time.Hour.Milliseconds(), func(cl scoring.Closed) {
			s := got[caseOf[cl.Vehicle]]
			s.days++
			s.points += cl.Result.Points
			for _, f := range cl.Result.Flags {
				if f == scoring.FlagReplay {
					s.replayed++
				}
			}
			if len(cl.Result.Flags) > 0 {
				s.flagged++
			}
		})
	}
	for c := range fleet.NumCases {
		row, g := rep.Rows[c], got[c]
		if row.Days == 0 {
			continue
		}
		t.Logf("%v: run %d days, %d points, replayed %d; windows %d days, %d points, replayed %d", c, row.Days, row.Points, row.FlagCounts[scoring.FlagReplay], g.days, g.points, g.replayed)
		// A day without events opens no window: Run counts it, Windows does not.
		if row.Points != g.points || row.FlagCounts[scoring.FlagReplay] != g.replayed {
			t.Errorf("%v: run %d points, %d replayed; windows %d points, %d replayed", c, row.Points, row.FlagCounts[scoring.FlagReplay], g.points, g.replayed)
		}
	}
	if r := rep.Rows[fleet.CaseReplayOwn]; r.Days == 0 || r.FlagCounts[scoring.FlagReplay] == 0 {
		t.Errorf("no replayed own day flagged (%d days): the test proves nothing", r.Days)
	}
}
