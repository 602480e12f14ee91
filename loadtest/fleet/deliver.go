package fleet

import (
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/minecart/minecart/services/telemetry"
)

// Span is the time interval [From, To).
type Span struct{ From, To time.Time }

func (s Span) has(t time.Time) bool { return !t.Before(s.From) && t.Before(s.To) }

// Offline is a span during which one vehicle's box has no connection: it
// keeps sampling and buffers, and uploads what it holds once it is back.
type Offline struct {
	Vehicle int // index in Sim.Vehicles
	Span
}

// Outages are the connection troubles of a delivery schedule: spans when
// the gateway is down (no box can upload; the gateway writes no time
// marks) and spans when single boxes are offline.
type Outages struct {
	Gateway []Span
	Offline []Offline
}

// Validate reports spans that are empty or name no vehicle of sim.
func (o Outages) Validate(vehicles int) error {
	var errs []error
	for _, s := range o.Gateway {
		if !s.From.Before(s.To) {
			errs = append(errs, fmt.Errorf("gateway outage %v..%v is empty", s.From, s.To))
		}
	}
	for _, s := range o.Offline {
		if !s.From.Before(s.To) || s.Vehicle < 0 || s.Vehicle >= vehicles {
			errs = append(errs, fmt.Errorf("offline span of vehicle %d (%v..%v) is empty or names no vehicle", s.Vehicle, s.From, s.To))
		}
	}
	return errors.Join(errs...)
}

// Delivery is one upload step of the fleet: at intake time At, the boxes
// upload Events (vehicle by vehicle; each vehicle's in time order). When
// Down, the gateway is down at At and nothing is uploaded.
type Delivery struct {
	At     time.Time
	Down   bool
	Events []telemetry.Event
}

// Deliveries streams the simulation as the boxes upload it: the events of
// each Window are uploaded at the window's end (one Delivery per chunk),
// except those of a box offline at that moment, which it uploads at the
// first window end at or after it is back, and all of them while the
// gateway is down, uploaded at the first window end at or after it is up
// again (a Delivery with Down and no events marks each window end it is
// down). Buffered events come before the window's own, so every vehicle's
// events stay in time order. After End it goes on, window by window, with
// what is still buffered, until the window end at or after until (events
// held past it are not delivered: an outage must end before until). Like
// Chunks, it is deterministic and can be repeated.
func (s *Sim) Deliveries(o Outages, until time.Time) iter.Seq[Delivery] {
	return func(yield func(Delivery) bool) {
		win := s.cfg.Window
		start := s.start
		ceil := func(t time.Time) time.Time { // the first window end at or after t
			k := (t.Sub(start) + win - 1) / win
			return start.Add(max(k, 1) * win)
		}
		gatewayDown := func(t time.Time) (time.Time, bool) {
			for _, g := range o.Gateway {
				if g.has(t) {
					return g.To, true
				}
			}
			return t, false
		}
		// when is the delivery time of an event of vehicle v ready at d.
		when := func(v int, d time.Time) time.Time {
			for moved := true; moved; {
				moved = false
				for _, off := range o.Offline {
					if off.Vehicle == v && off.has(d) {
						d, moved = ceil(off.To), true
					}
				}
				if to, down := gatewayDown(d); down {
					d, moved = ceil(to), true
				}
			}
			return d
		}
		index := make(map[string]int, len(s.vehicles))
		for i, v := range s.vehicles {
			index[v.VehicleID] = i
		}
		held := map[time.Time][]telemetry.Event{}
		var cur time.Time
		flush := func(d time.Time) bool { // deliver what was held for window ends up to d
			if _, down := gatewayDown(d); down {
				return yield(Delivery{At: d, Down: true})
			}
			if evs := held[d]; len(evs) > 0 {
				delete(held, d)
				if !yield(Delivery{At: d, Events: evs}) {
					return false
				}
			}
			return true
		}
		for c := range s.Chunks() {
			d := c.End
			if !d.Equal(cur) {
				if !flush(d) {
					return
				}
				cur = d
			}
			if _, down := gatewayDown(d); down {
				for _, ev := range c.Events {
					at := when(index[ev.VehicleID], d)
					held[at] = append(held[at], ev)
				}
				continue
			}
			if len(o.Offline) == 0 {
				if !yield(Delivery{At: d, Events: c.Events}) {
					return
				}
				continue
			}
			live := c.Events[:0:0]
			for _, ev := range c.Events {
				if at := when(index[ev.VehicleID], d); !at.Equal(d) {
					held[at] = append(held[at], ev)
					continue
				}
				live = append(live, ev)
			}
			if len(live) > 0 && !yield(Delivery{At: d, Events: live}) {
				return
			}
		}
		for d := s.end.Add(win); !d.After(ceil(until)); d = d.Add(win) {
			if !flush(d) {
				return
			}
			if _, down := gatewayDown(d); !down {
				if !yield(Delivery{At: d}) { // the clock moves on
					return
				}
			}
		}
	}
}
