package replay

import (
	"maps"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// cluster is the global check over parts partitions, as the runtime runs it:
// each (fingerprint, band) record goes to partition BandKey % parts, and a
// changelog per partition holds what Flush wrote.
type cluster struct {
	parts     []*Postings
	changelog []map[string][]byte
	records   int
}

func newCluster(t testing.TB, parts, retention int) *cluster {
	c := &cluster{}
	for range parts {
		p, err := NewPostings(DefaultConfig(), retention, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		c.parts = append(c.parts, p)
		c.changelog = append(c.changelog, map[string][]byte{})
	}
	return c
}

// offer sends every band record of fp and flushes (one transaction per fingerprint).
func (c *cluster) offer(fp *Fingerprint) []Verdict {
	var out []Verdict
	for b := range Bands {
		out = append(out, c.parts[BandKey(fp, b)%uint64(len(c.parts))].Offer(fp, b)...)
		c.records++
	}
	for i, p := range c.parts {
		p.Flush(func(k string, v []byte) {
			if v == nil {
				delete(c.changelog[i], k)
			} else {
				c.changelog[i][k] = v
			}
		})
	}
	return out
}

// restarted is a cluster restored from c's changelogs.
func (c *cluster) restarted(t testing.TB, retention int) *cluster {
	r := newCluster(t, len(c.parts), retention)
	for i, cl := range c.changelog {
		for _, k := range slices.Sorted(maps.Keys(cl)) {
			if err := r.parts[i].Restore(k, cl[k]); err != nil {
				t.Fatal(err)
			}
			r.changelog[i][k] = cl[k]
		}
	}
	return r
}

func (c *cluster) stateBytes() (bytes, fps int) {
	for _, cl := range c.changelog {
		for k, v := range cl {
			bytes += len(k) + len(v)
			fps++
		}
	}
	return
}

// TestPostingsHonestFleet: a few hundred honest simulated vehicle-days
// through the global check (8 partitions) give no verdict. It reports the
// records per fingerprint and the changelog bytes per fingerprint.
func TestPostingsHonestFleet(t *testing.T) {
	n := envInt("REPLAY_DAYS", 300)
	if raceEnabled {
		n = envInt("REPLAY_DAYS", 100)
	}
	const days = 10
	tr := fleetDays(t, 42, (n+days-1)/days, days)
	c := newCluster(t, 8, 30)
	nfp := 0
	var verdicts []Verdict
	for _, d := range tr {
		for _, fp := range Trips(DefaultConfig(), d.vehicle, d.date, slices.Clone(d.fixes)) {
			nfp++
			verdicts = append(verdicts, c.offer(&fp)...)
		}
	}
	bytes, held := c.stateBytes()
	t.Logf("%d honest vehicle-days, %d fingerprints: %d verdicts; %d band records (%d per fingerprint); changelog %d records, %d bytes (%.0f bytes per fingerprint)",
		len(tr), nfp, len(verdicts), c.records, c.records/max(1, nfp), held, bytes, float64(bytes)/float64(max(1, nfp)))
	if nfp < len(tr)/2 {
		t.Fatalf("only %d fingerprints for %d vehicle-days", nfp, len(tr))
	}
	if len(verdicts) != 0 {
		t.Fatalf("false verdicts on an honest fleet: %+v", verdicts[:min(5, len(verdicts))])
	}
}

// TestPostingsCrossVehicle: another vehicle's replay of a trip (shifted,
// resampled, with GPS noise) gets exactly one verdict per (copy,
// original) pair over all partitions, against the copy only, whether the
// copy's or the original's fingerprint arrives first, and the same after
// a restart from the changelogs between the two.
func TestPostingsCrossVehicle(t *testing.T) {
	cfg := DefaultConfig()
	tr := fleetDays(t, 43, 6, 2)
	const day = 86400_000
	var orig, copies []Fingerprint
	for _, d := range tr {
		fps := Trips(cfg, d.vehicle, d.date, slices.Clone(d.fixes))
		orig = append(orig, fps...)
		if len(fps) == 0 || d.date != tr[0].date {
			continue
		}
		fs := chain(shift(day+4321), every(2), noise(7, 5))(slices.Clone(d.fixes))
		date := time.UnixMilli(fs[0].TimeMs).UTC().Format(time.DateOnly)
		// resampled and noisy: a short trip's copy is not verbatim (rule 5)
		copies = append(copies, slices.DeleteFunc(Trips(cfg, "copycat-"+d.vehicle, date, fs), func(fp Fingerprint) bool { return Short(&cfg, &fp) })...)
	}
	if len(copies) < 3 {
		t.Fatalf("%d copied trips", len(copies))
	}
	ids := func(vs []Verdict) []string {
		var s []string
		for _, v := range vs {
			s = append(s, v.ID())
		}
		slices.Sort(s)
		return s
	}
	run := func(first, second []Fingerprint, restart bool) []string {
		c := newCluster(t, 8, 30)
		var vs []Verdict
		for i := range first {
			vs = append(vs, c.offer(&first[i])...)
		}
		if restart {
			c = c.restarted(t, 30)
		}
		for i := range second {
			vs = append(vs, c.offer(&second[i])...)
		}
		return ids(vs)
	}
	want := run(orig, copies, false)
	copied := map[string]bool{}
	for _, id := range want {
		cp, of, _ := strings.Cut(id, "|")
		if !strings.HasPrefix(cp, "copycat-") || strings.HasPrefix(of, "copycat-") {
			t.Errorf("verdict %s: not against the copy", id)
		}
		copied[cp] = true
	}
	if !slices.Equal(slices.Compact(slices.Clone(want)), want) {
		t.Errorf("duplicate verdicts: %v", want)
	}
	if len(copied) != len(copies) {
		t.Errorf("%d of %d copied trips got a verdict: %v", len(copied), len(copies), want)
	}
	t.Logf("%d copied trips, %d verdicts", len(copies), len(want))
	for _, alt := range []struct {
		name          string
		first, second []Fingerprint
		restart       bool
	}{
		{"copies first", copies, orig, false},
		{"restart between", orig, copies, true},
		{"copies first, restart between", copies, orig, true},
	} {
		if got := run(alt.first, alt.second, alt.restart); !slices.Equal(got, want) {
			t.Errorf("%s: verdicts %v, want %v", alt.name, got, want)
		}
	}
}

// TestPostingsRules: a band offered twice, the same vehicle-day, another
// version, and the retention.
func TestPostingsRules(t *testing.T) {
	cfg := DefaultConfig()
	tr := fleetDays(t, 44, 3, 1)
	var a Fingerprint
	for _, d := range tr {
		if fps := Trips(cfg, d.vehicle, d.date, slices.Clone(d.fixes)); len(fps) > 0 {
			a = fps[0]
			break
		}
	}
	if a.N == 0 {
		t.Fatal("no trip")
	}
	b := a
	b.Vehicle, b.StartMs, b.EndMs = "zz-copy", a.StartMs+3600_000, a.EndMs+3600_000
	p, _ := NewPostings(cfg, 3, 10)
	for band := range Bands {
		if vs := p.Offer(&a, band); len(vs) != 0 {
			t.Fatalf("first fingerprint: %v", vs)
		}
	}
	n := 0
	for band := range Bands {
		vs := p.Offer(&b, band)
		n += len(vs)
		if band == 0 && (len(vs) != 1 || vs[0].Vehicle != "zz-copy" || vs[0].OfVehicle != a.Vehicle || vs[0].ContainPermille != 1000) {
			t.Fatalf("band 0: %+v", vs)
		}
		if vs := p.Offer(&b, band); len(vs) != 0 {
			t.Fatalf("band %d offered twice: %v", band, vs)
		}
	}
	if n != 1 || p.Len() != 2 || p.Entries() != 2*Bands {
		t.Fatalf("%d verdicts, %d fingerprints, %d entries", n, p.Len(), p.Entries())
	}
	same := a
	same.Trip++
	same.StartMs += 7200_000
	q, _ := NewPostings(cfg, 3, 10)
	q.Offer(&a, 0)
	if vs := q.Offer(&same, 0); len(vs) != 0 {
		t.Errorf("same vehicle-day: %v (the task's own index judges it)", vs)
	}
	// A clone: another vehicle with the same trace from the same
	// millisecond. Neither is the copy: no verdict, for either order.
	for _, first := range []bool{true, false} {
		clone := a
		clone.Vehicle = "zz-clone"
		c, _ := NewPostings(cfg, 3, 10)
		x, y := &a, &clone
		if !first {
			x, y = y, x
		}
		for band := range Bands {
			c.Offer(x, band)
			if vs := c.Offer(y, band); len(vs) != 0 {
				t.Fatalf("same start, clone offered second=%v: %v", first, vs)
			}
		}
	}
	other := b
	other.Version = 9
	if vs := p.Offer(&other, 0); len(vs) != 0 {
		t.Errorf("another version: %v", vs)
	}
	// Retention 3 days: a fingerprint dated 3 days later expires a's day.
	d, _ := time.Parse(time.DateOnly, a.Date)
	later := b
	later.Vehicle, later.Date = "zz-later", d.AddDate(0, 0, 3).Format(time.DateOnly)
	later.StartMs += 3 * 86400_000
	tomb := map[string]bool{}
	p.Flush(func(string, []byte) {})
	if vs := p.Offer(&later, 0); len(vs) != 0 {
		t.Errorf("after the retention: %v", vs)
	}
	p.Flush(func(k string, v []byte) { tomb[k] = v == nil })
	if !tomb[Key(&a)] || !tomb[Key(&b)] || tomb[Key(&later)] || p.Len() != 1 {
		t.Errorf("changelog after expiry %v, %d held", tomb, p.Len())
	}
	old := a
	old.Vehicle = "zz-old"
	if vs := p.Offer(&old, 0); len(vs) != 0 || p.Len() != 1 {
		t.Errorf("a day before the retention was judged or kept: %v", vs)
	}
	if err := p.Restore("x/y", []byte{1}); err == nil {
		t.Error("bad key restored")
	}
	if err := p.Restore(Key(&a), []byte{2, 0, 0, 0, 1}); err == nil {
		t.Error("bad version restored")
	}
}

// TestVerdictCodec: round trip and rejects.
func TestVerdictCodec(t *testing.T) {
	v := Verdict{Vehicle: "LSVAU2180N2183294", Date: "2026-11-21", Trip: 3, OfVehicle: "b", OfDate: "2026-11-20", OfTrip: 65535, ContainPermille: 1000}
	b := AppendVerdict(nil, &v)
	got, err := DecodeVerdict(b)
	if err != nil || got != v {
		t.Fatalf("%+v %v", got, err)
	}
	for i := range len(b) {
		if _, err := DecodeVerdict(b[:i]); err == nil {
			t.Errorf("truncated at %d decoded", i)
		}
	}
	for _, bad := range [][]byte{append(slices.Clone(b), 0), append([]byte{2}, b[1:]...)} {
		if _, err := DecodeVerdict(bad); err == nil {
			t.Errorf("%x decoded", bad)
		}
	}
	v.ContainPermille = 1001
	if _, err := DecodeVerdict(AppendVerdict(nil, &v)); err == nil {
		t.Error("containment 1001 decoded")
	}
}

func FuzzDecodeVerdict(f *testing.F) {
	f.Add(AppendVerdict(nil, &Verdict{Vehicle: "a", Date: "2026-11-21", OfVehicle: "b", OfDate: "2026-11-20", ContainPermille: 600}))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := DecodeVerdict(b)
		if err != nil {
			return
		}
		if got := AppendVerdict(nil, &v); string(got) != string(b) {
			t.Fatalf("re-encoded %x, was %x", got, b)
		}
	})
}

// BenchmarkPostings: one partition of the global check (of 8) holding
// 100,000 fingerprints of a fleet (benchFleet, random signatures), each
// through the 4 bands (of 32) that a partition gets on average, offered as
// records decode them (strings per record); a new fingerprint's band
// records are offered (b.N offers). It reports the heap and changelog
// bytes per fingerprint held, and the ns and CPU ns per (fingerprint,
// band) record.
func BenchmarkPostings(b *testing.B) {
	const n, perPart = 100_000, Bands / 8
	fps, probe := benchFleet(n)
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	p, _ := NewPostings(DefaultConfig(), 30, 1<<30)
	for i := range fps {
		for band := range perPart {
			fp := restored(&fps[i])
			if len(p.Offer(&fp, (i+band*8)%Bands)) != 0 {
				b.Fatal("random signature matched")
			}
		}
	}
	cl := 0
	p.Flush(func(k string, v []byte) { cl += len(k) + len(v) })
	runtime.GC()
	runtime.ReadMemStats(&m1)
	b.ResetTimer()
	c0 := cpuNs()
	for i := 0; i < b.N; i++ {
		if len(p.Offer(&probe[i%len(probe)], i%Bands)) != 0 {
			b.Fatal("random signature matched")
		}
	}
	c1 := cpuNs()
	b.StopTimer()
	b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/n, "heap-B/fp")
	b.ReportMetric(float64(cl)/n, "changelog-B/fp")
	b.ReportMetric(float64(c1-c0)/float64(b.N), "cpu-ns/offer")
	runtime.KeepAlive(p)
	runtime.KeepAlive(fps) // else freed before m1: its 216 bytes per fingerprint taken off the figure
}
