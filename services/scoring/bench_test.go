package scoring

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/minecart/minecart/services/scoring/scoringtest"
	"github.com/minecart/minecart/services/telemetry"
)

// BenchmarkDayAdd is the pure score update per event (hash included).
func BenchmarkDayAdd(b *testing.B) {
	r := DefaultRules()
	evs := newTrip("v", morning(), 1).Drive(3600, 60, at(100, 101, lonAccel(-0.5))).Evs
	d := NewDay(morning().Add(-8*time.Hour).UnixMilli(), morning().Add(16*time.Hour).UnixMilli(), 5*3600*1000)
	var buf []byte
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%len(evs) == 0 {
			d = NewDay(d.Start, d.End, d.NightEnd)
		}
		buf = d.Add(&r, &evs[i%len(evs)], buf)
	}
}

// BenchmarkWindowsAdd adds events of 10,000 vehicles through Windows (day
// lookup, window map, score update).
func BenchmarkWindowsAdd(b *testing.B) {
	r := DefaultRules()
	w, err := NewWindows(&r, "Asia/Shanghai", 2*time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	evs := scoringtest.Traffic(10000, 3, 1, morning())
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := w.Add(&evs[i%len(evs)], func(Closed) {}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenWindows1M opens 1,000,000 vehicle-days (10 events each)
// and reports the Go heap and changelog bytes per open window.
func BenchmarkOpenWindows1M(b *testing.B) {
	const n = 1000000
	for range b.N {
		r := DefaultRules()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		w, err := NewWindows(&r, "Asia/Shanghai", 2*time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		ev := telemetry.Event{DeviceID: "", TZ: "Asia/Shanghai", HDOP: 0.8, SpeedKmh: 50}
		t0 := morning().UnixMilli()
		for v := range n {
			ev.VehicleID = fmt.Sprintf("LSVAU2180N2%06d", v) // VIN-like, 17 bytes
			ev.DeviceID = fmt.Sprintf("dev-%08d", v)
			// Each vehicle starts at its own place and odometer reading in
			// the region (until 2026-12-05 they carried on from the previous
			// vehicle's: past 180 degrees of longitude from vehicle 58,600 on,
			// which no real day holds).
			ev.Lat, ev.Lon = 31.2+float64(v%1000)*0.0003, 121.4+float64(v/1000)*0.0003
			ev.OdometerKm = 1000 + float64(v%200000)
			for k := range 10 {
				ev.Seq = uint64(k + 1) // a box numbers its events: the 10 make one run (seg)
				ev.TimeMs = t0 + int64(k)*1000
				ev.Lon += 0.0001
				ev.OdometerKm += 0.01
				if _, err := w.Add(&ev, func(Closed) {}); err != nil {
					b.Fatal(err)
				}
			}
		}
		var enc int
		w.Flush(func(key string, value []byte) { enc += len(key) + len(value) })
		w.buf = nil
		runtime.GC()
		runtime.ReadMemStats(&after)
		heap := float64(after.HeapAlloc-before.HeapAlloc) / n
		b.ReportMetric(heap, "heap-B/window")
		b.ReportMetric(float64(enc)/n, "changelog-B/window")
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heap-MiB/1M")
		fmt.Printf("scoring: %d open vehicle-days: %.0f B heap and %.0f B changelog each, %.0f MiB heap in all\n",
			n, heap, float64(enc)/n, float64(after.HeapAlloc-before.HeapAlloc)/(1<<20))
		fmt.Printf("BYTES scoring_heap_per_open_day %.0f goal 128\n", heap)
		runtime.KeepAlive(w)
	}
}

// BenchmarkRestore replays the changelog of 100,000 open windows into a new
// task (what a failover costs before the first record is processed).
func BenchmarkRestore(b *testing.B) {
	r := DefaultRules()
	w, err := NewWindows(&r, "Asia/Shanghai", 2*time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	for _, ev := range scoringtest.Traffic(100000, 1, 1, morning()) {
		if _, err := w.Add(&ev, nil); err != nil {
			b.Fatal(err)
		}
	}
	type kv struct {
		k string
		v []byte
	}
	var log []kv
	w.Flush(func(key string, value []byte) { log = append(log, kv{key, value}) })
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		w2, err := NewWindows(&r, "Asia/Shanghai", 2*time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range log {
			if err := w2.Restore(e.k, e.v); err != nil {
				b.Fatal(err)
			}
		}
		if w2.Pending() != 0 || w2.Open() != 100000 {
			b.Fatalf("restored %d windows", w2.Open())
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(log)), "ns/record")
}

// BenchmarkClosedDaysKeep keeps 2,000 closed days (one in-order drive of
// 20 minutes each, 17-character VINs) and reports what one costs: its
// serialized state, its changelog record (key + value) and the Go heap
// per kept day; then the cost of one late event (decode, Day.Add,
// re-encode) and of a revision (decode + Result).
func BenchmarkClosedDaysKeep(b *testing.B) {
	r := DefaultRules()
	day := morning().Add(-8 * time.Hour)
	const n = 2000
	days := make([]Day, n)
	var buf []byte
	var late []telemetry.Event
	for v := range days {
		tr := newTrip(fmt.Sprintf("LSVAX%012d", v), morning(), uint64(v+1)).Drive(1200, 50)
		days[v] = NewDay(day.UnixMilli(), day.Add(24*time.Hour).UnixMilli(), 5*3600*1000)
		for i := range tr.Evs[:1100] {
			buf = days[v].Add(&r, &tr.Evs[i], buf)
		}
		late = append(late, tr.Evs[1100:]...)
	}
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	cd := NewClosedDays(&r, 7*24*time.Hour)
	for v := range days {
		vin := fmt.Sprintf("LSVAX%012d", v)
		cd.Keep(&Closed{ID: vin + "/2026-11-25", Vehicle: vin, Date: "2026-11-25", TZ: "Asia/Shanghai", Day: &days[v]})
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	runtime.KeepAlive(days)
	rec := 0
	cd.Flush(func(k string, v []byte) { rec += len(k) + len(v) })
	state, heap := float64(cd.Bytes())/n, float64(m1.HeapAlloc-m0.HeapAlloc)/n
	l := &Late{WindowEnd: day.Add(24 * time.Hour).UnixMilli(), ClosedThrough: day.Add(26 * time.Hour).UnixMilli(), Date: "2026-11-25",
		WindowStart: day.UnixMilli(), NightEnd: 5 * 3600 * 1000, TZ: "Asia/Shanghai"}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		cd.Add(&late[i%len(late)], l, nil)
	}
	perAdd := time.Since(start) / time.Duration(b.N)
	start = time.Now()
	revs := 0
	cd.Revise(l.ClosedThrough, func(*Revision) { revs++ })
	if revs > 0 {
		b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(revs), "ns/revision")
	}
	b.ReportMetric(float64(perAdd.Nanoseconds()), "ns/late-event")
	b.ReportMetric(state, "state-B/day")
	b.ReportMetric(float64(rec)/n, "changelog-B/day")
	b.ReportMetric(heap, "heap-B/day")
}
