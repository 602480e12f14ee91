package ledger

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestIDIndexCollisions: ids that share a hash are told apart by their
// bytes, found, updated and removed one by one, and removing the newest
// reclaims its record and bytes.
func TestIDIndexCollisions(t *testing.T) {
	x := newIDIndex()
	const h = 42 // every id under one hash: one chain
	ids := []string{"veh-1/2026-01-01", "veh-1/2026-01-02", "veh-10/2026-01-01", "", "x"}
	for i, id := range ids {
		if x.findHash(h, id) != nil {
			t.Fatalf("%q found before it was added", id)
		}
		x.addHash(h, id, int64(i*10), uint64(i))
	}
	for i, id := range ids {
		r := x.findHash(h, id)
		if r == nil || r.points != int64(i*10) || r.leaf != uint64(i) {
			t.Fatalf("%q: %+v", id, r)
		}
	}
	if x.findHash(h, "veh-1/2026-01-0") != nil || x.findHash(h, "veh-1/2026-01-011") != nil {
		t.Fatal("a prefix or extension of an id found")
	}
	x.findHash(h, ids[1]).points += 5
	if r := x.findHash(h, ids[1]); r.points != 15 {
		t.Fatalf("update lost: %d", r.points)
	}
	// Remove one in the middle of the chain: the others stay.
	x.removeHash(h, ids[2])
	for i, id := range ids {
		if r := x.findHash(h, id); (r == nil) != (i == 2) {
			t.Fatalf("after removing %q: %q found %v", ids[2], id, r != nil)
		}
	}
	// Remove the newest: its record and bytes are reclaimed.
	recs, size := len(x.recs), len(x.chunks[0])
	x.removeHash(h, ids[4])
	if len(x.recs) != recs-1 || len(x.chunks[0]) != size-len(ids[4]) {
		t.Fatalf("newest not reclaimed: %d records, %d bytes", len(x.recs), len(x.chunks[0]))
	}
	for _, id := range []string{ids[0], ids[1], ids[3]} {
		if x.findHash(h, id) == nil {
			t.Fatalf("%q lost", id)
		}
	}
}

// TestIDIndexModel runs random inserts, finds and removals (newest first,
// as Undo does, and in any order) against a Go map, over many chunks.
func TestIDIndexModel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	x := newIDIndex()
	model := map[string]uint64{}
	var order []string
	id := func() string {
		return fmt.Sprintf("veh-%06d/%d", r.IntN(50_000), r.IntN(4)) + string(make([]byte, r.IntN(40)))
	}
	for step := range 200_000 {
		switch op := r.IntN(10); {
		case op < 6:
			s := id()
			_, in := model[s]
			if got := x.insert(s, int64(step), uint64(step)); got == in {
				t.Fatalf("step %d: insert %q reported %v, model has it %v", step, s, got, in)
			}
			if !in {
				model[s] = uint64(step)
				order = append(order, s)
			}
		case op < 8 && len(order) > 0:
			s := order[len(order)-1]
			order = order[:len(order)-1]
			if _, in := model[s]; !in {
				continue
			}
			x.remove(s)
			delete(model, s)
		case op < 9:
			s := id()
			x.remove(s)
			delete(model, s)
		default:
			s := id()
			leaf, in := model[s]
			got := x.find(s)
			if (got != nil) != in || in && got.leaf != leaf {
				t.Fatalf("step %d: find %q: %+v, model %v %d", step, s, got, in, leaf)
			}
		}
	}
	for s, leaf := range model {
		if got := x.find(s); got == nil || got.leaf != leaf {
			t.Fatalf("%q: %+v, want leaf %d", s, got, leaf)
		}
	}
	if len(x.chunks) < 2 {
		t.Fatalf("%d chunks: the test should cross a chunk boundary", len(x.chunks))
	}
}

// TestIDIndexExtra: bytes kept beside an id (a vehicle's first credit
// date) come back whole, a second insert keeps the first, and removing
// the newest reclaims its id and its extra bytes.
func TestIDIndexExtra(t *testing.T) {
	x := newIDIndex()
	if !x.insertWith("v1", "2026-11-03", 7) || x.insertWith("v1", "2026-11-04", 9) || !x.insertWith("v2", "2026-11-05", 8) {
		t.Fatal("insertWith: a new vehicle not added, or a known one added again")
	}
	for id, want := range map[string]string{"v1": "2026-11-03", "v2": "2026-11-05"} {
		if r := x.find(id); r == nil || x.extra(r) != want {
			t.Fatalf("%s: %+v", id, r)
		}
	}
	if x.find("v12026-11-03") != nil || x.find("v") != nil {
		t.Fatal("an id found with its extra bytes or by a prefix")
	}
	size := len(x.chunks[0])
	x.remove("v2")
	if len(x.chunks[0]) != size-len("v2")-len("2026-11-05") || len(x.recs) != 1 || x.extra(x.find("v1")) != "2026-11-03" {
		t.Fatalf("remove of the newest: %d bytes left of %d, %d records", len(x.chunks[0]), size, len(x.recs))
	}
}
