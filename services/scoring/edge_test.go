package scoring

import (
	"slices"
	"testing"
	"time"

	"github.com/minecart/minecart/services/telemetry"
)

// TestHonestEdgeCases: boxes that lose power, are replaced or repeat their
// GPS fix are paid what they drove and not flagged; the frauds that look
// like them still are.
func TestHonestEdgeCases(t *testing.T) {
	r := DefaultRules()
	base := func() *trip { return newTrip("v", morning(), 11) }
	odoKm := func(evs []telemetry.Event) float64 { return evs[len(evs)-1].OdometerKm - evs[0].OdometerKm }
	noOdo := func(_ int, ev *telemetry.Event) { ev.OdometerKm = 0 }
	repeat := func() func(int, *telemetry.Event) { // 20 Hz box repeating its 1 Hz fix
		var lat, lon float64
		return func(i int, ev *telemetry.Event) {
			if i%20 == 0 {
				lat, lon = ev.Lat, ev.Lon
			} else {
				ev.Lat, ev.Lon = lat, lon
			}
		}
	}
	cases := []struct {
		name    string
		evs     []telemetry.Event
		truthKm float64 // distance really driven (0: the odometer's)
		wantKm  float64 // distance paid (0: truthKm)
		gaps    [2]int  // unobserved gaps, of them paid by the odometer
		jumps   int
		flags   []string
		device  string
	}{
		{"power lost 10 min while driving, odometer agrees: gap paid",
			base().Drive(600, 60).Coast(10*time.Minute, 60).Drive(600, 60).Evs, 0, 0, [2]int{1, 1}, 0, nil, "dev-v"},
		{"power lost 10 min, no odometer: gap not paid, no flag",
			base().Drive(600, 60, noOdo).Coast(10*time.Minute, 60).Drive(600, 60, noOdo).Evs, 30, 20, [2]int{1, 0}, 0, nil, "dev-v"},
		{"power lost, odometer 25 km too far (210 km/h): not paid, no mismatch",
			base().Drive(600, 60).Coast(10*time.Minute, 60).Odometer(25).Drive(600, 60).Evs, 30, 20, [2]int{1, 0}, 0, nil, "dev-v"},
		{"power lost, odometer doubled over the gap (2x the line): not paid",
			base().Drive(600, 60).Coast(10*time.Minute, 60).Odometer(10).Drive(600, 60).Evs, 30, 20, [2]int{1, 0}, 0, nil, "dev-v"},
		{"power lost while driving, back only when parked: the parked fix ends the gap",
			base().Drive(600, 60).Coast(10*time.Minute, 60).Drive(30, 0).Evs, 0, 0, [2]int{1, 1}, 0, nil, "dev-v"},
		{"parked with the box off: the odometer agrees on ~0",
			base().Drive(600, 60).Stop(30*time.Minute).Drive(600, 60).Evs, 0, 0, [2]int{1, 1}, 0, nil, "dev-v"},
		{"box replaced while parked: not multi_device",
			base().Drive(600, 60).Stop(20*time.Minute).Device("dev-new").Drive(600, 60).Evs, 0, 0, [2]int{1, 1}, 0, nil, "dev-v"},
		{"20 Hz box repeating its 1 Hz fix: no jumps",
			func() []telemetry.Event { tr := base(); tr.PeriodMs = 50; return tr.Drive(20*600+1, 50, repeat()).Evs }(), 0, 0, [2]int{}, 0, nil, "dev-v"},
		{"tunnel: no fix for 3 min while reporting speed: paid anchor to anchor",
			base().Drive(300, 60).Drive(180, 60, func(_ int, ev *telemetry.Event) { ev.Lat, ev.Lon = 0, 0 }).Drive(300, 60).Evs, 0, 0, [2]int{}, 0, nil, "dev-v"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, res := scoreDay(&r, c.evs)
			truth := c.truthKm
			if truth == 0 {
				truth = odoKm(c.evs)
			}
			want := c.wantKm
			if want == 0 {
				want = truth
			}
			near(t, "distance_km", res.DistanceKm, want, want*0.01)
			eq(t, "gaps", [2]int{res.Gaps, res.GapsPaid}, c.gaps)
			eq(t, "gps_jumps", res.GPSJumps, c.jumps)
			if !slices.Equal(res.Flags, c.flags) {
				t.Fatalf("flags %v, want %v (%v)", res.Flags, c.flags, res.Reasons)
			}
			eq(t, "device", d.Device, c.device)
		})
	}
}

// TestFraudsStillFlagged: the cases next to the honest ones above. (Two
// lone outliers are not teleport: evidence 2 < 3, as before 2026.12-1.)
func TestFraudsStillFlagged(t *testing.T) {
	r := DefaultRules()
	base := func() *trip { return newTrip("v", morning(), 12) }
	inflate := func(_ int, ev *telemetry.Event) { ev.OdometerKm = 10000 + (ev.OdometerKm-10000)*1.5 }
	clone := func(i int, ev *telemetry.Event) {
		if i%2 == 1 {
			ev.DeviceID = "clone"
		}
	}
	cases := []struct {
		name string
		evs  []telemetry.Event
		flag string
	}{
		{"inflated odometer", base().Drive(1200, 60, inflate).Evs, FlagMismatch},
		{"two devices interleaved", base().Drive(600, 60, clone).Evs, FlagMultiDevice},
		{"two devices overlapping in time", append(base().Drive(600, 60).Evs, newTrip("v", morning().Add(5*time.Minute), 13).Device("b").Drive(10, 60).Evs...), FlagMultiDevice},
		{"three outliers", base().Drive(600, 60, at(100, 101, func(ev *telemetry.Event) { ev.Lat += 0.5 }), at(300, 301, func(ev *telemetry.Event) { ev.Lon += 0.5 }),
			at(400, 401, func(ev *telemetry.Event) { ev.Lon -= 0.5 })).Evs, FlagTeleport},
		{"one relocation that stays (the fleet's teleporting box)", base().Drive(300, 60).Drive(300, 60, func(_ int, ev *telemetry.Event) { ev.Lat += 0.1 }).Evs, FlagTeleport},
		{"rollback", base().Drive(300, 60).Odometer(-50).Drive(300, 60).Evs, FlagRollback},
		// x1.4 with two 10-minute gaps the inflated odometer pays (14 km of
		// a 10 km line each): GPS 30 + gaps 28 = 58 km against odometer 70
		// is 17 % of the total, 12 km of 42 observed (28.6 %).
		{"inflated odometer paying its own gaps", func() []telemetry.Event {
			evs := base().Drive(600, 60).Coast(10*time.Minute, 60).Drive(600, 60).Coast(10*time.Minute, 60).Drive(600, 60).Evs
			for i := range evs {
				evs[i].OdometerKm = 10000 + (evs[i].OdometerKm-10000)*1.4
			}
			return evs
		}(), FlagMismatch},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, res := scoreDay(&r, c.evs)
			if !slices.Contains(res.Flags, c.flag) {
				t.Fatalf("flags %v, want %s", res.Flags, c.flag)
			}
		})
	}
}
