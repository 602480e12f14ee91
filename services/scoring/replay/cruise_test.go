package replay

import (
	"math/rand/v2"
	"testing"
)

// TestCruiseControlLimit pins the known limit (docs/scoring.md, "Replay
// detection"): one road driven at one constant speed the whole way, a
// different speed each day (95-110 km/h, so consecutive days are often
// within 1-2 %), is the same trace as far as 250 m cells and 8 % time
// buckets can tell, and matches. Real drives vary their speed along the
// way (TestSameRouteHonest); if this starts failing, the docs' limit
// changed.
func TestCruiseControlLimit(t *testing.T) {
	cfg := DefaultConfig()
	x, _ := NewIndex(cfg, 30, 1000)
	rt := newRoute(5, 15)
	m := 0
	for d := range 40 {
		r := rand.New(rand.NewPCG(uint64(d), 4))
		v := 95 + 15*r.Float64()
		fs := rt.drive(int64(d)*86400_000, 1000, func(int) float64 { return v }, func(int) float64 { return 0 })
		fps := Trips(cfg, "c", dateOf(d), fs)
		if ms := x.Check(&fps[0]); len(ms) > 0 {
			m++
		}
		x.Add(&fps[0])
	}
	t.Logf("cruise control, one speed per day: %d of 40 days matched an earlier one", m)
	if m < 30 {
		t.Fatalf("only %d of 40 constant-speed days matched: update the documented limit", m)
	}
}
