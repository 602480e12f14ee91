package fleet

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"math"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"github.com/minecart/minecart/services/telemetry"
)

var monday = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)

func mustNew(t testing.TB, cfg Config) *Sim {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// hashEvent writes every field of e, exactly, into h.
func hashEvent(h hash.Hash, e *telemetry.Event) {
	var b []byte
	str := func(s string) { b = binary.AppendUvarint(b, uint64(len(s))); b = append(b, s...) }
	f := func(x float64) { b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x)) }
	str(e.EventID)
	str(e.DeviceID)
	str(e.VehicleID)
	b = binary.LittleEndian.AppendUint64(b, e.Seq)
	b = binary.LittleEndian.AppendUint64(b, uint64(e.TimeMs))
	str(e.TZ)
	for _, x := range []float64{e.Lat, e.Lon, e.HDOP, e.SpeedKmh, e.HeadingDeg, e.AccelLonMS2, e.AccelLatMS2,
		e.SpeedLimitKmh, e.OdometerKm, e.FuelPct, e.BatteryV, e.CoolantC} {
		f(x)
	}
	if e.EngineOn {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(e.FaultCodes)))
	for _, c := range e.FaultCodes {
		str(c)
	}
	h.Write(b)
}

// streamHash hashes the whole stream in order, and each vehicle's events.
func streamHash(t testing.TB, s *Sim) (whole [32]byte, perVehicle [][32]byte, events int) {
	t.Helper()
	all := sha256.New()
	hs := make([]hash.Hash, len(s.Vehicles()))
	for i := range hs {
		hs[i] = sha256.New()
	}
	idx := map[string]int{}
	for i, v := range s.Vehicles() {
		idx[v.DeviceID] = i
	}
	for c := range s.Chunks() {
		for k := range c.Events {
			hashEvent(all, &c.Events[k])
			hashEvent(hs[idx[c.Events[k].DeviceID]], &c.Events[k])
		}
		events += len(c.Events)
	}
	copy(whole[:], all.Sum(nil))
	for _, h := range hs {
		perVehicle = append(perVehicle, [32]byte(h.Sum(nil)))
	}
	return whole, perVehicle, events
}

func TestDeterministic(t *testing.T) {
	cfg := Config{Seed: 42, Vehicles: 16, Days: 2, Start: monday}
	if raceEnabled {
		cfg.Vehicles, cfg.Days = 8, 1
	}
	a := mustNew(t, cfg)
	wa, va, n := streamHash(t, a)
	if n < cfg.Vehicles*cfg.Days*1000 {
		t.Fatalf("only %d events for %d vehicle-days", n, cfg.Vehicles*cfg.Days)
	}
	// same config, run again, and on several workers: identical bytes
	wb, _, _ := streamHash(t, mustNew(t, cfg))
	cfgW := cfg
	cfgW.Workers = 3
	wc, _, _ := streamHash(t, mustNew(t, cfgW))
	if wa != wb || wa != wc {
		t.Fatalf("same seed gave different streams: %x %x %x", wa[:6], wb[:6], wc[:6])
	}
	// other windows and chunk sizes regroup the same per-vehicle events
	cfgG := cfg
	cfgG.Window, cfgG.ChunkVehicles, cfgG.Workers = 5*time.Minute, 7, 2
	_, vg, _ := streamHash(t, mustNew(t, cfgG))
	if !slices.Equal(va, vg) {
		t.Fatal("per-vehicle events changed with Window/ChunkVehicles")
	}
	// Vehicle(i) alone gives the same events as the stream
	for _, i := range []int{0, 5, cfg.Vehicles - 1} {
		ev, _ := a.Vehicle(i)
		h := sha256.New()
		for k := range ev {
			hashEvent(h, &ev[k])
		}
		if [32]byte(h.Sum(nil)) != va[i] {
			t.Fatalf("Vehicle(%d) differs from its events in Chunks", i)
		}
	}
	// another seed: another fleet
	cfgS := cfg
	cfgS.Seed = 43
	ws, _, _ := streamHash(t, mustNew(t, cfgS))
	if ws == wa {
		t.Fatal("seeds 42 and 43 gave the same stream")
	}
	if a.Vehicles()[0].VehicleID == mustNew(t, cfgS).Vehicles()[0].VehicleID {
		t.Fatal("seeds 42 and 43 gave the same VIN")
	}
}

func TestDevices(t *testing.T) {
	s := mustNew(t, Config{Seed: 7, Vehicles: 500, Days: 1, Start: monday})
	devs := s.Devices()
	if !slices.EqualFunc(devs, mustNew(t, Config{Seed: 7, Vehicles: 500, Days: 1, Start: monday}).Devices(),
		func(a, b Device) bool {
			return a.DeviceID == b.DeviceID && a.VehicleID == b.VehicleID && string(a.Secret) == string(b.Secret)
		}) {
		t.Fatal("provisioning list not deterministic")
	}
	seen := map[string]bool{}
	for i, d := range devs {
		if !vinCheckOK(d.VehicleID) {
			t.Errorf("VIN %q: bad check digit", d.VehicleID)
		}
		if len(d.Secret) != 32 || len(d.SecretHex()) != 64 {
			t.Errorf("secret of %s: %d bytes", d.DeviceID, len(d.Secret))
		}
		if seen[d.DeviceID] || seen[d.VehicleID] {
			t.Errorf("duplicate id at %d: %s %s", i, d.DeviceID, d.VehicleID)
		}
		seen[d.DeviceID], seen[d.VehicleID] = true, true
		if v := s.Vehicles()[i]; v.DeviceID != d.DeviceID || v.VehicleID != d.VehicleID {
			t.Errorf("device %d not bound to its vehicle", i)
		}
	}
	if !vinCheckOK("1M8GDM9AXKP042788") { // the textbook example
		t.Error("check digit rule wrong")
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{Vehicles: 1, Days: 1, Start: monday}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Config){
		"vehicles":  func(c *Config) { c.Vehicles = 0 },
		"days":      func(c *Config) { c.Days = 0 },
		"start":     func(c *Config) { c.Start = time.Time{} },
		"tz":        func(c *Config) { c.TZ = "Mars/Olympus" },
		"mix":       func(c *Config) { c.Mix = Mix{Calm: -1, Average: 2} },
		"interval":  func(c *Config) { c.SampleInterval = 300 * time.Millisecond },
		"interval2": func(c *Config) { c.SampleInterval = 1500 * time.Millisecond },
		"window":    func(c *Config) { c.Window = 7 * time.Minute },
	} {
		c := good
		mut(&c)
		if c.Validate() == nil {
			t.Errorf("%s: invalid config accepted", name)
		}
		if _, err := New(c); err == nil {
			t.Errorf("%s: New accepted invalid config", name)
		}
	}
}

// fleetRun collects a small fleet's events per vehicle and its day truths.
type fleetRun struct {
	s      *Sim
	events map[string][]telemetry.Event // by device
	days   []DayTruth
}

func run(t testing.TB, cfg Config) *fleetRun {
	t.Helper()
	r := &fleetRun{s: mustNew(t, cfg), events: map[string][]telemetry.Event{}}
	for c := range r.s.Chunks() {
		for _, e := range c.Events {
			r.events[e.DeviceID] = append(r.events[e.DeviceID], e)
		}
		r.days = append(r.days, c.Days...)
	}
	return r
}

var (
	shared    *fleetRun
	sharedCfg = Config{Seed: 2026, Vehicles: 80, Days: 2, Start: monday,
		Mix: Mix{Calm: 1, Average: 1, Aggressive: 1, Fraudulent: 1}}
)

// sharedRun simulates the fleet the property tests share: 80 vehicles x 2
// days, an equal mix of profiles (40 vehicles under -race, still every
// profile and fraud kind driving).
func sharedRun(t *testing.T) *fleetRun {
	if shared == nil {
		if raceEnabled {
			sharedCfg.Vehicles = 40
		}
		shared = run(t, sharedCfg)
	}
	return shared
}

func TestPhysicalSanity(t *testing.T) {
	r := sharedRun(t)
	byDevice := map[string]Vehicle{}
	for _, v := range r.s.Vehicles() {
		byDevice[v.DeviceID] = v
	}
	ids := map[string]bool{}
	for dev, evs := range r.events {
		v := byDevice[dev]
		maxKmh := 185.0
		if v.Fraud == FraudInflated {
			maxKmh *= 2
		}
		for k, e := range evs {
			if e.VehicleID != v.VehicleID || e.TZ != "Asia/Shanghai" {
				t.Fatalf("%s: event bound to %s/%s", dev, e.VehicleID, e.TZ)
			}
			if ids[e.EventID] {
				t.Fatalf("duplicate EventID %s", e.EventID)
			}
			ids[e.EventID] = true
			if e.Seq != uint64(k+1) {
				t.Fatalf("%s: seq %d at position %d", dev, e.Seq, k)
			}
			if e.SpeedKmh < 0 || e.SpeedKmh > maxKmh || (!e.EngineOn && e.SpeedKmh != 0) {
				t.Fatalf("%s seq %d: speed %.1f engine %v", dev, e.Seq, e.SpeedKmh, e.EngineOn)
			}
			if math.Abs(e.Lat-Shanghai.Lat) > 2 || math.Abs(e.Lon-Shanghai.Lon) > 2 {
				t.Fatalf("%s seq %d: position %.5f,%.5f far from Shanghai", dev, e.Seq, e.Lat, e.Lon)
			}
			if e.HeadingDeg < 0 || e.HeadingDeg >= 360 || e.HDOP <= 0 {
				t.Fatalf("%s seq %d: heading %.1f hdop %.1f", dev, e.Seq, e.HeadingDeg, e.HDOP)
			}
			if math.Abs(e.AccelLonMS2) > 10 || math.Abs(e.AccelLatMS2) > 10 {
				t.Fatalf("%s seq %d: accel %.2f/%.2f", dev, e.Seq, e.AccelLonMS2, e.AccelLatMS2)
			}
			if e.FuelPct < 0 || e.FuelPct > 100 || e.BatteryV < 11.5 || e.BatteryV > 15 || e.CoolantC < -30 || e.CoolantC > 110 {
				t.Fatalf("%s seq %d: fuel %.1f battery %.2f coolant %.1f", dev, e.Seq, e.FuelPct, e.BatteryV, e.CoolantC)
			}
			if k == 0 {
				continue
			}
			p := evs[k-1]
			if e.TimeMs <= p.TimeMs {
				t.Fatalf("%s seq %d: time %d after %d", dev, e.Seq, e.TimeMs, p.TimeMs)
			}
			if e.OdometerKm < p.OdometerKm && v.Fraud != FraudRollback {
				t.Fatalf("%s seq %d: odometer %.3f after %.3f", dev, e.Seq, e.OdometerKm, p.OdometerKm)
			}
		}
	}
	// honest days: odometer = distance driven; GPS track close to it
	for _, d := range r.days {
		if d.Fraud != FraudNone || d.DistanceKm < 1 {
			continue
		}
		if math.Abs(d.OdometerKm-d.DistanceKm) > 0.01 {
			t.Errorf("%s day %d: odometer %.3f km, driven %.3f km", d.VehicleID, d.Day, d.OdometerKm, d.DistanceKm)
		}
		if d.GPSKm < 0.97*d.DistanceKm || d.GPSKm > 1.08*d.DistanceKm+0.3 {
			t.Errorf("%s day %d: GPS %.2f km, driven %.2f km", d.VehicleID, d.Day, d.GPSKm, d.DistanceKm)
		}
	}
}

func TestDayTruth(t *testing.T) {
	r := sharedRun(t)
	if len(r.days) != sharedCfg.Vehicles*sharedCfg.Days {
		t.Fatalf("%d day truths, want %d", len(r.days), sharedCfg.Vehicles*sharedCfg.Days)
	}
	loc, _ := time.LoadLocation("Asia/Shanghai")
	perDay := map[[2]string]int{}
	for dev, evs := range r.events {
		for _, e := range evs {
			perDay[[2]string{dev, time.UnixMilli(e.TimeMs).In(loc).Format(time.DateOnly)}]++
		}
	}
	driven := 0.0
	for _, d := range r.days {
		if got := perDay[[2]string{d.DeviceID, d.Date}]; got != d.Events {
			t.Errorf("%s %s: truth says %d events, stream has %d", d.DeviceID, d.Date, d.Events, got)
		}
		driven += d.DistanceKm
	}
	if avg := driven / float64(len(r.days)); avg < 20 || avg > 150 {
		t.Errorf("average %.1f km per vehicle-day: not a plausible fleet", avg)
	}
	// Vehicle(i) reports the same truth as the stream
	_, days := r.s.Vehicle(3)
	for _, d := range r.days {
		if d.VehicleID == r.s.Vehicles()[3].VehicleID && !slices.ContainsFunc(days, func(x DayTruth) bool {
			return x.Day == d.Day && x.DistanceKm == d.DistanceKm && x.Events == d.Events
		}) {
			t.Errorf("Vehicle(3) truth for day %d differs", d.Day)
		}
	}
}

func TestProfilesDiffer(t *testing.T) {
	r := sharedRun(t)
	type agg struct{ km, harshAccel, harshBrake, speeding, moving, night float64 }
	per := map[Profile]*agg{}
	for _, d := range r.days {
		if d.Fraud != FraudNone {
			continue
		}
		a := per[d.Profile]
		if a == nil {
			a = &agg{}
			per[d.Profile] = a
		}
		a.km += d.DistanceKm
		a.harshAccel += float64(d.HarshAccel)
		a.harshBrake += float64(d.HarshBrake)
		a.speeding += d.SpeedingSeconds
		a.moving += d.MovingSeconds
		a.night += d.NightKm
	}
	calm, avg, agr := per[Calm], per[Average], per[Aggressive]
	rate := func(a *agg, n float64) float64 { return 100 * n / a.km } // per 100 km
	t.Logf("harsh accel /100km: calm %.2f average %.2f aggressive %.2f", rate(calm, calm.harshAccel), rate(avg, avg.harshAccel), rate(agr, agr.harshAccel))
	t.Logf("harsh brake /100km: calm %.2f average %.2f aggressive %.2f", rate(calm, calm.harshBrake), rate(avg, avg.harshBrake), rate(agr, agr.harshBrake))
	t.Logf("speeding share: calm %.3f average %.3f aggressive %.3f", calm.speeding/calm.moving, avg.speeding/avg.moving, agr.speeding/agr.moving)
	if agr.harshAccel/agr.km < 10*math.Max(calm.harshAccel, 1)/calm.km {
		t.Errorf("aggressive harsh accelerations %.0f in %.0f km vs calm %.0f in %.0f km", agr.harshAccel, agr.km, calm.harshAccel, calm.km)
	}
	if agr.harshBrake/agr.km < 5*math.Max(avg.harshBrake, 1)/avg.km {
		t.Errorf("aggressive harsh braking %.0f in %.0f km vs average %.0f in %.0f km", agr.harshBrake, agr.km, avg.harshBrake, avg.km)
	}
	if !(agr.speeding/agr.moving > avg.speeding/avg.moving && avg.speeding/avg.moving > calm.speeding/calm.moving) {
		t.Error("speeding does not rise calm < average < aggressive")
	}
}

func TestFraudTraits(t *testing.T) {
	r := sharedRun(t)
	found := map[Fraud]bool{}
	for _, v := range r.s.Vehicles() {
		evs := r.events[v.DeviceID]
		regular, pairs, jumps, rollbacks := true, 0, 0, 0
		odo, gps := 0.0, 0.0
		for k := 1; k < len(evs); k++ {
			p, e := evs[k-1], evs[k]
			if e.EngineOn && p.EngineOn {
				pairs++
				if e.TimeMs-p.TimeMs != 1000 || e.HDOP != 1 {
					regular = false
				}
			}
			dist := haversineKm(p.Lat, p.Lon, e.Lat, e.Lon)
			if dist/(float64(e.TimeMs-p.TimeMs)/3600e3) > 400 && dist > 1 {
				jumps++
			} else {
				gps += dist
			}
			if e.OdometerKm < p.OdometerKm {
				rollbacks++
			} else {
				odo += e.OdometerKm - p.OdometerKm
			}
		}
		ratio := odo / math.Max(gps, 0.001)
		regular = regular && pairs > 0
		switch v.Fraud {
		case FraudNone:
			if jumps > 0 || rollbacks > 0 || (gps > 5 && (regular || ratio < 0.9 || ratio > 1.05)) {
				t.Errorf("honest %s: regular %v jumps %d rollbacks %d odo/gps %.2f", v.DeviceID, regular, jumps, rollbacks, ratio)
			}
		case FraudSynthetic:
			var days []DayTruth
			for _, d := range r.days {
				if d.DeviceID == v.DeviceID {
					days = append(days, d)
				}
			}
			if !regular || days[0].DistanceKm != days[1].DistanceKm || days[0].DistanceKm == 0 {
				t.Errorf("synthetic %s: regular %v, distances %.3f %.3f", v.DeviceID, regular, days[0].DistanceKm, days[1].DistanceKm)
			}
		case FraudTeleport:
			if jumps == 0 && gps > 5 {
				t.Errorf("teleport %s: no jumps", v.DeviceID)
			}
		case FraudRollback:
			if rollbacks == 0 && gps > 5 {
				t.Errorf("rollback %s: odometer never went back", v.DeviceID)
			}
		case FraudInflated:
			if gps > 5 && ratio < 1.25 {
				t.Errorf("inflated %s: odometer/GPS %.2f", v.DeviceID, ratio)
			}
		}
		if gps > 5 {
			found[v.Fraud] = true
		}
	}
	for f := FraudNone; f <= FraudInflated; f++ {
		if !found[f] {
			t.Errorf("no driving vehicle with fraud %v in the fleet", f)
		}
	}
}

// TestStreamingMemory runs a fleet whose events would take gigabytes if
// held, and checks the live heap stays at a chunk's worth.
func TestStreamingMemory(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("simulates 600 vehicles; memory figures mean nothing under -race")
	}
	cfg := Config{Seed: 9, Vehicles: 600, Days: 1, Start: monday, ChunkVehicles: 100, Window: 10 * time.Minute}
	s := mustNew(t, cfg)
	stop := s.Start().Add(9 * time.Hour) // through the morning rush
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak uint64
	events, maxChunk := 0, 0
	k := 0
	for c := range s.Chunks() {
		if !c.Start.Before(stop) {
			break
		}
		events += len(c.Events)
		maxChunk = max(maxChunk, len(c.Events))
		if limit := (c.Last - c.First) * (int(cfg.Window/time.Second) + 2); len(c.Events) > limit {
			t.Fatalf("chunk of %d vehicles holds %d events, above %d", c.Last-c.First, len(c.Events), limit)
		}
		if k++; k%16 == 0 {
			runtime.GC()
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc-min(base, ms.HeapAlloc))
		}
	}
	held := uint64(events) * uint64(unsafeSizeofEvent)
	t.Logf("%d events (%d MB if held), largest chunk %d events, peak live heap %d MB", events, held>>20, maxChunk, peak>>20)
	if events < 500_000 {
		t.Fatalf("only %d events: the test no longer stresses memory", events)
	}
	if peak > 64<<20 || peak > held/4 {
		t.Fatalf("live heap %d MB while streaming (all events: %d MB)", peak>>20, held>>20)
	}
}

// BenchmarkGenerate measures events generated per second on 1 and 2
// workers, against the cost of JSON-encoding the same events in batches of
// 100 as the Sender does (the baseline: above 1x the simulator outpaces the
// HTTP path's encoding on the same cores).
func BenchmarkGenerate(b *testing.B) {
	for _, workers := range []int{1, 2} {
		b.Run("workers="+strconv.Itoa(workers), func(b *testing.B) {
			cfg := Config{Seed: 1, Vehicles: 100, Days: 1, Start: monday, Workers: workers}
			var n int
			var sample []telemetry.Event
			start := time.Now()
			for b.Loop() {
				for c := range mustNew(b, cfg).Chunks() {
					n += len(c.Events)
					if len(sample) < 200_000 {
						sample = append(sample, c.Events...)
					}
				}
			}
			simRate := float64(n) / time.Since(start).Seconds()
			start = time.Now()
			for lo := 0; lo < len(sample); lo += 100 {
				if _, err := telemetry.EncodeJSON(sample[lo:min(lo+100, len(sample))]); err != nil {
					b.Fatal(err)
				}
			}
			baseRate := float64(len(sample)) / time.Since(start).Seconds()
			b.ReportMetric(simRate, "events/s")
			b.ReportMetric(baseRate, "json_events/s")
			b.ReportMetric(simRate/baseRate, "x_json_encode")
		})
	}
}

const unsafeSizeofEvent = unsafe.Sizeof(telemetry.Event{})

// TestEventsPassIngestValidation: every simulated event, fraudulent ones
// included (their lies are plausible one sample at a time), is accepted
// by the ingest stage's validation.
func TestEventsPassIngestValidation(t *testing.T) {
	r := sharedRun(t)
	now := r.s.End()
	for _, evs := range r.events {
		for k := range evs {
			if err := telemetry.Validate(&evs[k], now, telemetry.ValidateConfig{}); err != nil {
				t.Fatalf("%s seq %d: %v", evs[k].DeviceID, evs[k].Seq, err)
			}
		}
	}
}
