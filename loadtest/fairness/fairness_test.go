package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/loadtest/fleet"
	"github.com/minecart/minecart/services/scoring"
	"github.com/minecart/minecart/services/scoring/replay"
)

// pending are the fraud classes the stage cannot catch on every day yet:
// replays of another vehicle, seen by the global replay check
// (docs/scoring.md, "Global replay check") on most days but not all (the
// 1,000-vehicle run: 55 of 58; the misses copy days of short trips only,
// or a drive that was never uploaded). Measured and printed, not held.
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
	var dump bytes.Buffer
	rep, err := Run(context.Background(), Config{Seed: 7, Vehicles: vehicles, Days: days,
		Start: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC), Mix: mix, Rules: scoring.DefaultRules(), Dump: &dump})
	if err != nil {
		t.Fatal(err)
	}
	// The dump judged again gives the run's replay flags, class by class
	// and check by check.
	rj, err := Rejudge(bufio.NewReader(&dump), replay.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	var got [fleet.NumCases][3]int
	for i := range rj.Days {
		for d := range rj.Days[i] {
			if x := &rj.Days[i][d]; x.replayed {
				got[x.c][0]++
				if x.task {
					got[x.c][1]++
				}
				if x.global {
					got[x.c][2]++
				}
			}
		}
	}
	if got != rep.ReplayedBy || rj.Verdicts != rep.GlobalVerdicts {
		t.Errorf("rejudged dump: %v, %d verdicts; the run: %v, %d", got, rj.Verdicts, rep.ReplayedBy, rep.GlobalVerdicts)
	}
	if got[fleet.CaseReplayOwn][0] == 0 {
		t.Error("no replay flagged: the dump holds nothing to judge")
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
	// No verdict may flag an honest day: a cloned box's day, or a replay
	// of another vehicle's drive of the same day, holds its victim's trips
	// at the same times, and replay.Judge calls the victim the copy only
	// when its trip starts away from its own previous one while the
	// copy's starts near its own (docs/scoring.md, "Matching").
	for _, h := range rep.HonestVerdicts {
		t.Errorf("verdict on an honest day: %v", h)
	}
verdicts:
	for _, v := range rep.Verdicts() {
		if !strings.HasPrefix(v, "FAIL ") {
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
