package merkle

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// TestGrow: Grow changes only capacity: the roots, sizes and proofs of a
// tree grown in steps are those of one that never was.
func TestGrow(t *testing.T) {
	var plain, grown Tree
	leaf := make([]byte, 40)
	for i := range 5000 {
		if i%700 == 0 {
			grown.Grow(i%3*500 + 1)
			if c, l := cap(grown.levels[0]), len(grown.levels[0]); c < l+i%3*500+1 {
				t.Fatalf("after Grow(%d) at %d leaves: capacity %d", i%3*500+1, l, c)
			}
		}
		grown.Grow(0)
		binary.BigEndian.PutUint64(leaf, uint64(i))
		plain.Append(leaf)
		grown.Append(leaf)
		if plain.Root() != grown.Root() || plain.Size() != grown.Size() {
			t.Fatalf("leaf %d: roots differ", i)
		}
	}
	for _, i := range []uint64{0, 1, 777, 4095, 4999} {
		a, err1 := plain.InclusionProof(i, plain.Size())
		b, err2 := grown.InclusionProof(i, grown.Size())
		if err1 != nil || err2 != nil || len(a) != len(b) {
			t.Fatalf("proof %d: %v %v", i, err1, err2)
		}
		for j := range a {
			if a[j] != b[j] {
				t.Fatalf("proof %d differs at %d", i, j)
			}
		}
	}
}

// TestProofsReused: one Proofs making batch after batch (other ranges,
// other sizes, smaller after larger) gives every proof exactly as
// InclusionProof does: nothing of an earlier batch leaks into a later one.
func TestProofsReused(t *testing.T) {
	var tr Tree
	for i := range 5000 {
		tr.Append([]byte{byte(i), byte(i >> 8), 7})
	}
	var p Proofs
	x := uint64(12345)
	for range 60 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		size := 1 + x%tr.Size()
		first := (x >> 20) % size
		last := min(size-1, first+(x>>40)%1100)
		got, err := p.Make(&tr, first, last, size)
		if err != nil {
			t.Fatal(err)
		}
		for j := first; j <= last; j += 1 + (last-first)/50 {
			want, _ := tr.InclusionProof(j, size)
			g := got[j-first]
			if len(g) != len(want) {
				t.Fatalf("leaf %d of %d: %d hashes, want %d", j, size, len(g), len(want))
			}
			for k := range want {
				if g[k] != want[k] {
					t.Fatalf("leaf %d of %d (batch %d..%d): hash %d differs", j, size, first, last, k)
				}
			}
		}
	}
}

// TestProofsEveryRange checks the batched proofs of every range of
// leaves of every tree of up to 70 leaves against the reference PATH,
// with one Proofs reused throughout (the batches reuse the proofs of
// neighbouring leaves inside a complete subtree, and compute the first
// leaf of each subtree afresh).
func TestProofsEveryRange(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const maxLeaves = 70
	d := randLeaves(r, maxLeaves)
	var tr Tree
	for i := range d {
		tr.Append(d[i])
	}
	var p Proofs
	for n := 1; n <= maxLeaves; n++ {
		ref := make([][]Hash, n)
		for m := range ref {
			ref[m] = refPath(m, d[:n])
		}
		for first := 0; first < n; first++ {
			for last := first; last < n; last++ {
				batch, err := p.Make(&tr, uint64(first), uint64(last), uint64(n))
				if err != nil {
					t.Fatal(err)
				}
				for j, got := range batch {
					if want := ref[first+j]; !equalHashes(got, want) {
						t.Fatalf("Make(%d..%d, %d)[%d] = %v, want %v", first, last, n, j, got, want)
					}
				}
			}
		}
	}
}
