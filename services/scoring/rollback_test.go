package scoring

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/minecart/minecart/services/telemetry"
)

// TestRollback: what a rollback is (a decrease of more than OdoRollbackKm
// between consecutive readings in event-time order, or against ingest's
// reference reading in another day), that it pays 0 and keeps the driving
// in the record, and that odometer noise and honest out-of-order uploads
// never trip it.
func TestRollback(t *testing.T) {
	r := DefaultRules()
	base := func() *trip { return newTrip("v", morning(), 21) }
	noise := func(i int, ev *telemetry.Event) { // +-60 m of reading noise, never more than 0.1 km back
		if i%2 == 1 {
			ev.OdometerKm -= 0.06
		}
	}
	dayStart := time.Date(2026, 11, 24, 0, 0, 0, 0, shanghai).UnixMilli()
	cases := []struct {
		name      string
		evs       []telemetry.Event
		ref       map[int]OdoRef // ingest's mark on event i
		rollbacks int
		minKm     float64 // distance_km still computed
	}{
		{"honest", base().Drive(600, 60).Drive(600, 60).Evs, nil, 0, 19.5},
		{"odometer noise 60 m back: not a rollback", base().Drive(1200, 60, noise).Evs, nil, 0, 19.5},
		{"back 100 m exactly: not a rollback (more than 0.1 km is)", base().Drive(600, 60).Odometer(-0.1-1.0/60).Drive(600, 60).Evs, nil, 0, 19.5},
		{"back 150 m: rollback", base().Drive(600, 60).Odometer(-0.15-1.0/60).Drive(600, 60).Evs, nil, 1, 19.5},
		{"back 5,000 km mid-day: rollback, the driving after it kept", base().Drive(600, 60).Odometer(-5000).Drive(600, 60).Evs, nil, 1, 19.5},
		{"rolled back overnight: ingest's reference in yesterday", base().Drive(1200, 60).Evs,
			map[int]OdoRef{0: {TimeMs: dayStart - 3600_000, Km: 60000}}, 1, 19.5},
		{"reference in yesterday, within 0.1 km: not a rollback", base().Drive(1200, 60).Evs,
			map[int]OdoRef{0: {TimeMs: dayStart - 3600_000, Km: 10000.05}}, 0, 19.5},
		{"rolled back tomorrow, tomorrow's reading arrived first: ingest marks today's last reading", base().Drive(1200, 60).Evs,
			map[int]OdoRef{1199: {TimeMs: dayStart + 30*3600_000, Km: 5}}, 1, 19.5},
		{"reference inside the day: the day's own check decides (no double count)", base().Drive(600, 60).Odometer(-500).Drive(600, 60).Evs,
			map[int]OdoRef{600: {TimeMs: morning().Add(599 * time.Second).UnixMilli(), Km: 10010}}, 1, 19.5},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := dayStart
			d := NewDay(start, start+86400_000, uint32(r.NightEndHour)*3600000)
			var buf []byte
			for i := range c.evs {
				var ref *OdoRef
				if x, ok := c.ref[i]; ok {
					ref = &x
				}
				buf = d.AddRef(&r, &c.evs[i], ref, buf)
			}
			res := d.Result(&r)
			eq(t, "odometer_rollbacks", res.OdometerRollbacks, c.rollbacks)
			if got := slices.Contains(res.Flags, FlagRollback); got != (c.rollbacks > 0) {
				t.Fatalf("flags %v (%v)", res.Flags, res.Reasons)
			}
			if c.rollbacks > 0 && res.Points != 0 {
				t.Fatalf("a rollback day pays %d points, want 0", res.Points)
			}
			if c.rollbacks == 0 && res.Points == 0 {
				t.Fatalf("honest day pays 0 (%v)", res.Reasons)
			}
			if res.DistanceKm < c.minKm || res.DrivingS < 1190 || res.Events != int64(len(c.evs)) {
				t.Fatalf("driving lost from the record: %.2f km, %d s, %d events", res.DistanceKm, res.DrivingS, res.Events)
			}
		})
	}
}

// TestRollbackOrderFree: an honest box uploading its day in shuffled
// batches never trips the rollback (readings are compared in event-time
// order, not arrival order), and a rolled-back day is flagged whatever the
// order its batches arrive in.
func TestRollbackOrderFree(t *testing.T) {
	r := DefaultRules()
	honest := newTrip("v", morning(), 22).Drive(900, 50).Stop(10*time.Minute).Drive(900, 70).Evs
	cheat := newTrip("v", morning(), 23).Drive(900, 50).Odometer(-3000).Drive(900, 70).Evs
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range 40 {
		for _, c := range []struct {
			evs  []telemetry.Event
			want int
		}{{honest, 0}, {cheat, 1}} {
			bs := batches(rng, c.evs, 2+rng.IntN(MaxSegments-1))
			rng.Shuffle(len(bs), func(i, j int) { bs[i], bs[j] = bs[j], bs[i] })
			_, res := scoreBatches(&r, bs)
			if res.OdometerRollbacks != c.want || slices.Contains(res.Flags, FlagRollback) != (c.want > 0) {
				t.Fatalf("round %d, %d batches: %d rollbacks, flags %v; want %d", i, len(bs), res.OdometerRollbacks, res.Flags, c.want)
			}
		}
	}
}
