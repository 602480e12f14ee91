package view

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)

func ev(vehicle string, ms int64, seq uint64) Event {
	return Event{Vehicle: vehicle, Device: "d1", Seq: seq, TimeMs: ms, LatE6: int32(45e6 + seq*37), LonE6: int32(7e6 - seq*11),
		SpeedKmh: float32(seq%130) + 0.25, HeadingDeg: float32(seq*13%360) / 10, HDOP: 0.9, OdometerM: seq * 35, EngineOn: true}
}

func caught(v *View) { v.MarkCaught(true); v.MarkCaught(false); v.MarkErasuresCaught() }

func TestFixedRoundTrip(t *testing.T) {
	for _, f := range []float32{0, 0.01, 1.5, 129.99, 359.9, float32(math.Copysign(0, -1)), -3.25, 1e30, float32(math.NaN()), float32(math.Inf(1)), 0.1 + 0.2, 33.333336} {
		b := appendFixed(nil, f)
		g, n := readFixed(b)
		if n != len(b) || math.Float32bits(g) != math.Float32bits(f) {
			t.Errorf("%v (%x): got %v (%x), %d of %d bytes", f, math.Float32bits(f), g, math.Float32bits(g), n, len(b))
		}
	}
	if n := len(appendFixed(nil, 87.5)); n != 3 {
		t.Errorf("87.5 takes %d bytes, want 3 (fixed-point)", n)
	}
}

func FuzzTrackStream(f *testing.F) {
	f.Add(int64(0), uint64(1), int32(1), int32(2), float32(1.5), float32(2), []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, ms int64, seq uint64, lat, lon int32, sp, hd float32, order []byte) {
		devs := []string{"a", "b"}
		var tr dayTrack
		tr.sorted = true
		var want []Point
		for i, o := range order {
			p := Point{TimeMs: ms + int64(o)*1000 - int64(i), Dev: uint32(o & 1), Seq: seq + uint64(o), LatE6: lat - int32(o), LonE6: lon + int32(i),
				SpeedKmh: sp + float32(o), HeadingDeg: hd}
			tr.append(p, devs)
			want = append(want, p)
		}
		got := tr.decode(nil, math.MinInt64, math.MaxInt64)
		if len(got) != len(want) {
			t.Fatalf("%d points, want %d", len(got), len(want))
		}
		for i := range got {
			g, w := got[i], want[i]
			if g.TimeMs != w.TimeMs || g.Dev != w.Dev || g.Seq != w.Seq || g.LatE6 != w.LatE6 || g.LonE6 != w.LonE6 ||
				math.Float32bits(g.SpeedKmh) != math.Float32bits(w.SpeedKmh) || math.Float32bits(g.HeadingDeg) != math.Float32bits(w.HeadingDeg) {
				t.Fatalf("point %d: %+v, want %+v", i, g, w)
			}
		}
		tr.sort(devs)
		got = tr.decode(nil, math.MinInt64, math.MaxInt64)
		if !slices.IsSortedFunc(got, func(a, b Point) int {
			return key{a.TimeMs, devs[a.Dev], a.Seq}.cmp(key{b.TimeMs, devs[b.Dev], b.Seq})
		}) {
			t.Fatal("not sorted after sort")
		}
		for i := 1; i < len(got); i++ {
			if got[i].TimeMs == got[i-1].TimeMs && got[i].Dev == got[i-1].Dev && got[i].Seq == got[i-1].Seq {
				t.Fatal("a repeated key after sort")
			}
		}
	})
}

func TestTrackOrderLateAndRepeated(t *testing.T) {
	v := New(Config{})
	now := t0.Add(12 * time.Hour)
	base := t0.Add(8 * time.Hour).UnixMilli()
	for _, s := range []uint64{1, 2, 3, 5, 6} {
		v.AddEvent(ev("v1", base+int64(s)*1000, s), now)
	}
	if _, _, _, st := v.Track(nil, "v1", base, base+10_000, now); st != NotCaught {
		t.Fatalf("before caught: %v", st)
	}
	caught(v)
	pts, devs, known, st := v.Track(nil, "v1", base, base+10_000, now)
	if st != Covered || !known || len(pts) != 5 || devs[0] != "d1" {
		t.Fatalf("in order: %v %v %d", st, known, len(pts))
	}
	late := ev("v1", base+4000, 4) // late
	v.AddEvent(late, now)
	again := ev("v1", base+2000, 2) // repeated key, new values: replaces
	again.LatE6 = 1
	v.AddEvent(again, now)
	pts, _, _, _ = v.Track(pts[:0], "v1", base, base+10_000, now)
	var seqs []uint64
	for _, p := range pts {
		seqs = append(seqs, p.Seq)
	}
	if !slices.Equal(seqs, []uint64{1, 2, 3, 4, 5, 6}) || pts[1].LatE6 != 1 {
		t.Fatalf("after late and repeated: %v, point 2 lat %d", seqs, pts[1].LatE6)
	}
	if s := v.Stats(); s.Points != 6 {
		t.Fatalf("stats points %d, want 6 after the repeated key", s.Points)
	}
	// Range bounds: [from, to).
	pts, _, _, _ = v.Track(pts[:0], "v1", base+2000, base+5000, now)
	if len(pts) != 3 || pts[0].Seq != 2 || pts[2].Seq != 4 {
		t.Fatalf("range: %+v", pts)
	}
	// The position is the latest by key, late ones do not move it.
	p, ok := v.Position("v1")
	if !ok || p.Seq != 6 {
		t.Fatalf("position %+v %v", p, ok)
	}
	if _, _, known, st := v.Track(nil, "nobody", base, base+1000, now); st != Covered || known {
		t.Fatalf("unknown vehicle: %v %v", st, known)
	}
}

func TestWindowAndTrim(t *testing.T) {
	v := New(Config{LateDays: 2, ReportDays: 3})
	caught(v)
	now := t0.Add(12 * time.Hour) // day D = t0
	for d := -4; d <= 0; d++ {
		v.AddEvent(ev("v1", t0.AddDate(0, 0, d).Add(time.Hour).UnixMilli(), uint64(10+d)), now)
		v.AddScore("v1", Score{Date: Day(t0.AddDate(0, 0, d).UnixMilli()), Offset: int64(d + 10)}, now)
	}
	if s := v.Stats(); s.Days != 3 || s.Scores != 3 || s.Dropped != 2 {
		t.Fatalf("stats %+v: want 3 days (D-2..D), 3 scores, 2 dropped", s)
	}
	if _, _, _, st := v.Track(nil, "v1", t0.AddDate(0, 0, -3).UnixMilli(), now.UnixMilli(), now); st != OutOfRange {
		t.Fatalf("D-3: %v", st)
	}
	pts, _, _, st := v.Track(nil, "v1", t0.AddDate(0, 0, -2).UnixMilli(), now.UnixMilli(), now)
	if st != Covered || len(pts) != 3 {
		t.Fatalf("D-2..D: %v %d", st, len(pts))
	}
	sc, _, st := v.Scores(nil, "v1", Day(t0.AddDate(0, 0, -2).UnixMilli()), Day(t0.UnixMilli()), now)
	if st != Covered || len(sc) != 3 {
		t.Fatalf("scores: %v %d", st, len(sc))
	}
	later := now.AddDate(0, 0, 1)
	v.Trim(later)
	if s := v.Stats(); s.Days != 2 || s.Scores != 2 || s.Points != 2 {
		t.Fatalf("after trim: %+v", s)
	}
	if _, _, _, st := v.Track(nil, "v1", t0.AddDate(0, 0, -2).UnixMilli(), now.UnixMilli(), later); st != OutOfRange {
		t.Fatalf("trimmed day: %v", st)
	}
	if _, ok := v.Position("v1"); !ok {
		t.Fatal("the position is kept after trim")
	}
	v.SetTelemetryFrom(t0.UnixMilli() + 1)
	if _, _, _, st := v.Track(nil, "v1", t0.UnixMilli(), now.UnixMilli(), later); st != OutOfRange {
		t.Fatalf("before the topic's first retained data: %v", st)
	}
}

func TestScoresLatestOffsetWins(t *testing.T) {
	v := New(Config{})
	caught(v)
	now := t0
	d := Day(t0.UnixMilli())
	v.AddScore("v1", Score{Date: d, Offset: 5, Points: 5}, now)
	v.AddScore("v1", Score{Date: d, Offset: 9, Points: 9}, now)
	v.AddScore("v1", Score{Date: d, Offset: 7, Points: 7}, now) // older version read later (cannot happen on one partition; kept safe)
	v.AddScore("v1", Score{Date: d - 1, Offset: 8, Points: 1}, now)
	sc, known, st := v.Scores(nil, "v1", d-5, d, now)
	if st != Covered || known || len(sc) != 2 || sc[0].Points != 1 || sc[1].Points != 9 {
		t.Fatalf("%v %v %+v", st, known, sc)
	}
}

func TestOverflowDropsTheDay(t *testing.T) {
	v := New(Config{MaxPointsPerDay: 10})
	caught(v)
	now := t0.Add(23 * time.Hour)
	for i := range 11 {
		v.AddEvent(ev("v1", t0.UnixMilli()+int64(i)*1000, uint64(i+1)), now)
	}
	if _, _, _, st := v.Track(nil, "v1", t0.UnixMilli(), now.UnixMilli(), now); st != OutOfRange {
		t.Fatalf("overflowed day: %v", st)
	}
	if s := v.Stats(); s.Overflows != 1 || s.Points != 0 || s.TrackB != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestMemoryFigures measures the heap of 1,201 vehicle-days of 333 points
// (one every 5 s for 28 min, the benchmark's fleet) and of 3,745 points
// (106 of the default run's), and checks Stats.Bytes within 25 % of it: the
// figures docs/owner-api.md gives per vehicle-day.
func TestMemoryFigures(t *testing.T) {
	for _, perDay := range []int{333, 3745} {
		vehicles := int64(400000 / perDay)
		now := t0.Add(23 * time.Hour)
		rng := rand.New(rand.NewPCG(1, 2))
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		v := New(Config{})
		for k := range perDay {
			for i := range int(vehicles) {
				e := ev(vehicleName(i), t0.UnixMilli()+int64(k)*5000+int64(i), uint64(k+1))
				e.SpeedKmh = float32(rng.IntN(13000)) / 100
				e.HeadingDeg = float32(rng.IntN(3600)) / 10
				v.AddEvent(e, now)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
		s := v.Stats()
		t.Logf("%d points a day: heap %d B per vehicle-day (%.1f B a point), Stats.Bytes %d per vehicle-day",
			perDay, heap/vehicles, float64(heap)/float64(vehicles*int64(perDay)), s.Bytes()/vehicles)
		if r := float64(s.Bytes()) / float64(heap); r < 0.75 || r > 1.25 {
			t.Errorf("Stats.Bytes %d vs heap %d (ratio %.2f)", s.Bytes(), heap, r)
		}
		runtime.KeepAlive(v)
	}
}

func vehicleName(i int) string {
	return "veh-" + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676))
}

// TestForget: an erasure drops the vehicle's position, tracks and scores,
// and keeps out the events timed before it that a restarted feed reads
// again; later events (a new owner's) are kept. Until the erasure feed has
// caught up, the view answers nothing.
func TestForget(t *testing.T) {
	v := New(Config{})
	now := t0.Add(10 * time.Hour)
	base := t0.Add(8 * time.Hour).UnixMilli()
	v.MarkCaught(true)
	v.MarkCaught(false)
	for i := range 10 {
		v.AddEvent(ev("v1", base+int64(i)*1000, uint64(i)), now)
		v.AddEvent(ev("v2", base+int64(i)*1000, uint64(i)), now)
	}
	v.AddScore("v1", Score{Date: Day(t0.UnixMilli()), Offset: 1, WindowStartMs: t0.UnixMilli(), WindowEndMs: t0.Add(24 * time.Hour).UnixMilli(), Points: 5}, now)
	if _, ok := v.Position("v2"); ok {
		t.Fatal("a position before the erasure feed caught up")
	}
	v.MarkErasuresCaught()
	before := v.Stats()
	erasedAt := base + 20_000
	v.Forget("v1", erasedAt)
	if _, ok := v.Position("v1"); ok {
		t.Error("the erased vehicle's position is still answered")
	}
	if pts, _, known, _ := v.Track(nil, "v1", base, base+60_000, now); known || len(pts) != 0 {
		t.Errorf("the erased vehicle's track: %d points, known %v", len(pts), known)
	}
	if p, ok := v.Position("v2"); !ok || p.Seq != 9 {
		t.Errorf("another vehicle's position: %+v %v", p, ok)
	}
	after := v.Stats()
	if after.Vehicles != before.Vehicles-1 || after.Points != before.Points-10 || after.Scores != before.Scores-1 {
		t.Errorf("stats before %+v after %+v", before, after)
	}
	// The restarted feed reads the old events again: not kept.
	v.AddEvent(ev("v1", base+5000, 5), now)
	v.AddScore("v1", Score{Date: Day(t0.UnixMilli()), Offset: 1, WindowStartMs: t0.UnixMilli(), WindowEndMs: t0.Add(24 * time.Hour).UnixMilli(), Points: 5}, now)
	if _, ok := v.Position("v1"); ok || v.Stats().Scores != after.Scores {
		t.Error("an event or score from before the erasure was kept again")
	}
	v.AddEvent(ev("v1", erasedAt+1000, 50), now)
	if p, ok := v.Position("v1"); !ok || p.Seq != 50 {
		t.Errorf("an event after the erasure: %+v %v", p, ok)
	}
}
