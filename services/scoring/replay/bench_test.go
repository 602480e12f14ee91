package replay

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"testing"
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

// BenchmarkIndex: Check and Add against an index of 100,000 fingerprints
// (random signatures: no matches, the honest case); reports the heap held
// per fingerprint.
func BenchmarkIndex(b *testing.B) {
	cfg := DefaultConfig()
	r := rand.New(rand.NewPCG(1, 1))
	mk := func(i int) Fingerprint {
		fp := Fingerprint{Version: 1, Vehicle: "LSVAU2180N2" + strconv.Itoa(100000+i), Date: "2026-11-24", StartMs: int64(i), N: 80}
		for k := range fp.Sig {
			fp.Sig[k] = uint16(r.Uint32())
		}
		return fp
	}
	const n = 100_000
	fps := make([]Fingerprint, n)
	for i := range fps {
		fps[i] = mk(i)
	}
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	x, _ := NewIndex(cfg, 30, 1<<30)
	for i := range fps {
		x.Add(&fps[i])
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	probe := slices.Clone(fps[:1000])
	for i := range probe {
		probe[i] = mk(n + i)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if len(x.Check(&probe[i%len(probe)])) != 0 {
			b.Fatal("random signature matched")
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/n, "heap-B/fp")
	b.ReportMetric(float64(len(AppendBinary(nil, &fps[0]))), "record-B/fp")
	runtime.KeepAlive(x)
}
