package replay

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"unsafe"
)

// fpGen draws fingerprints that collide a lot: few vehicles, dates and
// trips (keys repeat: Add replaces, Remove finds), signatures either from a
// 3-value alphabet (many bands shared: candidates that Judge accepts or
// refuses) or random (no band shared, but chains merged by the head arrays'
// low bits), short trips with a few Exact values, start times close enough
// for the simultaneous and concurrent rules.
type fpGen struct {
	r     *rand.Rand
	dates []string
	trips int
}

func newFPGen(seed uint64) *fpGen {
	return &fpGen{r: rand.New(rand.NewPCG(seed, 7)), trips: []int{4, 64}[seed%2], dates: []string{"2026-11-20", "2026-11-21", "2026-11-22", "2026-11-23", "2026-11-24", "2026-11-25"}}
}

func (g *fpGen) vehicle() string { return "v" + strconv.Itoa(g.r.IntN(8)) }

func (g *fpGen) date(upTo int) string { return g.dates[g.r.IntN(min(upTo, len(g.dates)))] }

func (g *fpGen) fp(upTo int) Fingerprint {
	r := g.r
	fp := Fingerprint{Version: 1, Vehicle: g.vehicle(), Date: g.date(upTo), Trip: uint16(r.IntN(g.trips)),
		StartMs: int64(r.IntN(8)) * 150_000, N: uint32(4 + r.IntN(80)), Origin: uint8(r.IntN(3)), first: r.IntN(3) == 0,
		From: [2]int32{int32(r.IntN(5)), int32(r.IntN(5))}, To: [2]int32{int32(r.IntN(5)), int32(r.IntN(5))}}
	if r.IntN(8) == 0 {
		fp.Version = 2
	}
	fp.EndMs = fp.StartMs + int64(r.IntN(6))*200_000
	if int(fp.N) < DefaultConfig().MinShingles && r.IntN(2) == 0 {
		fp.Exact = uint64(1 + r.IntN(2))
	}
	base := uint16(r.IntN(4)) // a family of similar signatures
	for k := range fp.Sig {
		switch {
		case base == 3:
			fp.Sig[k] = uint16(r.Uint32())
		case r.IntN(4) == 0:
			fp.Sig[k] = uint16(r.IntN(3))
		default:
			fp.Sig[k] = base + uint16(k)
		}
	}
	return fp
}

// TestIndexDifferential: random operations on the compact Index and on the
// map-based reference (ref_test.go) give the same results: Check's
// matches in the same order, Add, Len, Anchor, SetEnd, EndOf, Expire.
func TestIndexDifferential(t *testing.T) {
	cfg := DefaultConfig()
	matches, grown := 0, 0
	for seed := range uint64(40) {
		g := newFPGen(seed)
		budget := 3 + int(seed%5)*40
		x, err := NewIndex(cfg, 3, budget)
		if err != nil {
			t.Fatal(err)
		}
		ref, _ := newRefIndex(cfg, 3, budget)
		if seed%3 == 0 {
			x.nh, x.heads = 1, make([]uint64, Bands) // one chain per band until it grows: every chain merged
		}
		days := 1
		for op := range 1500 {
			where := fmt.Sprintf("seed %d op %d", seed, op)
			switch n := g.r.IntN(100); {
			case n < 40:
				fp := g.fp(days)
				fp2 := fp
				x.Anchor(&fp)
				ref.Anchor(&fp2)
				if !reflect.DeepEqual(fp, fp2) {
					t.Fatalf("%s: Anchor %+v, reference %+v", where, fp, fp2)
				}
				got, want := x.Check(&fp), ref.Check(&fp2)
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("%s: Check\n%+v\nreference\n%+v", where, got, want)
				}
				matches += len(got)
				if a, b := x.Add(&fp), ref.Add(&fp2); a != b {
					t.Fatalf("%s: Add %v, reference %v", where, a, b)
				}
			case n < 50:
				v, d, trip := g.vehicle(), g.date(days), uint16(g.r.IntN(g.trips))
				x.Remove(v, d, trip)
				ref.Remove(v, d, trip)
			case n < 60:
				v := g.vehicle()
				e := End{Date: g.date(days), TimeMs: int64(g.r.IntN(8)) * 150_000, Cell: [2]int32{int32(g.r.IntN(3)), 0}}
				if a, b := x.SetEnd(v, e), ref.SetEnd(v, e); a != b {
					t.Fatalf("%s: SetEnd %v, reference %v", where, a, b)
				}
			case n < 62:
				v, d := g.vehicle(), g.date(days)
				f := Fix{TimeMs: int64(g.r.IntN(8)) * 150_000, Lat: 48 + g.r.Float64()/100, Lon: 2}
				x.Parked(v, d, f)
				ref.Parked(v, d, f)
			case n < 66:
				if days < len(g.dates) {
					days++
				}
				keep := g.dates[max(0, days-2-g.r.IntN(2))]
				gone, ends := x.Expire(keep)
				rgone, rends := ref.Expire(keep)
				if !slices.Equal(gone, rgone) || !slices.Equal(ends, rends) {
					t.Fatalf("%s: Expire(%s) %v %v, reference %v %v", where, keep, gone, ends, rgone, rends)
				}
			default:
				fp := g.fp(days)
				if !reflect.DeepEqual(x.Check(&fp), ref.Check(&fp)) {
					t.Fatalf("%s: Check differs", where)
				}
			}
			if x.Len() != ref.Len() {
				t.Fatalf("%s: Len %d, reference %d", where, x.Len(), ref.Len())
			}
			for i := range 8 {
				v := "v" + strconv.Itoa(i)
				a, aok := x.EndOf(v)
				b, bok := ref.EndOf(v)
				if a != b || aok != bok {
					t.Fatalf("%s: EndOf(%s) %+v %v, reference %+v %v", where, v, a, aok, b, bok)
				}
			}
		}
		if seed%3 != 0 {
			grown = max(grown, x.nh)
		}
	}
	if grown <= minHeads {
		t.Error("the head arrays never grew")
	}
	if matches < 1000 {
		t.Errorf("%d matches in all: the generator does not exercise Judge", matches)
	}
	t.Logf("%d matches compared", matches)
}

// TestPostingsDifferential: random offers to the compact Postings and to
// the map-based reference give the same verdicts, the same changelog
// records in the same order, the same Len and Entries, and so does a
// restore from that changelog.
func TestPostingsDifferential(t *testing.T) {
	cfg := DefaultConfig()
	verdicts, grown := 0, 0
	for seed := range uint64(30) {
		g := newFPGen(100 + seed)
		budget := 3 + int(seed%4)*150
		p, err := NewPostings(cfg, 3, budget)
		if err != nil {
			t.Fatal(err)
		}
		ref, _ := newRefPostings(cfg, 3, budget)
		if seed%3 == 0 {
			p.nh, p.heads = 1, make([]uint32, Bands)
		}
		changelog := map[string][]byte{}
		offered := map[string]Fingerprint{}
		days := 1
		flush := func(where string) {
			var got, want []string
			p.Flush(func(k string, v []byte) {
				got = append(got, fmt.Sprintf("%s=%x", k, v))
				if v == nil {
					delete(changelog, k)
				} else {
					changelog[k] = v
				}
			})
			ref.Flush(func(k string, v []byte) { want = append(want, fmt.Sprintf("%s=%x", k, v)) })
			if !slices.Equal(got, want) {
				t.Fatalf("%s: Flush\n%v\nreference\n%v", where, got, want)
			}
		}
		for op := range 3000 {
			where := fmt.Sprintf("seed %d op %d", seed, op)
			if g.r.IntN(300) == 0 && days < len(g.dates) {
				days++
			}
			fp := g.fp(days)
			if was, ok := offered[Key(&fp)]; ok {
				fp = was // one fingerprint per trip (TestPostingsRescored: another one)
			}
			offered[Key(&fp)] = fp
			band := g.r.IntN(Bands)
			if g.r.IntN(4) == 0 {
				band = g.r.IntN(3) // the bands the alphabet shares most
			}
			got, want := p.Offer(&fp, band), ref.Offer(&fp, band)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: Offer(%s, %d)\n%+v\nreference\n%+v", where, Key(&fp), band, got, want)
			}
			verdicts += len(got)
			if p.Len() != ref.Len() || p.Entries() != ref.Entries() {
				t.Fatalf("%s: Len %d Entries %d, reference %d %d", where, p.Len(), p.Entries(), ref.Len(), ref.Entries())
			}
			if g.r.IntN(10) == 0 {
				flush(where)
			}
			if g.r.IntN(50) == 0 { // a record restored again over the one held, or its tombstone
				flush(where)
				keys := slices.Sorted(mapKeys(changelog))
				if len(keys) > 0 {
					k := keys[g.r.IntN(len(keys))]
					v := changelog[k]
					if g.r.IntN(3) == 0 {
						v = nil
					}
					if err, rerr := p.Restore(k, v), ref.Restore(k, v); err != nil || rerr != nil {
						t.Fatal(err, rerr)
					}
					flush(where) // nothing: Restore marks nothing changed
				}
			}
			if op%500 == 499 { // a restart: both restored from the changelog
				flush(where)
				p, _ = NewPostings(cfg, 3, budget)
				if seed%3 == 0 {
					p.nh, p.heads = 1, make([]uint32, Bands)
				}
				ref, _ = newRefPostings(cfg, 3, budget)
				for _, k := range slices.Sorted(mapKeys(changelog)) {
					if err := p.Restore(k, changelog[k]); err != nil {
						t.Fatal(err)
					}
					if err := ref.Restore(k, changelog[k]); err != nil {
						t.Fatal(err)
					}
				}
				grown = max(grown, p.nh)
				if p.Len() != ref.Len() || p.Entries() != ref.Entries() {
					t.Fatalf("%s: restored Len %d Entries %d, reference %d %d", where, p.Len(), p.Entries(), ref.Len(), ref.Entries())
				}
			}
		}
	}
	if grown <= 2 {
		t.Error("the head arrays never grew")
	}
	if verdicts < 1000 {
		t.Errorf("%d verdicts in all: the generator does not exercise Judge", verdicts)
	}
	t.Logf("%d verdicts compared", verdicts)
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestKeyTable: random inserts and deletes against a map, in tables small
// enough that runs wrap around the end (the backward shift's two cases).
func TestKeyTable(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	keys := map[uint32]key{} // slot id -> its key
	held := map[key]uint32{}
	kt := keyTable{keyOf: func(id uint32) key { return keys[id] }}
	next := uint32(1)
	for op := range 20000 {
		k := key{uint32(1 + r.IntN(6)), uint32(1 + r.IntN(6)), uint16(r.IntN(6))}
		switch id := held[k]; {
		case id == 0 && r.IntN(2) == 0:
			keys[next] = k
			held[k] = next
			kt.insert(next)
			next++
		case id != 0 && r.IntN(2) == 0:
			kt.delete(k, id)
			delete(held, k)
			delete(keys, id)
		}
		if got := kt.find(k); got != held[k] || kt.n != len(held) {
			t.Fatalf("op %d: find %v = %d (n %d), want %d (n %d)", op, k, got, kt.n, held[k], len(held))
		}
		if op%1000 == 0 {
			for k, id := range held {
				if kt.find(k) != id {
					t.Fatalf("op %d: %v lost", op, k)
				}
			}
		}
	}
}

// TestPostingsRescored: a trip offered again with another fingerprint (a
// re-scored day) through a band its held fingerprint was not offered
// through. The entry is the held fingerprint's, so expiring it leaves no
// entry behind (the map-based reference left one, and a later offer
// through that band key dereferenced it: a panic), and the live postings
// answer as the ones restored from their changelog.
func TestPostingsRescored(t *testing.T) {
	cfg := DefaultConfig()
	a := sampleFP()
	a.Vehicle, a.Date, a.N = "a", "2026-11-20", 80
	b := a
	for k := range b.Sig {
		b.Sig[k] ^= 0x5555 // the re-scored trip: no band in common with a
	}
	probe := b // another vehicle's copy of b, two days later
	probe.Vehicle, probe.Date, probe.StartMs, probe.EndMs = "z", "2026-11-22", b.StartMs+2*86_400_000, b.EndMs+2*86_400_000
	live := func(p interface {
		Offer(*Fingerprint, int) []Verdict
	}) (verdicts [][]Verdict, panicked any) {
		defer func() { panicked = recover() }()
		verdicts = append(verdicts, p.Offer(&a, 3), p.Offer(&b, 5))
		c := probe
		c.Date = "2026-11-23" // today moves on: 2026-11-20 expires (retention 3)
		verdicts = append(verdicts, p.Offer(&c, 9))
		verdicts = append(verdicts, p.Offer(&probe, 5), p.Offer(&probe, 3))
		return verdicts, nil
	}
	ref, _ := newRefPostings(cfg, 3, 100)
	if _, panicked := live(ref); panicked == nil {
		t.Log("the reference did not panic")
	} else {
		t.Logf("the map-based reference panics: %v", panicked)
	}
	p, _ := NewPostings(cfg, 3, 100)
	got, panicked := live(p)
	if panicked != nil {
		t.Fatalf("panic: %v", panicked)
	}
	if p.Entries() != 3 || p.Len() != 2 { // c through band 9, the probe through 5 and 3
		t.Errorf("%d entries, %d held after expiry, want 3, 2", p.Entries(), p.Len())
	}
	for i, v := range got {
		if len(v) != 0 {
			t.Errorf("offer %d: verdicts %v (a's fingerprint held: the probe copies b, not a)", i, v)
		}
	}
	// Before expiry: the live band set and entries are the restored ones.
	p, _ = NewPostings(cfg, 3, 100)
	p.Offer(&a, 3)
	p.Offer(&b, 5)
	cl := map[string][]byte{}
	p.Flush(func(k string, v []byte) { cl[k] = v })
	r, _ := NewPostings(cfg, 3, 100)
	for k, v := range cl {
		if err := r.Restore(k, v); err != nil {
			t.Fatal(err)
		}
	}
	for _, x := range []*Postings{p, r} {
		c := a
		c.Vehicle, c.StartMs, c.EndMs = "c", a.StartMs+86_400_000, a.EndMs+86_400_000
		for k := range 5 * Rows {
			c.Sig[k] ^= 0x1111 // band 5 the lowest shared with a
		}
		if v := x.Offer(&c, 5); len(v) != 1 || v[0].Vehicle != "c" || v[0].OfVehicle != "a" {
			t.Errorf("a copy of a through band 5 (held through the re-scored offer): %v", v)
		}
	}
}

// TestHostileBounded: a hostile fleet whose trips all share one band (one
// chain per band value, as long as the index) and then every band. The
// index and the postings hold at most budget fingerprints per day for
// Retention days, their heap (by their structures' sizes) stays under
// 400 and 300 bytes per fingerprint held plus one chunk of slots and the
// per-vehicle tables, and they still find the copies.
func TestHostileBounded(t *testing.T) {
	cfg := DefaultConfig()
	const budget, retention, vehicles = 1024, 3, 64
	r := rand.New(rand.NewPCG(9, 9))
	mk := func(day, i int, all bool) Fingerprint {
		fp := Fingerprint{Version: 1, Vehicle: "h" + strconv.Itoa(i%vehicles), Date: dateOf(1 + day), Trip: uint16(i / vehicles),
			StartMs: int64(day)*86_400_000 + int64(i)*1000, N: 80}
		fp.EndMs = fp.StartMs + 600_000
		for k := range fp.Sig {
			fp.Sig[k] = uint16(r.Uint32())
			if all || k/Rows == 7 {
				fp.Sig[k] = uint16(k) // band 7 (all: every band) shared by every trip
			}
		}
		return fp
	}
	x, _ := NewIndex(cfg, retention, budget)
	p, _ := NewPostings(cfg, retention, budget/4)
	perVehicle := int(unsafe.Sizeof(vend{})) + 48 + 16 + 4 + 4 + 8 // ends, interner map, name, refs, free id, name bytes
	for day := range 8 {
		all := day >= 4
		if day > 0 {
			x.Expire(dateOf(1 + day - (retention - 1)))
		}
		for i := range 2 * budget {
			fp := mk(day, i, all)
			if kept := x.Add(&fp); kept != (i < budget) {
				t.Fatalf("day %d trip %d: kept %v over a budget of %d", day, i, kept, budget)
			}
			if i < budget/2 {
				p.Offer(&fp, 7)
				if i%4 == 0 {
					p.Offer(&fp, 20)
				}
			}
		}
		if x.Len() > budget*retention || p.Len() > budget/4*retention {
			t.Fatalf("day %d: %d and %d held, over the budget", day, x.Len(), p.Len())
		}
		slack := (1<<chunkBits)*int(unsafe.Sizeof(islot{})) + vehicles*perVehicle
		if b := x.bytes(); b > 400*x.Len()+slack {
			t.Errorf("day %d: index %d bytes for %d fingerprints (%d per fingerprint)", day, b, x.Len(), b/x.Len())
		}
		if b := p.bytes(); b > 300*p.Len()+(1<<chunkBits)*int(unsafe.Sizeof(pslot{}))+vehicles*perVehicle {
			t.Errorf("day %d: postings %d bytes for %d fingerprints (%d per fingerprint)", day, b, p.Len(), b/p.Len())
		}
		t.Logf("day %d: index %d held, %d B each; postings %d held, %d entries, %d B each", day, x.Len(), x.bytes()/x.Len(),
			p.Len(), p.Entries(), p.bytes()/p.Len())
	}
	// The copies are found: a copy of the last day's first trip by another vehicle.
	c := mk(7, 0, true)
	c.Vehicle, c.Date, c.StartMs, c.EndMs = "copy", dateOf(9), c.StartMs+86_400_000, c.EndMs+86_400_000
	if ms := x.Check(&c); len(ms) != x.Len() {
		t.Errorf("%d matches of %d held", len(ms), x.Len())
	}
}
