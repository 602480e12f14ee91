package replay

import (
	"slices"
	"testing"
)

// pair returns two fingerprints of different vehicles whose signatures
// agree on the first eq values (so they share band 0 when eq >= Rows).
func pair(eq int, na, nb uint32) (a, b Fingerprint) {
	a = Fingerprint{Version: 1, Vehicle: "orig", Date: "2026-11-24", StartMs: 1_000_000, EndMs: 4_000_000, N: na}
	b = Fingerprint{Version: 1, Vehicle: "copy", Date: "2026-11-25", StartMs: 90_000_000, EndMs: 93_000_000, N: nb}
	for i := range a.Sig {
		a.Sig[i] = uint16(i)
		b.Sig[i] = uint16(i)
		if i >= eq {
			b.Sig[i] = uint16(1000 + i)
		}
	}
	return a, b
}

// TestJudge: the evidence floor, the direction of a later copy, and the
// direction of simultaneous trips by origin (docs/scoring.md, "Replay
// detection", Matching).
func TestJudge(t *testing.T) {
	cfg := DefaultConfig()
	for _, c := range []struct {
		name   string
		eq     int
		na, nb uint32
		why    string
	}{
		// a 46-shingle trip "contained" in a 311-shingle one on 5 equal values
		// (J 0.078, C 0.54): too little evidence
		{"short in long, 5 of 64", 5, 311, 46, "Jaccard below MinJaccard"},
		{"short in long, 8 of 64", 8, 311, 46, ""},
		{"equal halves, 20 of 64", 20, 100, 100, "containment below MinContain"},
		{"same trace", 64, 120, 120, ""},
		// the month's highest honest pair (10,000 vehicles): a 24-shingle
		// trip along 3.5 km of a 51-shingle one, 25 equal values (J 0.39,
		// C 0.88), 21 shingles shared: a whole-trip copy of those sizes
		// matches, a part does not
		{"whole, 24 in 51, 25 of 64", 25, 51, 24, ""},
		{"part, 24 in 51, 25 of 64", -25, 51, 24, "a part of a trip, shared shingles below PartShared"},
		// a half of a noisy trip: 16 equal values (J 0.25), C 0.7 of 40
		{"part, 40 in 100, 16 of 64", -16, 100, 40, ""},
		{"part, 40 in 100, 15 of 64", -15, 100, 40, "a part of a trip, Jaccard below PartJaccard"},
		{"whole, 40 in 100, 15 of 64", 15, 100, 40, ""},
		// a part starting 3 cells from the original's start
		{"part by 3 cells, 24 in 51, 25 of 64", -1025, 51, 24, "a part of a trip, shared shingles below PartShared"},
	} {
		eq, off := c.eq, int32(0)
		switch {
		case eq < -1000: // the copy starts 3 cells away (WholeCells 2)
			eq, off = -eq-1000, 3
		case eq < 0: // the copy starts and ends 10 cells away from the original's ends
			eq, off = -eq, 10
		}
		a, b := pair(eq, c.na, c.nb)
		a.From, a.To = [2]int32{100, 100}, [2]int32{140, 90}
		b.From, b.To = [2]int32{100 + off, 100 - off}, [2]int32{140 - off, 90}
		for _, swap := range []bool{false, true} {
			x, y := &a, &b
			if swap {
				x, y = y, x
			}
			orig, cp, j, ct, why := Judge(&cfg, x, y)
			if why != c.why {
				t.Errorf("%s (swap %v): %q (J %.3f C %.3f), want %q", c.name, swap, why, j, ct, c.why)
			}
			if why == "" && (orig != &a || cp != &b) {
				t.Errorf("%s (swap %v): the copy is %s, want the later trip", c.name, swap, cp.Vehicle)
			}
		}
	}
	// A copy an hour later the same day overlaps its original but is not
	// simultaneous (starts and ends an hour apart): the later is the copy,
	// whatever the origins.
	{
		a, b := pair(64, 120, 120)
		b.StartMs, b.EndMs = a.StartMs+3600_000, a.EndMs+3600_000
		a.EndMs += 3 * 3600_000
		b.EndMs = a.EndMs + 3600_000
		a.Origin, b.Origin = OriginAway, OriginNear
		if Simultaneous(&cfg, &a, &b) {
			t.Error("a copy an hour later is simultaneous")
		}
		if _, cp, _, _, why := Judge(&cfg, &b, &a); why != "" || cp != &b {
			t.Errorf("an hour later: %q, copy %v", why, cp.Vehicle)
		}
	}
	// A cloned box's trip that mixes its own car's driving with its
	// victim's drive starts before the victim's trip and ends after it:
	// the victim, inside the other's span, is never judged the copy by
	// start order (and the clone is the earlier: no verdict).
	for _, c := range []struct {
		name          string
		dStart, dEnd  int64 // victim's start and end after the clone's
		why, wantCopy string
	}{
		{"inside", 3600_000, -3600_000, "inside the original's span", ""},
		{"inside, ends 181 s before", 600_000, -181_000, "inside the original's span", ""},
		// simultaneous: the origins call the victim the copy, but it is inside
		{"ends 180 s before", 600_000, -180_000, "inside the original's span", ""},
		{"ends with the clone (the month's two victims)", 1719_000, 0, "inside the original's span", ""},
		{"overlapping, ends after", 3600_000, 600_000, "", "victim"},
		{"a day later", 86400_000, 86400_000, "", "victim"},
		// the same span: only the origins can tell, and a victim whose trip
		// starts away from its previous one (after a power loss) is judged
		// the copy (docs/scoring.md, "Matching", rule 1: the known limit)
		{"the same span", 0, 0, "", "victim"},
		// a same-day copy starting 50 ms after its original and ending with
		// it (the month's replay of a 20 Hz day): origins decide, as for
		// the same span (here: the copy is the one starting away)
		{"50 ms later, ends with it", 50, 0, "", "victim"},
		{"180 s later, ends with it", 180_000, 0, "", "victim"},
		{"181 s later, ends with it", 181_000, 0, "inside the original's span", ""},
	} {
		clone, victim := pair(64, 300, 120)
		clone.Vehicle, victim.Vehicle, victim.Date = "clone", "victim", clone.Date
		clone.Origin, victim.Origin = OriginNear, OriginAway
		clone.StartMs, clone.EndMs = 0, 4*3600_000
		victim.StartMs, victim.EndMs = clone.StartMs+c.dStart, clone.EndMs+c.dEnd
		for _, swap := range []bool{false, true} {
			x, y := &clone, &victim
			if swap {
				x, y = y, x
			}
			_, cp, _, _, why := Judge(&cfg, x, y)
			got := ""
			if why == "" {
				got = cp.Vehicle
			}
			if why != c.why || got != c.wantCopy {
				t.Errorf("%s (swap %v): copy %q (%q), want %q (%q)", c.name, swap, got, why, c.wantCopy, c.why)
			}
		}
	}
	// Simultaneous trips: the copy is the one starting away from its
	// vehicle's previous trip while the other starts near its own.
	for _, c := range []struct {
		victim, clone uint8
		want          string // vehicle judged the copy, "" none
	}{
		{OriginNear, OriginAway, "clone"},
		{OriginAway, OriginNear, "victim"},
		{OriginNear, OriginNear, ""},
		{OriginUnknown, OriginAway, ""},
		{OriginNear, OriginUnknown, ""},
		{OriginAway, OriginAway, ""},
	} {
		v, w := pair(64, 120, 120)
		w.StartMs, w.EndMs = v.StartMs+4000, v.EndMs+3000 // a few seconds later
		v.Vehicle, w.Vehicle = "victim", "clone"
		v.Origin, w.Origin = c.victim, c.clone
		for _, swap := range []bool{false, true} {
			x, y := &v, &w
			if swap {
				x, y = y, x
			}
			_, cp, _, _, why := Judge(&cfg, x, y)
			got := ""
			if why == "" {
				got = cp.Vehicle
			}
			if got != c.want {
				t.Errorf("origins victim %d clone %d (swap %v): copy %q (%s), want %q", c.victim, c.clone, swap, got, why, c.want)
			}
		}
	}
}

// TestPostingsSimultaneous: the global check flags a same-time copy that
// starts away from its vehicle's previous trip and never its victim, in
// either arrival order; the per-task Index agrees.
func TestPostingsSimultaneous(t *testing.T) {
	cfg := DefaultConfig()
	victim, copy := pair(64, 150, 150)
	victim.Vehicle, copy.Vehicle, copy.Date = "victim", "copycat", victim.Date
	copy.StartMs, copy.EndMs = victim.StartMs, victim.EndMs // the same millisecond
	victim.Origin, copy.Origin = OriginNear, OriginAway
	for _, first := range []bool{true, false} {
		p, _ := NewPostings(cfg, 3, 10)
		x, y := &victim, &copy
		if !first {
			x, y = y, x
		}
		var got []Verdict
		for band := range Bands {
			got = append(got, p.Offer(x, band)...)
			got = append(got, p.Offer(y, band)...)
		}
		if len(got) != 1 || got[0].Vehicle != "copycat" || got[0].OfVehicle != "victim" {
			t.Errorf("victim first %v: verdicts %+v, want one against copycat", first, got)
		}
	}
	x, _ := NewIndex(cfg, 3, 10)
	x.Add(&victim)
	if ms := x.Check(&copy); len(ms) != 1 {
		t.Errorf("index, copy after victim: %d matches", len(ms))
	}
	y, _ := NewIndex(cfg, 3, 10)
	y.Add(&copy)
	if ms := y.Check(&victim); len(ms) != 0 {
		t.Errorf("index, victim after copy: %+v", ms)
	}
}

// TestAnchor: a day's first trip is near or away from the vehicle's latest
// fingerprinted trip held; later trips of the day carry their origin from
// the Builder.
func TestAnchor(t *testing.T) {
	cfg := DefaultConfig()
	tr := fleetDays(t, 45, 1, 3)
	x, _ := NewIndex(cfg, 30, 1000)
	var all []Fingerprint
	for _, d := range tr {
		fps := Trips(cfg, d.vehicle, d.date, slices.Clone(d.fixes))
		for i := range fps {
			x.Anchor(&fps[i])
			x.Add(&fps[i])
		}
		all = append(all, fps...)
	}
	if len(all) < 3 {
		t.Skipf("%d trips", len(all))
	}
	known := 0
	for i, fp := range all {
		if i > 0 && fp.Origin != OriginUnknown {
			known++
		}
		if i > 0 && fp.Origin == OriginAway && origin(&cfg, all[i-1].To, fp.From) != OriginAway {
			t.Errorf("trip %s/%d away, %v -> %v", fp.Date, fp.Trip, all[i-1].To, fp.From)
		}
	}
	if all[0].Origin != OriginUnknown {
		t.Errorf("the first trip ever has origin %d", all[0].Origin)
	}
	t.Logf("%d trips, %d of the later ones with a known origin", len(all), known)
	if known == 0 {
		t.Error("no origin known")
	}
	// a copy of the first day's first trip, anchored after the last trip
	// of the last day: its origin compares that trip's end and its start
	cp := all[0]
	cp.Vehicle, cp.Date, cp.first = all[0].Vehicle, "2026-12-31", true
	cp.StartMs = all[len(all)-1].EndMs + 1
	cp.Origin = OriginUnknown
	x.Anchor(&cp)
	if want := origin(&cfg, all[len(all)-1].To, cp.From); cp.Origin != want {
		t.Errorf("anchored origin %d, want %d", cp.Origin, want)
	}
}

// TestJudgeShort: a pair with a short trip (N < MinShingles) matches only
// as a verbatim copy, both short with the same Exact (rule 5), and then
// by the same direction rules as other trips.
func TestJudgeShort(t *testing.T) {
	cfg := DefaultConfig()
	for _, c := range []struct {
		name         string
		na, nb       uint32
		exA, exB     uint64
		why          string
		simultaneous bool
	}{
		{"verbatim", 9, 9, 77, 77, "", false},
		{"same cells and buckets, other times", 9, 9, 77, 78, "short, not verbatim", false},
		{"no Exact (a record of version 2)", 9, 9, 0, 0, "short, not verbatim", false},
		{"short in long", 120, 9, 0, 77, "short and long", false},
		{"long in short", 9, 120, 77, 0, "short and long", false},
		{"verbatim, simultaneous", 9, 9, 77, 77, "", true},
	} {
		a, b := pair(64, c.na, c.nb)
		a.Exact, b.Exact = c.exA, c.exB
		if c.simultaneous {
			b.StartMs, b.EndMs = a.StartMs, a.EndMs
			a.Origin, b.Origin = OriginNear, OriginAway
		}
		for _, swap := range []bool{false, true} {
			x, y := &a, &b
			if swap {
				x, y = y, x
			}
			orig, cp, _, _, why := Judge(&cfg, x, y)
			if why != c.why {
				t.Errorf("%s (swap %v): %q, want %q", c.name, swap, why, c.why)
			}
			if why == "" && (orig != &a || cp != &b) {
				t.Errorf("%s (swap %v): the copy is %s, want %s", c.name, swap, cp.Vehicle, b.Vehicle)
			}
		}
	}
}

// TestShortFingerprints: a trip of MinShort..MinShingles-1 shingles gets a
// short fingerprint (Exact set, the same for the trace shifted by any
// number of milliseconds), a longer one a fingerprint without Exact, a
// shorter one none.
func TestShortFingerprints(t *testing.T) {
	cfg := DefaultConfig()
	flat := func(int) float64 { return 50 }
	none := func(int) float64 { return 0 }
	for _, c := range []struct {
		km        float64
		fps       int
		short     bool
		shiftSame bool
	}{{0.8, 0, false, false}, {3, 1, true, true}, {15, 1, false, false}} {
		fs := newRoute(7, c.km).drive(8*3600_000, 1000, flat, none)
		fps := Trips(cfg, "v", "2026-12-01", fs)
		if len(fps) != c.fps {
			t.Fatalf("%.1f km: %d fingerprints, want %d", c.km, len(fps), c.fps)
		}
		if c.fps == 0 {
			continue
		}
		fp := fps[0]
		if Short(&cfg, &fp) != c.short || (fp.Exact != 0) != c.short {
			t.Fatalf("%.1f km: N %d, Exact %x, want short %v", c.km, fp.N, fp.Exact, c.short)
		}
		if !c.short {
			continue
		}
		if fp.N < uint32(cfg.MinShort) {
			t.Fatalf("%.1f km: N %d under MinShort", c.km, fp.N)
		}
		moved := Trips(cfg, "w", "2026-12-09", shift(7*86400_000+3_723_457)(fs))
		if len(moved) != 1 || moved[0].Exact != fp.Exact || moved[0].Sig != fp.Sig {
			t.Fatalf("%.1f km: the shifted trace's Exact %x, want %x", c.km, moved[0].Exact, fp.Exact)
		}
		other := Trips(cfg, "w", "2026-12-09", shift(7*86400_000)(newRoute(7, c.km).drive(8*3600_000, 1000, func(int) float64 { return 51 }, none)))
		if len(other) != 1 || other[0].Exact == fp.Exact {
			t.Fatalf("%.1f km: the same road 2 %% faster has the same Exact", c.km)
		}
	}
}

// TestIndexParked: a day's first trip is anchored at the vehicle's parked
// position when the index holds no later trip end: near where it was
// parked, away 5 km off, unknown when parked after the trip started.
func TestIndexParked(t *testing.T) {
	cfg := DefaultConfig()
	fs := newRoute(7, 10).drive(8*3600_000, 1000, func(int) float64 { return 50 }, func(int) float64 { return 0 })
	for _, c := range []struct {
		name   string
		dLatM  float64
		atMs   int64
		origin uint8
	}{
		{"parked at the start", 0, 7 * 3600_000, OriginNear},
		{"parked 5 km north", 5000, 7 * 3600_000, OriginAway},
		{"parked after the start", 0, 9 * 3600_000, OriginUnknown},
	} {
		x, _ := NewIndex(cfg, 30, 100)
		x.Parked("v", "2026-11-30", Fix{TimeMs: c.atMs, Lat: fs[0].Lat + c.dLatM/111320, Lon: fs[0].Lon})
		fps := Trips(cfg, "v", "2026-12-01", fs)
		if len(fps) != 1 {
			t.Fatalf("%d trips", len(fps))
		}
		x.Anchor(&fps[0])
		if fps[0].Origin != c.origin {
			t.Errorf("%s: origin %d, want %d", c.name, fps[0].Origin, c.origin)
		}
	}
	// a trip end held later than the parked fix wins
	x, _ := NewIndex(cfg, 30, 100)
	prev := Trips(cfg, "v", "2026-11-30", newRoute(8, 10).drive(2*3600_000, 1000, func(int) float64 { return 50 }, func(int) float64 { return 0 }))
	x.Add(&prev[0])
	x.Parked("v", "2026-11-30", Fix{TimeMs: prev[0].EndMs - 1, Lat: fs[0].Lat, Lon: fs[0].Lon})
	fps := Trips(cfg, "v", "2026-12-01", fs)
	x.Anchor(&fps[0])
	if want := origin(&cfg, prev[0].To, fps[0].From); want == OriginNear || fps[0].Origin != want {
		t.Errorf("after a held trip: origin %d, want %d (the held trip's end)", fps[0].Origin, want)
	}
}
