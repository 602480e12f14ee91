package main

import (
	"testing"
	"time"

	"github.com/minecart/minecart/loadtest/fleet"
	"github.com/minecart/minecart/services/scoring"
	"github.com/minecart/minecart/services/scoring/replay"
)

// TestDayEndAnchors replays the three replay-other days the 10,000-vehicle
// month missed while a vehicle's anchor was its last fingerprinted trip's
// end (docs/scoring.md, "Fairness", Current run): same-day copies of
// another vehicle's drive, unshifted, whose victim's previous day ended
// away from where its car was parked (a box silent on the way home, a
// power loss, a teleported trip). Each vehicle's index runs its own days
// as judgeReplay does (Parked before day 0; per day Anchor, Add, SetEnd).
// With the day's last fix as the end, the victim's first trip starts near
// and the copy's away, so Judge calls the copy a copy; with the
// fingerprints' ends only (no SetEnd) both start away and Judge refuses.
func TestDayEndAnchors(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates 6 vehicles of the month's fleet")
	}
	const days = 30
	sim, err := fleet.New(fleet.Config{Seed: 1, Vehicles: 10000, Days: days, Start: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC),
		Mix: fleet.Mix{Calm: 0.30, Average: 0.45, Aggressive: 0.25}, Cases: RealisticMix})
	if err != nil {
		t.Fatal(err)
	}
	rules := scoring.DefaultRules()
	rcfg := replay.DefaultConfig()
	sc := &scorer{rules: rules, rcfg: rcfg, wins: windows(sim, days, &rules), vehicles: sim.Vehicles(), fpOnly: true}
	// run returns vehicle i's day d fingerprints, anchored by its own
	// earlier days (with or without the days' ends).
	run := func(i, d int, ends bool) []replay.Fingerprint {
		recs := sc.vehicle(i, sim.VehicleDays(i))
		idx, err := replay.NewIndex(rcfg, 30, 200_000)
		if err != nil {
			t.Fatal(err)
		}
		idx.Parked(sc.vehicles[i].VehicleID, "2026-11-01", *recs[0].parked)
		for k := 0; k <= d; k++ {
			r := &recs[k]
			for j := range r.fps {
				idx.Anchor(&r.fps[j])
			}
			for j := range r.fps {
				idx.Add(&r.fps[j])
			}
			if ends && r.end != nil {
				idx.SetEnd(sc.vehicles[i].VehicleID, *r.end)
			}
		}
		return recs[d].fps
	}
	for _, m := range []struct{ copier, day, victim int }{{2270, 5, 7089}, {1882, 15, 2385}, {2391, 25, 3423}} {
		cd := sim.VehicleDays(m.copier)[m.day]
		if cd.Case != fleet.CaseReplayOther || cd.Other != m.victim || cd.SourceDay != m.day {
			t.Fatalf("vehicle %d day %d: %v of vehicle %d day %d, want a same-day replay of vehicle %d", m.copier, m.day, cd.Case, cd.Other, cd.SourceDay, m.victim)
		}
		for _, ends := range []bool{false, true} {
			cp, orig := run(m.copier, m.day, ends), run(m.victim, m.day, ends)
			if len(cp) == 0 || len(orig) == 0 {
				t.Fatalf("vehicle %d day %d: %d copy trips, %d original trips", m.copier, m.day, len(cp), len(orig))
			}
			caught := false
			for a := range cp {
				for o := range orig {
					caught = caught || replay.Refusal(&rcfg, &orig[o], &cp[a]) == ""
				}
			}
			t.Logf("vehicle %d day %d (ends %v): copy's first trip origin %d, victim %d's origin %d; caught %v (%s)",
				m.copier, m.day, ends, cp[0].Origin, m.victim, orig[0].Origin, caught, replay.Refusal(&rcfg, &orig[0], &cp[0]))
			if caught != ends {
				t.Errorf("vehicle %d day %d: caught %v with the days' ends %v", m.copier, m.day, caught, ends)
			}
			if ends && (orig[0].Origin != replay.OriginNear || cp[0].Origin != replay.OriginAway) {
				t.Errorf("vehicle %d day %d: origins copy %d, victim %d; want away, near", m.copier, m.day, cp[0].Origin, orig[0].Origin)
			}
		}
	}
}
