package replay

import (
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkFingerprintDay: one honest simulated vehicle-day (loadtest/fleet)
// through the Builder, fix by fix, and its fingerprints; reports fixes per
// day and the time per fix.
func BenchmarkFingerprintDay(b *testing.B) {
	cfg := DefaultConfig()
	days := fleetDays(b, 7, 20, 2)
	var fixes int
	for _, d := range days {
		fixes += len(d.fixes)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d := &days[i%len(days)]
		bl := NewBuilder(d.fixes[0].TimeMs)
		for _, f := range d.fixes {
			bl.Add(&cfg, f)
		}
		_ = bl.Fingerprints(&cfg, d.vehicle, d.date)
	}
	b.ReportMetric(float64(fixes)/float64(len(days)), "fixes/day")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(float64(fixes)/float64(len(days))), "ns/fix")
}

// benchFleet is n fingerprints with random signatures (no two match) of a
// fleet as an index holds it: 2.67 trips per vehicle-day over 30 days,
// n / 80 vehicles. The strings are the caller's to clone (a restored index
// decodes its own per record).
func benchFleet(n int) (fps []Fingerprint, probe []Fingerprint) {
	r := rand.New(rand.NewPCG(1, 1))
	vehicles := max(1, n/80)
	mk := func(i int) Fingerprint {
		v, day, trip := i%vehicles, i/vehicles%30, i/vehicles/30
		fp := Fingerprint{Version: 1, Vehicle: "LSVAU2180N2" + strconv.Itoa(100000+v), Date: dateOf(1 + day),
			Trip: uint16(trip), StartMs: int64(i), EndMs: int64(i) + 1_200_000, N: 80}
		for k := range fp.Sig {
			fp.Sig[k] = uint16(r.Uint32())
		}
		return fp
	}
	fps = make([]Fingerprint, n)
	for i := range fps {
		fps[i] = mk(i)
	}
	probe = make([]Fingerprint, 1000)
	for i := range probe {
		probe[i] = mk(i)
		probe[i].Vehicle += "x" // another vehicle: no self match, and no match
	}
	return fps, probe
}

// restored is fp with its own strings, as Decode returns it.
func restored(fp *Fingerprint) Fingerprint {
	c := *fp
	c.Vehicle, c.Date = strings.Clone(fp.Vehicle), strings.Clone(fp.Date)
	return c
}

// cpuNs is the process's user + system CPU time.
func cpuNs() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkIndex: Check against an index of 100,000 fingerprints of a
// fleet (benchFleet: 1,250 vehicles x 30 days x 2.67 trips; random
// signatures: no matches, the honest case), added as a restart restores
// them (strings per record); reports the heap held per fingerprint, the
// CPU per Check, the time to add them and the CPU of a full GC with the
// index live.
func BenchmarkIndex(b *testing.B) {
	const n = 100_000
	fps, probe := benchFleet(n)
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	t0 := time.Now()
	x, _ := NewIndex(DefaultConfig(), 30, 1<<30)
	for i := range fps {
		fp := restored(&fps[i])
		x.Add(&fp)
	}
	add := time.Since(t0)
	runtime.GC()
	runtime.ReadMemStats(&m1)
	record := len(AppendBinary(nil, &fps[0]))
	fps = nil // the GC below marks the index (and the probes) only
	runtime.GC()
	g0 := cpuNs()
	for range 5 {
		runtime.GC() // marks what the index holds: its pointers are the GC's work
	}
	gc := cpuNs() - g0
	b.ResetTimer()
	c0 := cpuNs()
	for i := 0; i < b.N; i++ {
		if len(x.Check(&probe[i%len(probe)])) != 0 {
			b.Fatal("random signature matched")
		}
	}
	c1 := cpuNs()
	b.StopTimer()
	b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/n, "heap-B/fp")
	b.ReportMetric(float64(record), "record-B/fp")
	b.ReportMetric(float64(c1-c0)/float64(b.N), "cpu-ns/check")
	b.ReportMetric(float64(add.Nanoseconds())/n, "ns/add")
	b.ReportMetric(float64(gc)/5/1e6, "gc-cpu-ms")
	runtime.KeepAlive(x)
}

// BenchmarkIndexExpire: the day's expiry of an index of 100,000
// fingerprints of 30 days (benchFleet): each op drops the oldest day
// (1/30) and adds a new one; reports the time per fingerprint expired and
// per fingerprint added.
func BenchmarkIndexExpire(b *testing.B) {
	const n = 100_000
	fps, _ := benchFleet(n)
	x, _ := NewIndex(DefaultConfig(), 30, 1<<30)
	for i := range fps {
		x.Add(&fps[i])
	}
	perDay := n / 30
	var expire, add time.Duration
	dropped := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		day := i % 30 // the oldest held: dates 1 + day, then 31 + day, ...
		t0 := time.Now()
		gone, _ := x.Expire(dateOf(2 + day))
		expire += time.Since(t0)
		dropped += len(gone)
		t0 = time.Now()
		for j := range perDay {
			fp := fps[(i*perDay+j)%n]
			fp.Date, fp.Trip = "2027-01-"+strconv.Itoa(10+i), uint16(j) // a new day, after every date held
			x.Add(&fp)
		}
		add += time.Since(t0)
	}
	b.StopTimer()
	b.ReportMetric(float64(expire.Nanoseconds())/float64(max(1, dropped)), "ns/expired")
	b.ReportMetric(float64(add.Nanoseconds())/float64(b.N*perDay), "ns/added")
	b.ReportMetric(float64(dropped)/float64(b.N), "expired/op")
}
