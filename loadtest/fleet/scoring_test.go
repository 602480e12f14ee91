package fleet

import (
	"slices"
	"testing"
	"time"

	"github.com/minecart/minecart/services/scoring"
)

// TestScoredByTheRealScorer runs the simulated vehicle-days through the
// scoring package's pure day summary (as the scoring stage does) and checks
// that it finds what the ground truth says: honest distances, calmer
// drivers scoring higher, and each kind of fraud flagged.
func TestScoredByTheRealScorer(t *testing.T) {
	r := sharedRun(t)
	rules := scoring.DefaultRules()
	loc, _ := time.LoadLocation("Asia/Shanghai")
	type key struct {
		dev string
		day int
	}
	results := map[key]scoring.Result{}
	for _, v := range r.s.Vehicles() {
		evs := r.events[v.DeviceID]
		k := 0
		for d := 0; d < sharedCfg.Days; d++ {
			start := time.Date(2026, 11, 2+d, 0, 0, 0, 0, loc)
			end := start.AddDate(0, 0, 1)
			day := scoring.NewDay(start.UnixMilli(), end.UnixMilli(), uint32(5*time.Hour/time.Millisecond))
			var buf []byte
			for ; k < len(evs) && evs[k].TimeMs < end.UnixMilli(); k++ {
				buf = day.Add(&rules, &evs[k], buf)
			}
			results[key{v.DeviceID, d}] = day.Result(&rules)
		}
	}
	score := map[Profile][]float64{}
	flagged := map[Fraud]int{}
	days := map[Fraud]int{}
	for _, d := range r.days {
		res := results[key{d.DeviceID, d.Day}]
		if d.DistanceKm < 5 {
			continue
		}
		days[d.Fraud]++
		want := map[Fraud]string{FraudSynthetic: scoring.FlagTooRegular, FraudTeleport: scoring.FlagTeleport,
			FraudRollback: scoring.FlagRollback, FraudInflated: scoring.FlagMismatch}[d.Fraud]
		switch {
		case d.Fraud == FraudNone:
			if len(res.Flags) > 0 {
				t.Errorf("honest %s day %d flagged %v: %v", d.VehicleID, d.Day, res.Flags, res.Reasons)
			}
			if res.DistanceKm < 0.97*d.DistanceKm || res.DistanceKm > 1.05*d.DistanceKm {
				t.Errorf("honest %s day %d: scorer %.2f km, truth %.2f km", d.VehicleID, d.Day, res.DistanceKm, d.DistanceKm)
			}
			score[d.Profile] = append(score[d.Profile], res.Score)
		case slices.Contains(res.Flags, want):
			flagged[d.Fraud]++
		default:
			t.Logf("%v %s day %d not flagged %s: flags %v %v; scorer gps %.1f odo %.1f, truth %+v", d.Fraud, d.VehicleID, d.Day, want, res.Flags, res.Reasons, res.GPSKm, res.OdometerKm, d)
		}
	}
	for f := FraudSynthetic; f <= FraudInflated; f++ {
		t.Logf("%v: %d of %d driving days flagged", f, flagged[f], days[f])
		if days[f] == 0 || flagged[f] < days[f] {
			t.Errorf("%v: %d of %d driving days flagged", f, flagged[f], days[f])
		}
	}
	mean := func(xs []float64) float64 {
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return s / float64(len(xs))
	}
	t.Logf("mean score: calm %.1f average %.1f aggressive %.1f", mean(score[Calm]), mean(score[Average]), mean(score[Aggressive]))
	if !(mean(score[Calm]) >= mean(score[Average]) && mean(score[Average]) > mean(score[Aggressive])+10) {
		t.Errorf("scores do not fall from calm to aggressive")
	}
}
