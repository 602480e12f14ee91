package fleet

import (
	"iter"
	"math"
	"sync"
	"time"

	"github.com/minecart/minecart/services/telemetry"
)

// Sim is a configured simulation. It holds only the fleet list; every call
// to Chunks or Vehicle simulates from the start, so both can be repeated
// and give the same events.
type Sim struct {
	cfg      Config
	w        *world
	vehicles []Vehicle
	start    time.Time
	end      time.Time
}

// Chunk is the events of one time window for a range of vehicles.
type Chunk struct {
	Start, End time.Time // the window [Start, End): nominal times of the events
	// First and Last+1 bound the vehicle indexes in this chunk.
	First, Last int
	// Events of vehicles First..Last-1, vehicle by vehicle in index order,
	// each vehicle's in time order. The slice belongs to the caller.
	// FaultCodes slices are shared between events and must not be modified.
	Events []telemetry.Event
	// Days are the vehicle-days of these vehicles that ended in this window.
	Days []DayTruth
}

// New validates cfg and lays out the fleet.
func New(cfg Config) (*Sim, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	loc, err := time.LoadLocation(cfg.TZ)
	if err != nil {
		return nil, err
	}
	y, m, d := cfg.Start.Date()
	w := &world{
		seed: cfg.Seed, days: cfg.Days, center: cfg.Center,
		interval: cfg.SampleInterval.Milliseconds(), sampleSec: cfg.SampleInterval.Seconds(),
		substeps: 1, dt: cfg.SampleInterval.Seconds(),
	}
	if cfg.SampleInterval > time.Second {
		w.substeps, w.dt = int(cfg.SampleInterval/time.Second), 1
	}
	w.jitter = int(w.interval / 20)
	if cfg.ParkedInterval > 0 {
		w.parked = cfg.ParkedInterval.Milliseconds()
	}
	w.coolK = 1 - math.Exp(-w.dt/300)
	for k := 0; k <= cfg.Days; k++ {
		day := time.Date(y, m, d+k, 0, 0, 0, 0, loc)
		w.dayStart = append(w.dayStart, day.UnixMilli())
		w.dates = append(w.dates, day.Format(time.DateOnly))
		w.weekday = append(w.weekday, day.Weekday() != time.Saturday && day.Weekday() != time.Sunday)
		w.doy = append(w.doy, day.YearDay())
	}
	s := &Sim{cfg: cfg, w: w,
		start: time.UnixMilli(w.dayStart[0]).In(loc), end: time.UnixMilli(w.dayStart[cfg.Days]).In(loc)}
	s.vehicles = make([]Vehicle, cfg.Vehicles)
	frauds := 0
	for i := range s.vehicles {
		p, f := pickProfile(cfg.Seed, i, cfg.Mix)
		if p == Fraudulent {
			// the kinds take turns, so any four fraudulent vehicles show all
			f = Fraud(1 + (frauds+int(cfg.Seed%4))%4)
			frauds++
		}
		s.vehicles[i] = Vehicle{Index: i, VehicleID: makeVIN(cfg.Seed, i), DeviceID: makeDeviceID(cfg.Seed, i),
			Profile: p, Fraud: f, TZ: cfg.TZ}
	}
	return s, nil
}

// Config returns the configuration with defaults applied.
func (s *Sim) Config() Config { return s.cfg }

// Start is the first local midnight simulated; End the one after the last day.
func (s *Sim) Start() time.Time { return s.start }

// End is the local midnight that ends the simulation (exclusive).
func (s *Sim) End() time.Time { return s.end }

// Vehicles lists the fleet (do not modify).
func (s *Sim) Vehicles() []Vehicle { return s.vehicles }

// Devices is the provisioning list: each box with its vehicle and secret.
func (s *Sim) Devices() []Device {
	out := make([]Device, len(s.vehicles))
	for i, v := range s.vehicles {
		out[i] = Device{DeviceID: v.DeviceID, VehicleID: v.VehicleID, Secret: makeSecret(s.cfg.Seed, i)}
	}
	return out
}

// Chunks streams the simulation: for each Window from Start to End, the
// events of up to ChunkVehicles vehicles at a time. Memory is bounded by
// one chunk plus a few hundred bytes of state per vehicle. Breaking out of
// the loop stops the simulation.
func (s *Sim) Chunks() iter.Seq[Chunk] {
	return func(yield func(Chunk) bool) {
		vs := make([]*vehicle, len(s.vehicles))
		for i := range vs {
			vs[i] = newVehicle(s.w, &s.vehicles[i])
		}
		win := s.cfg.Window.Milliseconds()
		// each group's last chunk size sizes its next: appends never copy
		hint := make([]int, (len(vs)+s.cfg.ChunkVehicles-1)/s.cfg.ChunkVehicles)
		for t := s.w.dayStart[0]; t < s.w.dayStart[s.w.days]; t += win {
			until := min(t+win, s.w.dayStart[s.w.days])
			for lo := 0; lo < len(vs); lo += s.cfg.ChunkVehicles {
				hi := min(lo+s.cfg.ChunkVehicles, len(vs))
				c := Chunk{Start: time.UnixMilli(t).In(s.start.Location()),
					End: time.UnixMilli(until).In(s.start.Location()), First: lo, Last: hi}
				g := lo / s.cfg.ChunkVehicles
				c.Events, c.Days = s.advance(vs[lo:hi], until, hint[g])
				hint[g] = len(c.Events) + len(c.Events)/4 + 16
				if !yield(c) {
					return
				}
			}
		}
	}
}

// advance moves vs to until on the configured number of workers; the
// result is concatenated in vehicle order, so it does not depend on them.
func (s *Sim) advance(vs []*vehicle, until int64, hint int) ([]telemetry.Event, []DayTruth) {
	n := min(s.cfg.Workers, len(vs))
	if n <= 1 {
		ev := make([]telemetry.Event, 0, hint)
		var days []DayTruth
		for _, v := range vs {
			v.advance(until, &ev, &days)
		}
		return ev, days
	}
	evs := make([][]telemetry.Event, n)
	dys := make([][]DayTruth, n)
	var wg sync.WaitGroup
	for k := 0; k < n; k++ {
		lo, hi := k*len(vs)/n, (k+1)*len(vs)/n
		evs[k] = make([]telemetry.Event, 0, hint/n)
		wg.Go(func() {
			for _, v := range vs[lo:hi] {
				v.advance(until, &evs[k], &dys[k])
			}
		})
	}
	wg.Wait()
	total, totalDays := 0, 0
	for k := range evs {
		total += len(evs[k])
		totalDays += len(dys[k])
	}
	ev := make([]telemetry.Event, 0, total)
	days := make([]DayTruth, 0, totalDays)
	for k := range evs {
		ev = append(ev, evs[k]...)
		days = append(days, dys[k]...)
	}
	return ev, days
}

// Vehicle simulates vehicle i alone over the whole period: the same events
// and day truths it has in Chunks.
func (s *Sim) Vehicle(i int) ([]telemetry.Event, []DayTruth) {
	v := newVehicle(s.w, &s.vehicles[i])
	var ev []telemetry.Event
	var days []DayTruth
	v.advance(s.w.dayStart[s.w.days], &ev, &days)
	return ev, days
}
