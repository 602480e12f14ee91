package telemetry

import (
	"hash/fnv"
	"testing"
)

// TestIDHashIsFNV1a: the ring's hashes are in the changelog's snapshots,
// so the inlined hash must be hash/fnv's 64-bit FNV-1a exactly.
func TestIDHashIsFNV1a(t *testing.T) {
	for _, id := range []string{"", "e", "dev-000001-1764000000123", "\x00\xff", "événement-42"} {
		h := fnv.New64a()
		h.Write([]byte(id))
		if got, want := idHash(id), h.Sum64(); got != want {
			t.Errorf("idHash(%q) = %x, FNV-1a %x", id, got, want)
		}
	}
}

// TestDedupWindowCache: the window Check remembers for the Add that
// follows is never a window the map no longer holds: a Forget, Restore or
// Evict between Check and Add leaves Add writing into the map's window.
func TestDedupWindowCache(t *testing.T) {
	e1 := ev("d1", 1, 1_000_000, 10)
	e2 := ev("d1", 2, 1_001_000, 10)
	for name, between := range map[string]func(d *Dedup){
		"forget": func(d *Dedup) { d.Forget("v") },
		"evict":  func(d *Dedup) { d.Evict(1 << 62) },
		"restore": func(d *Dedup) {
			other := NewDedup(DedupConfig{})
			other.Add(ev("d9", 7, 900_000, 0))
			snap, _ := other.Snapshot(nil, "v")
			if err := d.Restore("v", snap); err != nil {
				t.Fatal(err)
			}
		},
	} {
		d := NewDedup(DedupConfig{})
		d.Add(e1)
		if v, err := d.Check(e2); v != New || err != nil {
			t.Fatalf("%s: %v %v", name, v, err)
		}
		between(d)
		d.Add(e2)
		w := d.Window("v")
		if w == nil {
			t.Fatalf("%s: the added event's vehicle has no window", name)
		}
		// Through the map alone (Snapshot reads it): a fresh Dedup restored
		// from it finds the event.
		snap, _ := d.Snapshot(nil, "v")
		fresh := NewDedup(DedupConfig{})
		if err := fresh.Restore("v", snap); err != nil {
			t.Fatal(err)
		}
		if v, _ := fresh.Check(e2); v != Duplicate {
			t.Errorf("%s: the event added after the %s is not in the map's window: %+v", name, name, w)
		}
	}
}
