package telemetry

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
	"testing"
)

// TestIDHashIsFNV1a: the ring's hashes are in the changelog's snapshots,
// so the inlined hash must be hash/fnv's 64-bit FNV-1a exactly.
func TestIDHashIsFNV1a(t *testing.T) {
	for _, id := range []string{"", "e", "dev-000001-1764000000123", "\x00\xff", "événement-42"} {
		h := fnv.New64a()
		h.Write([]byte(id))
		if got, want := idHash(id), h.Sum64(); got != want {
			t.Errorf("idHash(%q) = %x, FNV-1a %x", id, got, want)
		}
	}
}

// TestDedupWindowCache: the window Check remembers for the Add that
// follows is never a window the map no longer holds: a Forget, Restore or
// Evict between Check and Add leaves Add writing into the map's window.
func TestDedupWindowCache(t *testing.T) {
	e1 := ev("d1", 1, 1_000_000, 10)
	e2 := ev("d1", 2, 1_001_000, 10)
	for name, between := range map[string]func(d *Dedup){
		"forget": func(d *Dedup) { d.Forget("v") },
		"evict":  func(d *Dedup) { d.Evict(1 << 62) },
		"restore": func(d *Dedup) {
			other := NewDedup(DedupConfig{})
			other.Add(ev("d9", 7, 900_000, 0))
			snap, _ := other.Snapshot(nil, "v")
			if err := d.Restore("v", snap); err != nil {
				t.Fatal(err)
			}
		},
	} {
		for _, otherBetween := range []bool{false, true} {
			d := NewDedup(DedupConfig{})
			d.Add(e1)
			if v, err := d.Check(e2); v != New || err != nil {
				t.Fatalf("%s: %v %v", name, v, err)
			}
			if otherBetween {
				// Another vehicle's event: the last-window cache moves to it,
				// and "v" is only in the near table (same string: a literal).
				o := ev("d5", 1, 1_000_000, 0)
				o.VehicleID = "w"
				d.Add(o)
			}
			checkWindowCache(t, name, d, between, e2)
		}
	}
}

func checkWindowCache(t *testing.T, name string, d *Dedup, between func(*Dedup), e2 *Event) {
	{
		between(d)
		d.Add(e2)
		w := d.Window("v")
		if w == nil {
			t.Fatalf("%s: the added event's vehicle has no window", name)
		}
		// Through the map alone (Snapshot reads it): a fresh Dedup restored
		// from it finds the event.
		snap, _ := d.Snapshot(nil, "v")
		fresh := NewDedup(DedupConfig{})
		if err := fresh.Restore("v", snap); err != nil {
			t.Fatal(err)
		}
		if v, _ := fresh.Check(e2); v != Duplicate {
			t.Errorf("%s: the event added after the %s is not in the map's window: %+v", name, name, w)
		}
	}
}

// TestValidateFastPaths: allFinite and accelWithin give what the checks
// they shortcut give: the twelve fields one by one with math.IsNaN/IsInf,
// and !(math.Hypot(lon, lat) > max), on boundaries included.
func TestValidateFastPaths(t *testing.T) {
	fields := func(ev *Event) []*float64 {
		return []*float64{&ev.Lat, &ev.Lon, &ev.HDOP, &ev.SpeedKmh, &ev.HeadingDeg, &ev.AccelLonMS2, &ev.AccelLatMS2,
			&ev.SpeedLimitKmh, &ev.OdometerKm, &ev.FuelPct, &ev.BatteryV, &ev.CoolantC}
	}
	for i := range 12 {
		for _, bad := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
			ev := sample(1)
			*fields(&ev)[i] = bad
			if allFinite(&ev) {
				t.Errorf("field %d = %v: allFinite", i, bad)
			}
		}
	}
	ev := sample(1)
	for _, p := range fields(&ev) {
		*p = math.MaxFloat64 // finite, and x - x is still 0
	}
	if !allFinite(&ev) {
		t.Error("MaxFloat64 everywhere: not allFinite")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	maxes := []float64{29.43, 1, 0, 1e-300, 1e300, 3}
	for n := 0; n < 200_000; n++ {
		m := maxes[n%len(maxes)]
		th := rng.Float64() * 2 * math.Pi
		r := m * (1 + (rng.Float64()-0.5)*4e-6) // around the boundary, inside and outside the margin
		lon, lat := r*math.Cos(th), r*math.Sin(th)
		if n%7 == 0 {
			lon, lat = rng.NormFloat64()*m, rng.NormFloat64()*m
		}
		if got, want := accelWithin(lon, lat, m), !(math.Hypot(lon, lat) > m); got != want {
			t.Fatalf("accelWithin(%v, %v, %v) = %v, Hypot says %v", lon, lat, m, got, want)
		}
	}
}
