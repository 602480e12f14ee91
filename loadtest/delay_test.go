package loadtest

import (
	"testing"
	"time"

	"github.com/minecart/minecart/loadtest/fleet"
)

func TestDelayed(t *testing.T) {
	sim, err := fleet.New(fleet.Config{Seed: 2, Vehicles: 30, Days: 1, Start: monday, ChunkVehicles: 10})
	if err != nil {
		t.Fatal(err)
	}
	offline := EveryNth(4)
	want := map[string]int{}
	nOff := 0
	for c := range sim.Chunks() {
		for _, e := range c.Events {
			want[e.DeviceID]++
		}
	}
	for _, d := range sim.Devices() {
		if offline(d.DeviceID) {
			nOff++
		}
	}
	if nOff == 0 || nOff == 30 {
		t.Fatalf("%d of 30 devices offline", nOff)
	}
	const delay = 3 * time.Hour
	got := map[string]int{}
	lastTime := map[string]int64{}
	late := 0
	for c := range Delayed(sim.Chunks(), offline, delay) {
		for _, e := range c.Events {
			got[e.DeviceID]++
			if e.TimeMs <= lastTime[e.DeviceID] {
				t.Fatalf("%s: event at %d after %d", e.DeviceID, e.TimeMs, lastTime[e.DeviceID])
			}
			lastTime[e.DeviceID] = e.TimeMs
			age := c.End.Sub(time.UnixMilli(e.TimeMs))
			if offline(e.DeviceID) {
				if age < delay && c.Start != c.End {
					t.Fatalf("offline %s: event %v old handed on with chunk ending %v", e.DeviceID, age, c.End)
				}
				late++
			} else if age > sim.Config().Window {
				t.Fatalf("online %s: event %v old", e.DeviceID, age)
			}
		}
	}
	for dev, n := range want {
		if got[dev] != n {
			t.Fatalf("%s: %d events out, %d in", dev, got[dev], n)
		}
	}
	if late == 0 {
		t.Fatal("nothing delayed")
	}
}
