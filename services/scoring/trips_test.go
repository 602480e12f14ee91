package scoring

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/minecart/minecart/services/telemetry"
)

// trip builds synthetic 1 Hz (or other period) traces for tests and
// benchmarks: a vehicle driving east at a given speed, with optional
// realistic noise (timestamp jitter, speed and position noise).
type trip struct {
	vehicle, device, tz string
	t                   int64 // next event time, Unix ms
	periodMs            int64
	lat, lon            float64
	odo                 float64
	seq                 uint64
	noise               *rand.Rand // nil: exact (generated-looking) trace
	evs                 []telemetry.Event
}

func newTrip(vehicle string, start time.Time, seed uint64) *trip {
	tr := &trip{vehicle: vehicle, device: "dev-" + vehicle, tz: "Asia/Shanghai", t: start.UnixMilli(), periodMs: 1000,
		lat: 31.2, lon: 121.4, odo: 10000}
	if seed != 0 {
		tr.noise = rand.New(rand.NewPCG(seed, 7))
	}
	return tr
}

// sample is the per-event hook: it may change the event before it is kept.
type sample func(i int, ev *telemetry.Event)

// drive appends n samples at speed km/h, moving east.
func (tr *trip) drive(n int, kmh float64, hooks ...sample) *trip {
	for i := range n {
		v := kmh
		lat, lon := tr.lat, tr.lon
		jit := int64(0)
		if tr.noise != nil {
			v = math.Max(0, kmh+tr.noise.NormFloat64()*0.3)
			lat += tr.noise.NormFloat64() * 1.5e-6 // ~0.2 m
			lon += tr.noise.NormFloat64() * 1.5e-6
			jit = int64(tr.noise.IntN(40)) - 20
		}
		ev := telemetry.Event{
			EventID: fmt.Sprintf("%s-%d", tr.device, tr.seq), DeviceID: tr.device, VehicleID: tr.vehicle,
			Seq: tr.seq, TimeMs: tr.t + jit, TZ: tr.tz, Lat: lat, Lon: lon, HDOP: 0.9, SpeedKmh: v,
			HeadingDeg: 90, OdometerKm: tr.odo, EngineOn: true, FuelPct: -1, CoolantC: -273,
		}
		for _, h := range hooks {
			h(i, &ev)
		}
		tr.evs = append(tr.evs, ev)
		tr.seq++
		stepM := kmh / 3.6 * float64(tr.periodMs) / 1000
		tr.lon += stepM / (111319.49 * math.Cos(tr.lat*math.Pi/180))
		tr.odo += stepM / 1000
		tr.t += tr.periodMs
	}
	return tr
}

// stop appends a pause of d with no samples (box off).
func (tr *trip) stop(d time.Duration) *trip {
	tr.t += d.Milliseconds()
	return tr
}

// at returns a hook applying f to samples with index in [from, to).
func at(from, to int, f func(ev *telemetry.Event)) sample {
	return func(i int, ev *telemetry.Event) {
		if i >= from && i < to {
			f(ev)
		}
	}
}

func lonAccel(g float64) func(*telemetry.Event) {
	return func(ev *telemetry.Event) { ev.AccelLonMS2 = g * G }
}

func latAccel(g float64) func(*telemetry.Event) {
	return func(ev *telemetry.Event) { ev.AccelLatMS2 = g * G }
}

// day folds evs into a Day for their (Shanghai) date and returns the result.
func scoreDay(r *Rules, evs []telemetry.Event) (*Day, Result) {
	loc, _ := time.LoadLocation("Asia/Shanghai")
	t := time.UnixMilli(evs[0].TimeMs).In(loc)
	start := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)
	d := NewDay(start.UnixMilli(), start.AddDate(0, 0, 1).UnixMilli(), uint32(r.NightEndHour)*3600000)
	var buf []byte
	for i := range evs {
		buf = d.Add(r, &evs[i], buf)
	}
	res := d.Result(r)
	return &d, res
}
