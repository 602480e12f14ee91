package scoring

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/minecart/minecart/services/telemetry"
)

// checkCold: a day goes through the cold layout (appendCold, packZeros,
// unpackZeros, readCold) unchanged, field for field.
func checkCold(t *testing.T, d *Day) {
	t.Helper()
	rec := appendCold(nil, &coldBufs{}, d, 5*3600000)
	back, _, err := readCold(rec, nil, d.Start, d.End, 5*3600000)
	if err != nil {
		t.Fatalf("cold day does not decode: %v", err)
	}
	if len(d.segs) == 0 && back.segs != nil {
		back.segs = d.segs // nil and empty are the same day
	}
	if !reflect.DeepEqual(d, back) {
		t.Fatalf("cold layout changed the day:\n got %+v\nwant %+v", back, d)
	}
	for k := 1; k < len(rec); k++ { // a cut record is refused, never a panic
		if _, _, err := readCold(rec[:k], nil, d.Start, d.End, 5*3600000); err == nil {
			t.Fatalf("record cut at %d of %d accepted", k, len(rec))
		}
	}
}

// TestColdCodecRoundTrip: random days (random events, in random batches,
// several devices, rollbacks, gaps, static fixes) and the benchmark's day
// survive the cold layout; the benchmark's day packs small.
func TestColdCodecRoundTrip(t *testing.T) {
	r := DefaultRules()
	for i := range 200 {
		evs := randomEvents(binary.LittleEndian.AppendUint64(nil, uint64(i)), 2+i%120)
		d := NewDay(0, 86400000, 5*3600000)
		rng := rand.New(rand.NewPCG(uint64(i), 7))
		for _, j := range rng.Perm(len(evs)) {
			d.Add(&r, &evs[j], nil)
			if j%17 == 0 {
				checkCold(t, &d)
			}
		}
		checkCold(t, &d)
	}
	d := benchDay(&r)
	checkCold(t, &d)
	rec := appendCold(nil, &coldBufs{}, &d, 5*3600000)
	cold := len(rec)
	state := len(packZeros(nil, d.AppendBinary(nil)))
	t.Logf("benchmark day: %d B cold, %d B packed changelog state", cold, state)
	if cold > 130 {
		t.Fatalf("benchmark day takes %d B cold", cold)
	}
}

// benchDay is one of BenchmarkOpenWindows1M's days: ten events of one run.
func benchDay(r *Rules) Day {
	ev := telemetry.Event{VehicleID: "LSVAU2180N2000001", DeviceID: "dev-00000001", TZ: "Asia/Shanghai", Lat: 31.2, Lon: 121.4, HDOP: 0.8, SpeedKmh: 50, OdometerKm: 1000}
	t0 := morning().UnixMilli()
	d := NewDay(t0-8*3600000, t0+16*3600000, 5*3600000) // Asia/Shanghai: 08:00 local, night to 05:00
	for k := range 10 {
		ev.Seq = uint64(k + 1)
		ev.TimeMs = t0 + int64(k)*1000
		ev.Lon += 0.0001
		ev.OdometerKm += 0.01
		d.Add(r, &ev, nil)
	}
	return d
}

// FuzzColdDay: every day the changelog decoder accepts survives the cold
// layout.
func FuzzColdDay(f *testing.F) {
	r := DefaultRules()
	d, _ := scoreDay(&r, newTrip("v", morning(), 1).Drive(200, 60, at(50, 51, lonAccel(-0.5))).Evs)
	f.Add(d.AppendBinary(nil))
	b := benchDay(&r)
	f.Add(b.AppendBinary(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		var x Day
		if _, err := x.UnmarshalBinary(b); err != nil {
			return
		}
		checkCold(t, &x)
	})
}

// TestDayIndex: slots opened and dropped in random order are found by
// (vehicle, start) exactly while they are open (linear probing with
// backward-shift deletion, growth included).
func TestDayIndex(t *testing.T) {
	r := DefaultRules()
	w, err := NewWindows(&r, "Asia/Shanghai", 0)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	type key struct {
		v     string
		start int64
	}
	open, gone := map[key]int32{}, map[key]bool{}
	for round := range 20000 {
		k := key{fmt.Sprintf("v%d", rng.IntN(3000)), int64(rng.IntN(4)) * 86400000}
		if i, ok := open[k]; ok && round%3 != 0 {
			w.drop(i)
			delete(open, k)
			gone[k] = true
		} else if !ok {
			delete(gone, k)
			d := NewDay(k.start, k.start+86400000, 0)
			open[k] = w.open(k.v, k.start, k.start+86400000, 0, &d)
		}
		if round%997 == 0 || round == 19999 {
			for k, i := range open {
				if got := w.lookup(k.v, k.start); got != i {
					t.Fatalf("round %d: %v at slot %d, lookup says %d", round, k, i, got)
				}
			}
			for k := range gone {
				if got := w.lookup(k.v, k.start); got != -1 {
					t.Fatalf("round %d: dropped %v found at slot %d", round, k, got)
				}
			}
			if w.Open() != len(open) {
				t.Fatalf("round %d: %d open, index holds %d", round, len(open), w.Open())
			}
			if w.lookup("nobody", 0) != -1 {
				t.Fatal("found a vehicle never opened")
			}
		}
	}
}
