package fleet

import (
	"slices"
	"testing"
	"time"

	"github.com/minecart/minecart/services/telemetry"
)

// TestDeliveries: with no outage the deliveries are the chunks, at their
// window ends, then empty steps until the requested end; with a gateway
// outage and an offline box, every event is delivered exactly once, none
// while the gateway is down, each held one at the first window end at or
// after its outage ended, and every vehicle's events stay in time order.
func TestDeliveries(t *testing.T) {
	sim := mustNew(t, Config{Seed: 3, Vehicles: 6, Days: 1, Start: monday, ChunkVehicles: 4, TZ: "UTC"})
	end := sim.End()
	until := end.Add(2 * time.Hour)

	var chunks []telemetry.Event
	var ends []time.Time
	for c := range sim.Chunks() {
		chunks = append(chunks, c.Events...)
		ends = append(ends, c.End)
	}
	var live []telemetry.Event
	var liveAt []time.Time
	tail := 0
	for d := range sim.Deliveries(Outages{}, until) {
		if d.Down {
			t.Fatal("down with no outage")
		}
		if d.At.After(end) {
			if len(d.Events) != 0 {
				t.Fatalf("events delivered at %v, after the end", d.At)
			}
			tail++
			continue
		}
		live = append(live, d.Events...)
		liveAt = append(liveAt, d.At)
	}
	if !slices.EqualFunc(live, chunks, func(a, b telemetry.Event) bool { return a.EventID == b.EventID }) {
		t.Fatal("live deliveries are not the chunks")
	}
	if !slices.Equal(liveAt, ends) {
		t.Fatalf("live delivery times %v, want the chunks' ends", liveAt)
	}
	if tail != int(2*time.Hour/(10*time.Minute)) {
		t.Fatalf("%d steps after the end, want 12", tail)
	}

	down := Span{end.Add(-6*time.Hour - 5*time.Minute), end.Add(-5*time.Hour - 35*time.Minute)} // 30 minutes
	off := Offline{Vehicle: 2, Span: Span{end.Add(-10 * time.Hour), end.Add(-7*time.Hour + time.Minute)}}
	if err := (Outages{Gateway: []Span{{down.To, down.From}}}).Validate(6); err == nil {
		t.Fatal("empty span accepted")
	}
	if err := (Outages{Offline: []Offline{{Vehicle: 6, Span: off.Span}}}).Validate(6); err == nil {
		t.Fatal("vehicle 6 of 6 accepted")
	}
	o := Outages{Gateway: []Span{down}, Offline: []Offline{off}}
	if err := o.Validate(6); err != nil {
		t.Fatal(err)
	}
	vin2 := sim.Vehicles()[2].VehicleID
	ceil := func(t time.Time) time.Time {
		return sim.Start().Add((t.Sub(sim.Start()) + 10*time.Minute - 1) / (10 * time.Minute) * (10 * time.Minute))
	}
	at := map[string]time.Time{}
	last := map[string]int64{}
	downs := 0
	var prev time.Time
	for d := range sim.Deliveries(o, until) {
		if d.At.Before(prev) {
			t.Fatalf("delivery at %v after %v", d.At, prev)
		}
		prev = d.At
		if down.has(d.At) {
			if !d.Down || len(d.Events) != 0 {
				t.Fatalf("delivery at %v while the gateway is down", d.At)
			}
			downs++
			continue
		}
		for _, ev := range d.Events {
			if _, dup := at[ev.EventID]; dup {
				t.Fatalf("event %s delivered twice", ev.EventID)
			}
			at[ev.EventID] = d.At
			if ev.TimeMs < last[ev.VehicleID] {
				t.Fatalf("vehicle %s out of order at %v", ev.VehicleID, d.At)
			}
			last[ev.VehicleID] = ev.TimeMs
		}
	}
	if downs != 3 { // 18:00, 18:10, 18:20
		t.Fatalf("%d down steps, want 3", downs)
	}
	if len(at) != len(chunks) {
		t.Fatalf("%d events delivered, want %d", len(at), len(chunks))
	}
	heldGW, heldOff := 0, 0
	for i, ev := range chunks {
		want := ends[slices.IndexFunc(ends, func(e time.Time) bool { return e.UnixMilli() > ev.TimeMs })]
		_ = i
		switch {
		case ev.VehicleID == vin2 && off.has(want):
			want = ceil(off.To)
			heldOff++
		case down.has(want):
			want = ceil(down.To)
			heldGW++
		}
		if !at[ev.EventID].Equal(want) {
			t.Fatalf("event %s of %s at %v delivered at %v, want %v", ev.EventID, ev.VehicleID, time.UnixMilli(ev.TimeMs), at[ev.EventID], want)
		}
	}
	if heldGW == 0 || heldOff == 0 {
		t.Fatalf("the outages held %d and %d events: the test proves nothing", heldGW, heldOff)
	}
}
