package campaign_test

import (
	"math/rand/v2"
	"testing"

	"github.com/minecart/minecart/services/campaign"
)

// TestBookBonus: evaluated on a credit's fields alone (the score-only
// variables unknown), a rule is decided exactly when its result does not
// depend on them, and a decided result is the one Bonus gives whatever
// the score-only variables hold (checked on 200 random fillings each).
func TestBookBonus(t *testing.T) {
	base := campaign.Inputs{Points: 120, Score: 86.5, Date: "2027-01-02", TZ: "Asia/Shanghai", ConfigVersion: "rules-1", Weekday: 6, TenureDays: 3}
	for _, tc := range []struct {
		name  string
		def   campaign.Definition
		edit  func(*campaign.Inputs)
		known bool
		want  int64
	}{
		{"weekend: Saturday, score 86.5 needs the region", weekendShanghai, nil, false, 0},
		{"weekend: score 70 decides 0", weekendShanghai, func(in *campaign.Inputs) { in.Score = 70 }, true, 0},
		{"weekend: Monday decides 0", weekendShanghai, func(in *campaign.Inputs) { in.Weekday = 1 }, true, 0},
		{"welcome: tenure 3, no flags", welcome, nil, true, 50},
		{"welcome: a flag", welcome, func(in *campaign.Inputs) { in.Flags = []string{"too_regular"} }, true, 0},
		{"welcome: tenure 9", welcome, func(in *campaign.Inputs) { in.TenureDays = 9 }, true, 0},
		{"safe-km reads counts and distance", safeKm, nil, false, 0},
		{"points rule, clamped to the cap", campaign.Definition{Partner: "p", Name: "pts", Rule: "points * 10", Start: "2027-01-01", End: "2027-12-31", Budget: 1000, Cap: 500}, nil, true, 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := campaign.Compile(tc.def)
			if err != nil {
				t.Fatal(err)
			}
			in := base
			if tc.edit != nil {
				tc.edit(&in)
			}
			n, known, err := r.BookBonus(&in)
			if err != nil || known != tc.known || n != tc.want {
				t.Fatalf("BookBonus = %d, known %v, %v; want %d, %v", n, known, err, tc.want, tc.known)
			}
			if !known {
				return
			}
			rng := rand.New(rand.NewPCG(1, 2))
			regions := []string{"", "N31E121", "N30E121", "N39E116"}
			for range 200 {
				full := in
				full.DistanceKm, full.GpsKm, full.OdometerKm = rng.Float64()*300, rng.Float64()*300, rng.Float64()*300
				full.DrivingS, full.HarshBrake, full.HarshAccel, full.HarshCorner = rng.Int64N(40000), rng.Int64N(5), rng.Int64N(5), rng.Int64N(5)
				full.SpeedingS, full.NightS, full.FatigueEvents, full.Events = rng.Int64N(100), rng.Int64N(1000), rng.Int64N(3), rng.Int64N(10000)
				full.Region = regions[rng.IntN(len(regions))]
				if got, err := r.Bonus(&full); err != nil || got != n {
					t.Fatalf("Bonus on %+v = %d, %v; BookBonus decided %d", full, got, err, n)
				}
			}
		})
	}
}

// BenchmarkBookBonus is what the audit's completeness check costs per
// credit and active campaign (partial evaluation), beside Bonus (full).
func BenchmarkBookBonus(b *testing.B) {
	in := campaign.Inputs{Points: 120, Score: 86.5, Date: "2027-01-02", TZ: "Asia/Shanghai", ConfigVersion: "rules-1", Weekday: 6, TenureDays: 3, Region: "N31E121"}
	for _, d := range []campaign.Definition{weekendShanghai, welcome, safeKm} {
		r, err := campaign.Compile(d)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(d.Name+"/book", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := r.BookBonus(&in); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(d.Name+"/full", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.Bonus(&in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
