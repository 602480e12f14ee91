package merkle

import (
	"encoding/binary"
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
