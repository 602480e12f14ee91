package main

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/minecart/minecart/loadtest/fleet"
	"github.com/minecart/minecart/services/scoring"
	"github.com/minecart/minecart/services/scoring/replay"
)

// TestSearchReplayOwnMisses finds the replay-own days of `make fairness`'s
// fleet that the vehicle's own earlier days do not flag (an index per vehicle): it
// scores only the vehicles CaseOf gives such a day and logs, per miss, the
// copy's and the source day's trips and the best containment between them.
// FAIRNESS_REPLAY_SEARCH=<vehicles> (seed 1) turns it on
// (FAIRNESS_REPLAY_VEHICLE=<i>: vehicle i only); it fails on any miss.
func TestSearchReplayOwnMisses(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("FAIRNESS_REPLAY_SEARCH"))
	if n <= 0 {
		t.Skip("FAIRNESS_REPLAY_SEARCH=<vehicles> runs it")
	}
	const days = 30
	sim, err := fleet.New(fleet.Config{Seed: 1, Vehicles: n, Days: days, Start: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC),
		Mix: fleet.Mix{Calm: 0.30, Average: 0.45, Aggressive: 0.25}, Cases: RealisticMix})
	if err != nil {
		t.Fatal(err)
	}
	rules := scoring.DefaultRules()
	rcfg := replay.DefaultConfig()
	sc := &scorer{rules: rules, rcfg: rcfg, wins: windows(sim, days, &rules), vehicles: sim.Vehicles()}
	seen := 0
	only, _ := strconv.Atoi(os.Getenv("FAIRNESS_REPLAY_VEHICLE")) // when set (> 0), that vehicle only
	for i := range n {
		if only > 0 && i != only {
			continue
		}
		has := false
		for d := range days {
			has = has || sim.CaseOf(i, d) == fleet.CaseReplayOwn
		}
		if !has {
			continue
		}
		cds := sim.VehicleDays(i)
		recs := sc.vehicle(i, cds)
		idx, err := replay.NewIndex(rcfg, 30, 200_000)
		if err != nil {
			t.Fatal(err)
		}
		for d, r := range recs {
			flagged := false
			for k := range r.fps {
				idx.Anchor(&r.fps[k])
			}
			for k := range r.fps {
				flagged = flagged || len(idx.Check(&r.fps[k])) > 0
				idx.Add(&r.fps[k])
			}
			if r.end != nil {
				idx.SetEnd(sc.vehicles[i].VehicleID, *r.end)
			}
			if r.c != fleet.CaseReplayOwn {
				continue
			}
			seen++
			src := cds[d].SourceDay
			best, band := 0.0, -1
			for a := range r.fps {
				for b := range recs[src].fps {
					if _, c := replay.Similarity(&recs[src].fps[b], &r.fps[a]); c > best {
						best, band = c, replay.LowestSharedBand(&recs[src].fps[b], &r.fps[a])
					}
				}
			}
			if flagged {
				continue
			}
			moving := 0
			for _, ev := range cds[d].Events {
				if ev.SpeedKmh >= rcfg.MovingKmh {
					moving++
				}
			}
			trips := func(fps []replay.Fingerprint) (s []string) {
				for _, fp := range fps {
					s = append(s, time.UnixMilli(fp.StartMs).UTC().Format("15:04")+"-"+time.UnixMilli(fp.EndMs).UTC().Format("15:04")+" n="+strconv.Itoa(int(fp.N)))
				}
				return s
			}
			t.Errorf("replay own missed: vehicle %d (%s) day %d copies day %d (a %v day): true %.2f km, %d events (%d moving); copy trips %v, source trips %v; best containment %.2f (lowest shared band %d)",
				i, sc.vehicles[i].VehicleID, d, src, cds[src].Case, r.truthKm, len(cds[d].Events), moving, trips(r.fps), trips(recs[src].fps), best, band)
		}
	}
	t.Logf("%d replay-own days", seen)
}
