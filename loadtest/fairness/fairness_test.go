package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/loadtest/fleet"
	"github.com/minecart/minecart/services/scoring"
)

// pending are the fraud classes the stage cannot catch on every day yet:
// replays of another vehicle, now seen by the global replay check
// (docs/scoring.md, "Global replay check") on most days but not all (the
// month run: 53 of 58). Measured and printed, not held.
var pending = []string{fleet.CaseReplayOther.String()}

// TestFairnessQuick is the quick mode of `make fairness`: a small fleet
// with every case common enough to appear, through the pure scoring code,
// held to issue 15's "Must hold" lines (the month run prints the same
// verdicts for 10,000 vehicles).
func TestFairnessQuick(t *testing.T) {
	var mix fleet.CaseMix
	for c := fleet.Case(1); c < fleet.NumCases; c++ {
		mix[c] = 0.5 / float64(fleet.NumCases-1)
	}
	vehicles, days := 50, 4
	if testing.Short() {
		vehicles = 24
	}
	rep, err := Run(context.Background(), Config{Seed: 7, Vehicles: vehicles, Days: days,
		Start: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC), Mix: mix, Rules: scoring.DefaultRules()})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	rep.WriteTable(&b)
	t.Log("\n" + b.String())
	for c := fleet.Case(1); c < fleet.NumCases; c++ {
		if rep.Rows[c].Days == 0 {
			t.Errorf("no %v day in the quick run", c)
		}
	}
	if r := rep.Rows[fleet.CaseLate]; r.Points >= r.CleanPoints {
		t.Errorf("late days at close keep their points (%d of %d): the late events did not arrive late", r.Points, r.CleanPoints)
	}
	// The global check's known false flags (docs/scoring.md, Fairness): a
	// cloned box's day, or a replay of another vehicle's drive of the same
	// day, holds its victim's trips at the same times, and of two trips
	// starting the same millisecond the check calls the one of the greater
	// vehicle id the copy (replay.before), so the honest victim's day is
	// flagged when its id sorts after the fraudster's. Any other verdict on an
	// honest day fails; the false-flag lines are held only without these.
	known := 0
	for _, h := range rep.HonestVerdicts {
		if (h.Orig == fleet.CaseClone || h.Orig == fleet.CaseReplayOther) && h.Vehicle > h.OfVehicle {
			known++
			t.Logf("known false flag: %v", h)
			continue
		}
		t.Errorf("verdict on an honest day: %v", h)
	}
	for c := range fleet.NumCases {
		// without the verdicts' days, every honest class is held to < 0.5 %
		if x := rep.Rows[c]; !x.Fraud && c != fleet.CaseLate && float64(x.Flagged-rep.ReplayedBy[c][2]) >= 0.005*float64(x.Days) && x.Days > 0 {
			t.Errorf("%s: %d of %d days flagged without a global verdict", x.Name, x.Flagged-rep.ReplayedBy[c][2], x.Days)
		}
	}
verdicts:
	for _, v := range rep.Verdicts() {
		if !strings.HasPrefix(v, "FAIL ") {
			continue
		}
		if known > 0 && strings.Contains(v, "false flags") {
			t.Logf("%s (%d known false flags)", v, known)
			continue
		}
		for _, p := range pending {
			if strings.HasPrefix(v, "FAIL "+p+":") {
				continue verdicts
			}
		}
		t.Error(v)
	}
}

// TestFlagNamesMatchScoring: the fleet's wanted flags are scoring's codes
// (and its synthetic floor scoring's too_regular floor).
func TestFlagNamesMatchScoring(t *testing.T) {
	if r := scoring.DefaultRules(); fleet.SyntheticMinMoving != r.RegularMinSamples {
		t.Errorf("fleet.SyntheticMinMoving %d, scoring RegularMinSamples %d", fleet.SyntheticMinMoving, r.RegularMinSamples)
	}
	for got, want := range map[string]string{fleet.FlagTeleport: scoring.FlagTeleport, fleet.FlagRollback: scoring.FlagRollback,
		fleet.FlagMismatch: scoring.FlagMismatch, fleet.FlagMultiDevice: scoring.FlagMultiDevice, fleet.FlagTooRegular: scoring.FlagTooRegular} {
		if got != want {
			t.Errorf("fleet flag %q, scoring %q", got, want)
		}
	}
}

// TestMurmur2MatchesKafka: the program places vehicles on tasks as the
// producers do (franz-go's default partitioner, Kafka's murmur2).
func TestMurmur2MatchesKafka(t *testing.T) {
	p := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	for i := range 2000 {
		key := []byte(fmt.Sprintf("LSV%014d", i*7919)[:1+i%17])
		for _, n := range []int{8, 3, 64} {
			if got, want := int(murmur2(key)&0x7fffffff)%n, p.Partition(&kgo.Record{Key: key}, n); got != want {
				t.Fatalf("key %q, %d partitions: %d, franz-go %d", key, n, got, want)
			}
		}
	}
}
