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

// TestKeepRecent: a tree that keeps the nodes of each run of appends
// (KeepRecent before each, as the ledger writer does per release), with
// truncations between runs, gives the same roots, proofs, batched proofs
// and tiles as one that never keeps any, and it does keep nodes.
func TestKeepRecent(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	d := randLeaves(r, 4000)
	var plain, kept Tree
	var pp, pk Proofs
	n, maxKept := 0, 0
	for round := 0; n < len(d); round++ {
		kept.KeepRecent()
		start := n
		for k := 1 + r.IntN(600); k > 0 && n < len(d); k-- {
			plain.Append(d[n])
			kept.Append(d[n])
			n++
		}
		if len(kept.recent) > 1 {
			maxKept = max(maxKept, len(kept.recent[1]))
		}
		size := uint64(n)
		if got, want := kept.Root(), plain.Root(); got != want {
			t.Fatalf("round %d: root %s, want %s", round, got, want)
		}
		for range 5 {
			m := uint64(r.IntN(n))
			s := m + 1 + uint64(r.IntN(n-int(m)))
			a, err1 := kept.InclusionProof(m, s)
			b, err2 := plain.InclusionProof(m, s)
			if err1 != nil || err2 != nil || !equalHashes(a, b) {
				t.Fatalf("round %d: InclusionProof(%d, %d) = %v, %v; want %v, %v", round, m, s, a, err1, b, err2)
			}
			ra, _ := kept.RootAt(s)
			rb, _ := plain.RootAt(s)
			if ra != rb {
				t.Fatalf("round %d: RootAt(%d) differs", round, s)
			}
		}
		// The run's blocks, as the writer makes their proofs.
		for first := start; first < n; first += 100 {
			last := min(first+99, n-1)
			a, err1 := pk.Make(&kept, uint64(first), uint64(last), size)
			b, err2 := pp.Make(&plain, uint64(first), uint64(last), size)
			if err1 != nil || err2 != nil || len(a) != len(b) {
				t.Fatalf("round %d: Make(%d..%d): %v, %v", round, first, last, err1, err2)
			}
			for j := range a {
				if !equalHashes(a[j], b[j]) {
					t.Fatalf("round %d: Make(%d..%d)[%d] differs", round, first, last, j)
				}
			}
		}
		for level := uint(1); level < 4; level++ {
			if w := size >> level; w > 0 {
				a, err1 := kept.AppendNodes(nil, level, 0, w)
				b, err2 := plain.AppendNodes(nil, level, 0, w)
				if err1 != nil || err2 != nil || string(a) != string(b) {
					t.Fatalf("round %d: AppendNodes(level %d) differs: %v, %v", round, level, err1, err2)
				}
			}
		}
		if round%4 == 3 { // take some leaves back, then go on
			cut := uint64(n - r.IntN(min(n, 300)))
			if err := kept.Truncate(cut); err != nil {
				t.Fatal(err)
			}
			if err := plain.Truncate(cut); err != nil {
				t.Fatal(err)
			}
			n = int(cut)
		}
	}
	if maxKept < 100 {
		t.Fatalf("at most %d nodes of level 1 kept: KeepRecent keeps nothing", maxKept)
	}
}
