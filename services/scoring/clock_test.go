package scoring

import (
	"maps"
	"testing"
	"time"
)

// TestLogClock: the log time is the lowest mark of the live gateways, never
// moves back, drops a gateway that leaves or falls more than the expiry
// behind another, and survives its changelog encoding.
func TestLogClock(t *testing.T) {
	const min = int64(time.Minute / time.Millisecond)
	type step struct {
		gw      string
		t       int64
		leaving bool
		want    int64
		live    []string
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"one gateway drives", []step{
			{"a", 10 * min, false, 10 * min, []string{"a"}},
			{"a", 20 * min, false, 20 * min, []string{"a"}},
			{"a", 15 * min, false, 20 * min, []string{"a"}}, // an older mark changes nothing
		}},
		{"min across gateways", []step{
			{"a", 10 * min, false, 10 * min, []string{"a"}},
			{"b", 8 * min, false, 10 * min, []string{"a", "b"}}, // b joins behind: held, never back
			{"a", 14 * min, false, 10 * min, []string{"a", "b"}},
			{"b", 12 * min, false, 12 * min, []string{"a", "b"}},
			{"b", 22 * min, false, 14 * min, []string{"a", "b"}},
			{"a", 31 * min, false, 22 * min, []string{"a", "b"}},
			{"b", 41 * min, false, 31 * min, []string{"a", "b"}}, // a exactly the expiry behind
			{"b", 41*min + 1, false, 41*min + 1, []string{"b"}},  // a dropped: b alone drives
		}},
		{"silent gateway expires", []step{
			{"a", 10 * min, false, 10 * min, []string{"a"}},
			{"b", 10 * min, false, 10 * min, []string{"a", "b"}},
			{"a", 20 * min, false, 10 * min, []string{"a", "b"}}, // exactly the expiry ahead: b still live
			{"a", 20*min + 1, false, 20*min + 1, []string{"a"}},  // b dropped
			{"b", 10 * min, false, 20*min + 1, []string{"a"}},    // b again, still too far behind: dropped again
			{"b", 21 * min, false, 20*min + 1, []string{"a", "b"}},
		}},
		{"leaving gateway", []step{
			{"a", 10 * min, false, 10 * min, []string{"a"}},
			{"b", 12 * min, false, 10 * min, []string{"a", "b"}},
			{"a", 10 * min, true, 12 * min, []string{"b"}},
			{"b", 13 * min, true, 12 * min, nil}, // nobody left: the time stays
			{"a", 11 * min, false, 12 * min, []string{"a"}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewLogClock(10 * time.Minute)
			if c.Active() || c.Time() != 0 {
				t.Fatal("new clock active")
			}
			for i, s := range tc.steps {
				if got := c.Mark(s.gw, s.t, s.leaving); got != s.want || c.Time() != s.want {
					t.Fatalf("step %d: time %d, want %d", i, got, s.want)
				}
				if g := c.Gateways(); len(g) != len(s.live) {
					t.Fatalf("step %d: live %v, want %v", i, g, s.live)
				} else {
					for _, id := range s.live {
						if _, ok := g[id]; !ok {
							t.Fatalf("step %d: live %v, want %v", i, g, s.live)
						}
					}
				}
				// The changelog record restores the same clock.
				if !c.Dirty() {
					t.Fatalf("step %d: not dirty", i)
				}
				r := NewLogClock(10 * time.Minute)
				if err := r.Restore(c.AppendBinary(nil)); err != nil {
					t.Fatal(err)
				}
				if c.Dirty() || r.Time() != c.Time() || !r.Active() || !maps.Equal(r.Gateways(), c.Gateways()) {
					t.Fatalf("step %d: restored %d %v, have %d %v", i, r.Time(), r.Gateways(), c.Time(), c.Gateways())
				}
			}
		})
	}
}

func TestLogClockRestoreRejects(t *testing.T) {
	c := NewLogClock(time.Minute)
	c.Mark("gw", 5, false)
	good := c.AppendBinary(nil)
	for _, b := range [][]byte{{}, {2, 0, 0, 0, 0, 0, 0, 0, 0, 0}, good[:len(good)-1], append(append([]byte{}, good...), 0), good[:10]} {
		if err := NewLogClock(time.Minute).Restore(b); err == nil {
			t.Errorf("restored %x", b)
		}
	}
	r := NewLogClock(time.Minute)
	if err := r.Restore(nil); err != nil || r.Active() {
		t.Fatal("tombstone")
	}
}

func FuzzLogClockRestore(f *testing.F) {
	c := NewLogClock(time.Minute)
	c.Mark("gw-1", 5, false)
	c.Mark("gw-2", 7, false)
	f.Add(c.AppendBinary(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewLogClock(time.Minute)
		if r.Restore(b) != nil {
			return
		}
		// What restores re-encodes to a record that restores the same.
		r2 := NewLogClock(time.Minute)
		if err := r2.Restore(r.AppendBinary(nil)); err != nil || r2.Time() != r.Time() || !maps.Equal(r.Gateways(), r2.Gateways()) {
			t.Fatalf("re-encoding %x: %v", b, err)
		}
	})
}

// TestLogClockRestoreRepeatedGateway: a record naming a gateway twice
// restores the last of its marks (the record written by AppendBinary has
// none; the rule is the one a map gave).
func TestLogClockRestoreRepeatedGateway(t *testing.T) {
	b := []byte{clockVersion, 0, 0, 0, 0, 0, 0, 0, 5, 3}
	for _, g := range []struct {
		id string
		t  byte
	}{{"gw-b", 9}, {"gw-a", 7}, {"gw-b", 8}} {
		b = append(append(b, byte(len(g.id))), g.id...)
		b = append(b, 0, 0, 0, 0, 0, 0, 0, g.t)
	}
	c := NewLogClock(time.Minute)
	if err := c.Restore(b); err != nil {
		t.Fatal(err)
	}
	if got := c.Gateways(); !maps.Equal(got, map[string]int64{"gw-a": 7, "gw-b": 8}) || c.Time() != 5 {
		t.Fatalf("restored %v at %d", got, c.Time())
	}
}
