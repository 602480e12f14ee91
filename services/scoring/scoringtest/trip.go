// Package scoringtest builds synthetic telemetry traces for the tests and
// benchmarks of scoring and its stage: a vehicle driving east at a given
// speed, with optional realistic noise (timestamp jitter, speed and
// position noise).
package scoringtest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/minecart/minecart/services/telemetry"
)

// g is scoring.G (scoring's own tests import this package, so it cannot
// import scoring).
const g = 9.80665

// Trip is a synthetic 1 Hz (or other period) trace.
type Trip struct {
	T        int64 // next event time, Unix ms
	PeriodMs int64
	Lat      float64
	Evs      []telemetry.Event

	vehicle, device, tz string
	lon, odo            float64
	seq                 uint64
	noise               *rand.Rand // nil: exact (generated-looking) trace
}

// NewTrip starts a trip of vehicle at start; seed 0 makes an exact trace.
func NewTrip(vehicle string, start time.Time, seed uint64) *Trip {
	tr := &Trip{vehicle: vehicle, device: "dev-" + vehicle, tz: "Asia/Shanghai", T: start.UnixMilli(), PeriodMs: 1000,
		Lat: 31.2, lon: 121.4, odo: 10000}
	if seed != 0 {
		tr.noise = rand.New(rand.NewPCG(seed, 7))
	}
	return tr
}

// Sample is the per-event hook: it may change the event before it is kept.
type Sample func(i int, ev *telemetry.Event)

// Drive appends n samples at speed km/h, moving east.
func (tr *Trip) Drive(n int, kmh float64, hooks ...Sample) *Trip {
	for i := range n {
		v := kmh
		lat, lon := tr.Lat, tr.lon
		jit := int64(0)
		if tr.noise != nil {
			v = math.Max(0, kmh+tr.noise.NormFloat64()*0.3)
			lat += tr.noise.NormFloat64() * 1.5e-6 // ~0.2 m
			lon += tr.noise.NormFloat64() * 1.5e-6
			jit = int64(tr.noise.IntN(40)) - 20
		}
		ev := telemetry.Event{
			EventID: fmt.Sprintf("%s-%d", tr.device, tr.seq), DeviceID: tr.device, VehicleID: tr.vehicle,
			Seq: tr.seq, TimeMs: tr.T + jit, TZ: tr.tz, Lat: lat, Lon: lon, HDOP: 0.9, SpeedKmh: v,
			HeadingDeg: 90, OdometerKm: tr.odo, EngineOn: true, FuelPct: -1, CoolantC: -273,
		}
		for _, h := range hooks {
			h(i, &ev)
		}
		tr.Evs = append(tr.Evs, ev)
		tr.seq++
		stepM := kmh / 3.6 * float64(tr.PeriodMs) / 1000
		tr.lon += stepM / (111319.49 * math.Cos(tr.Lat*math.Pi/180))
		tr.odo += stepM / 1000
		tr.T += tr.PeriodMs
	}
	return tr
}

// Stop appends a pause of d with no samples (box off).
func (tr *Trip) Stop(d time.Duration) *Trip {
	tr.T += d.Milliseconds()
	return tr
}

// At returns a hook applying f to samples with index in [from, to).
func At(from, to int, f func(ev *telemetry.Event)) Sample {
	return func(i int, ev *telemetry.Event) {
		if i >= from && i < to {
			f(ev)
		}
	}
}

// LonAccel sets the longitudinal acceleration to x g (negative: braking).
func LonAccel(x float64) func(*telemetry.Event) {
	return func(ev *telemetry.Event) { ev.AccelLonMS2 = x * g }
}

// LatAccel sets the lateral acceleration to x g.
func LatAccel(x float64) func(*telemetry.Event) {
	return func(ev *telemetry.Event) { ev.AccelLatMS2 = x * g }
}

// Traffic is vehicles x chunks uploads of 30 one-second events each,
// interleaved chunk by chunk (boxes upload in batches), in time order.
func Traffic(vehicles, chunks int, seed uint64, start time.Time) []telemetry.Event {
	trips := make([]*Trip, vehicles)
	for v := range trips {
		trips[v] = NewTrip(fmt.Sprintf("veh-%06d", v), start, seed+uint64(v))
	}
	var out []telemetry.Event
	for range chunks {
		for _, tr := range trips {
			n := len(tr.Evs)
			tr.Drive(30, 50, At(10, 11, LonAccel(-0.45)))
			out = append(out, tr.Evs[n:]...)
		}
	}
	return out
}

// Event is a minimal moving event of vehicle at a time.
func Event(vehicle string, at time.Time) *telemetry.Event {
	return &telemetry.Event{EventID: vehicle + at.Format("-150405"), DeviceID: "d-" + vehicle, VehicleID: vehicle,
		TimeMs: at.UnixMilli(), Lat: 31.2, Lon: 121.4, SpeedKmh: 30}
}

// Coast moves the vehicle on at kmh for d without any sample (the box lost
// power while driving): position and odometer advance, time passes.
func (tr *Trip) Coast(d time.Duration, kmh float64) *Trip {
	m := kmh / 3.6 * d.Seconds()
	tr.lon += m / (111319.49 * math.Cos(tr.Lat*math.Pi/180))
	tr.odo += m / 1000
	tr.T += d.Milliseconds()
	return tr
}

// Device switches the trip to another device id (a replacement box), with
// its own sequence numbers from 0.
func (tr *Trip) Device(id string) *Trip {
	tr.device, tr.seq = id, 0
	return tr
}

// Odometer shifts the odometer reading by km (e.g. a box reporting a
// tampered odometer).
func (tr *Trip) Odometer(km float64) *Trip {
	tr.odo += km
	return tr
}
