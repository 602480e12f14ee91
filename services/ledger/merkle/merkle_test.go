package merkle

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// The eight leaf inputs, node hashes and roots below are copied from
// transparency-dev/merkle, testonly/constants.go (LeafInputs, NodeHashes,
// RootHashes), and the inclusion and consistency proofs from
// transparency-dev/merkle, proof/verify_test.go (inclusionProofs,
// consistencyProofs; leaf numbers there are 1-based, converted to 0-based
// indexes here). The same inputs and roots are kInputs and kSHA256Roots of
// google/certificate-transparency, cpp/merkletree/merkle_tree_test.cc.
var (
	vecLeaves = []string{"", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"}
	// vecRoots[n] is the root of the tree of the first n leaves.
	vecRoots = []string{
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
		"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
		"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
		"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
		"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
		"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
		"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
		"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
	}
	// vecLeafHashes[i] = HashLeaf(vecLeaves[i]) (NodeHashes level 0).
	vecLeafHashes = []string{
		"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
		"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
		"0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
		"07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
		"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
		"4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
		"b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
		"46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
	}
	vecInclusion = []struct {
		index, size uint64
		proof       []string
	}{
		{0, 8, []string{
			"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
			"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
			"6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
		}},
		{5, 8, []string{
			"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
			"ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
			"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
		}},
		{2, 3, []string{
			"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
		}},
		{1, 5, []string{
			"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
			"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
			"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
		}},
		{0, 1, nil},
	}
	vecConsistency = []struct {
		first, second uint64
		proof         []string
	}{
		{1, 1, nil},
		{1, 8, []string{
			"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
			"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
			"6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
		}},
		{6, 8, []string{
			"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
			"ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
			"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
		}},
		{2, 5, []string{
			"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
			"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
		}},
		{6, 7, []string{
			"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
			"b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
			"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
		}},
	}
)

func mustHash(t testing.TB, s string) Hash {
	t.Helper()
	h, err := ParseHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func mustHashes(t testing.TB, ss []string) []Hash {
	out := make([]Hash, 0, len(ss))
	for _, s := range ss {
		out = append(out, mustHash(t, s))
	}
	return out
}

func vectorTree(t *testing.T) *Tree {
	var tr Tree
	for _, l := range vecLeaves {
		b, err := hex.DecodeString(l)
		if err != nil {
			t.Fatal(err)
		}
		tr.Append(b)
	}
	return &tr
}

func TestVectorsRootsAndLeaves(t *testing.T) {
	var tr Tree
	if tr.Root() != mustHash(t, vecRoots[0]) {
		t.Fatalf("empty root %s", tr.Root())
	}
	for i, l := range vecLeaves {
		b, _ := hex.DecodeString(l)
		if got := tr.Append(b); got != mustHash(t, vecLeafHashes[i]) {
			t.Errorf("leaf %d hash %s, want %s", i, got, vecLeafHashes[i])
		}
		if got := tr.Root(); got != mustHash(t, vecRoots[i+1]) {
			t.Errorf("root at size %d = %s, want %s", i+1, got, vecRoots[i+1])
		}
	}
	for n := range vecRoots {
		got, err := tr.RootAt(uint64(n))
		if err != nil || got != mustHash(t, vecRoots[n]) {
			t.Errorf("RootAt(%d) = %s, %v; want %s", n, got, err, vecRoots[n])
		}
	}
}

func TestVectorsInclusion(t *testing.T) {
	tr := vectorTree(t)
	for _, v := range vecInclusion {
		got, err := tr.InclusionProof(v.index, v.size)
		if err != nil {
			t.Fatal(err)
		}
		want := mustHashes(t, v.proof)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("InclusionProof(%d, %d) = %v, want %v", v.index, v.size, got, want)
		}
		root := mustHash(t, vecRoots[v.size])
		leaf := mustHash(t, vecLeafHashes[v.index])
		if err := VerifyInclusion(v.index, v.size, leaf, want, root); err != nil {
			t.Errorf("VerifyInclusion(%d, %d): %v", v.index, v.size, err)
		}
		for _, bad := range corruptInclusion(v.index, v.size, want, root, leaf) {
			if err := VerifyInclusion(bad.index, bad.size, bad.leaf, bad.proof, bad.root); err == nil {
				t.Errorf("leaf %d size %d: %s verified", v.index, v.size, bad.desc)
			} else if !errors.Is(err, ErrVerify) {
				t.Errorf("%s: error %v is not ErrVerify", bad.desc, err)
			}
		}
	}
}

func TestVectorsConsistency(t *testing.T) {
	tr := vectorTree(t)
	for _, v := range vecConsistency {
		got, err := tr.ConsistencyProof(v.first, v.second)
		if err != nil {
			t.Fatal(err)
		}
		want := mustHashes(t, v.proof)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("ConsistencyProof(%d, %d) = %v, want %v", v.first, v.second, got, want)
		}
		r1, r2 := mustHash(t, vecRoots[v.first]), mustHash(t, vecRoots[v.second])
		if err := VerifyConsistency(v.first, v.second, want, r1, r2); err != nil {
			t.Errorf("VerifyConsistency(%d, %d): %v", v.first, v.second, err)
		}
		if len(want) == 0 {
			continue
		}
		for _, bad := range corruptConsistency(v.first, v.second, want, r1, r2) {
			if err := VerifyConsistency(bad.first, bad.second, bad.proof, bad.root1, bad.root2); err == nil {
				t.Errorf("%d..%d: %s verified", v.first, v.second, bad.desc)
			}
		}
	}
}

func TestVerifyConsistencyEdges(t *testing.T) {
	a, b := HashLeaf([]byte("a")), HashLeaf([]byte("b"))
	for _, c := range []struct {
		first, second uint64
		r1, r2        Hash
		proof         []Hash
		ok            bool
	}{
		{0, 0, a, b, nil, false},
		{0, 0, a, a, nil, true},
		{0, 1, a, b, nil, true},
		{1, 1, b, b, nil, true},
		{1, 0, a, b, nil, false},
		{2, 1, a, b, nil, false},
		{1, 2, a, b, nil, false},
		{0, 1, a, a, []Hash{EmptyRoot}, false},
		{1, 1, a, a, []Hash{EmptyRoot}, false},
	} {
		err := VerifyConsistency(c.first, c.second, c.proof, c.r1, c.r2)
		if (err == nil) != c.ok {
			t.Errorf("VerifyConsistency(%d, %d, %d hashes): err %v, want ok=%v", c.first, c.second, len(c.proof), err, c.ok)
		}
	}
	var tr Tree
	tr.Append(nil)
	if _, err := tr.InclusionProof(1, 1); !errors.Is(err, ErrRange) {
		t.Errorf("InclusionProof(1,1) err %v, want ErrRange", err)
	}
	if _, err := tr.ConsistencyProof(1, 2); !errors.Is(err, ErrRange) {
		t.Errorf("ConsistencyProof(1,2) err %v, want ErrRange", err)
	}
	if err := VerifyInclusion(0, 0, a, nil, a); err == nil {
		t.Error("inclusion in the empty tree verified")
	}
}

type badInclusion struct {
	index, size uint64
	proof       []Hash
	root, leaf  Hash
	desc        string
}

// corruptInclusion mirrors the probes of transparency-dev/merkle's
// corruptInclusionProof.
func corruptInclusion(index, size uint64, proof []Hash, root, leaf Hash) []badInclusion {
	other := HashLeaf([]byte("WrongLeaf"))
	out := []badInclusion{
		{index - 1, size, proof, root, leaf, "index-1"},
		{index + 1, size, proof, root, leaf, "index+1"},
		{index ^ 2, size, proof, root, leaf, "index^2"},
		{index, size * 2, proof, root, leaf, "size*2"},
		{index, size / 2, proof, root, leaf, "size/2"},
		{index, size, proof, root, other, "wrong leaf"},
		{index, size, proof, EmptyRoot, leaf, "empty root"},
		{index, size, append(append([]Hash{}, proof...), Hash{}), root, leaf, "trailing garbage"},
		{index, size, append(append([]Hash{}, proof...), root), root, leaf, "trailing root"},
		{index, size, append([]Hash{{}}, proof...), root, leaf, "preceding garbage"},
		{index, size, append([]Hash{root}, proof...), root, leaf, "preceding root"},
	}
	for i := range proof {
		p := append([]Hash{}, proof...)
		p[i][0] ^= 8
		out = append(out, badInclusion{index, size, p, root, leaf, fmt.Sprintf("proof[%d] bit flipped", i)})
	}
	if len(proof) > 0 {
		out = append(out, badInclusion{index, size, proof[:len(proof)-1], root, leaf, "removed component"})
	}
	return out
}

type badConsistency struct {
	first, second uint64
	proof         []Hash
	root1, root2  Hash
	desc          string
}

func corruptConsistency(first, second uint64, proof []Hash, r1, r2 Hash) []badConsistency {
	wrong := HashLeaf([]byte("WrongRoot"))
	out := []badConsistency{
		{first - 1, second, proof, r1, r2, "first-1"},
		{first + 1, second, proof, r1, r2, "first+1"},
		{first ^ 2, second, proof, r1, r2, "first^2"},
		{first, second * 2, proof, r1, r2, "second*2"},
		{first, second / 2, proof, r1, r2, "second/2"},
		{first, second, proof, wrong, r2, "wrong root1"},
		{first, second, proof, r1, wrong, "wrong root2"},
		{first, second, proof, r2, r1, "swapped roots"},
		{first, second, nil, r1, r2, "empty proof"},
		{first, second, append(append([]Hash{}, proof...), Hash{}), r1, r2, "trailing garbage"},
		{first, second, append(append([]Hash{}, proof...), r1), r1, r2, "trailing root1"},
		{first, second, append([]Hash{{}}, proof...), r1, r2, "preceding garbage"},
		{first, second, append([]Hash{proof[0]}, proof...), r1, r2, "preceding proof[0]"},
		{first, second, proof[:len(proof)-1], r1, r2, "truncated"},
	}
	for i := range proof {
		p := append([]Hash{}, proof...)
		p[i][0] ^= 16
		out = append(out, badConsistency{first, second, p, r1, r2, fmt.Sprintf("proof[%d] bit flipped", i)})
	}
	return out
}

// ---- A plain recursive reference implementation of RFC 6962 section 2.1.

func refMTH(d [][]byte) Hash {
	n := len(d)
	if n == 0 {
		return sha256.Sum256(nil)
	}
	if n == 1 {
		return sha256.Sum256(append([]byte{0}, d[0]...))
	}
	k := 1
	for k*2 < n {
		k *= 2
	}
	l, r := refMTH(d[:k]), refMTH(d[k:])
	return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...))
}

func refPath(m int, d [][]byte) []Hash {
	n := len(d)
	if n <= 1 {
		return nil
	}
	k := 1
	for k*2 < n {
		k *= 2
	}
	if m < k {
		return append(refPath(m, d[:k]), refMTH(d[k:]))
	}
	return append(refPath(m-k, d[k:]), refMTH(d[:k]))
}

func refSubproof(m int, d [][]byte, b bool) []Hash {
	n := len(d)
	if m == n {
		if b {
			return nil
		}
		return []Hash{refMTH(d)}
	}
	k := 1
	for k*2 < n {
		k *= 2
	}
	if m <= k {
		return append(refSubproof(m, d[:k], b), refMTH(d[k:]))
	}
	return append(refSubproof(m-k, d[k:], false), refMTH(d[:k]))
}

func randLeaves(r *rand.Rand, n int) [][]byte {
	d := make([][]byte, n)
	for i := range d {
		d[i] = make([]byte, r.IntN(40))
		for j := range d[i] {
			d[i][j] = byte(r.Uint32())
		}
	}
	return d
}

func equalHashes(a, b []Hash) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestAgainstReference checks roots, inclusion and consistency proofs of the
// Tree against the reference on random trees of 1..2,000 leaves: every size
// up to 70 exhaustively, and 120 random sizes, indexes and past sizes above it.
func TestAgainstReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const maxLeaves = 2000
	d := randLeaves(r, maxLeaves)
	var tr Tree
	for i := range d {
		tr.Append(d[i])
	}
	check := func(n, m, first int) {
		root := refMTH(d[:n])
		got, err := tr.RootAt(uint64(n))
		if err != nil || got != root {
			t.Fatalf("RootAt(%d) = %s, %v; want %s", n, got, err, root)
		}
		want := refPath(m, d[:n])
		proof, err := tr.InclusionProof(uint64(m), uint64(n))
		if err != nil || !equalHashes(proof, want) {
			t.Fatalf("InclusionProof(%d, %d) = %v, %v; want %v", m, n, proof, err, want)
		}
		if err := VerifyInclusion(uint64(m), uint64(n), HashLeaf(d[m]), proof, root); err != nil {
			t.Fatalf("VerifyInclusion(%d, %d): %v", m, n, err)
		}
		if first > 0 && first < n {
			cwant := refSubproof(first, d[:n], true)
			cp, err := tr.ConsistencyProof(uint64(first), uint64(n))
			if err != nil || !equalHashes(cp, cwant) {
				t.Fatalf("ConsistencyProof(%d, %d) = %v, %v; want %v", first, n, cp, err, cwant)
			}
			root1 := refMTH(d[:first])
			if err := VerifyConsistency(uint64(first), uint64(n), cp, root1, root); err != nil {
				t.Fatalf("VerifyConsistency(%d, %d): %v", first, n, err)
			}
			if len(cp) > 0 {
				bad := append([]Hash{}, cp...)
				bad[r.IntN(len(bad))][r.IntN(HashSize)] ^= 1
				if VerifyConsistency(uint64(first), uint64(n), bad, root1, root) == nil {
					t.Fatalf("corrupted consistency proof %d..%d verified", first, n)
				}
			}
		}
	}
	for n := 1; n <= 70; n++ {
		for m := 0; m < n; m++ {
			check(n, m, m+1)
		}
	}
	for i := 0; i < 120; i++ {
		n := 71 + r.IntN(maxLeaves-70)
		check(n, r.IntN(n), 1+r.IntN(n))
	}
	check(maxLeaves, maxLeaves-1, maxLeaves-1)
	// Batched proofs of a range equal the single ones.
	for i := 0; i < 80; i++ {
		n := 1 + r.IntN(maxLeaves)
		first := r.IntN(n)
		last := first + r.IntN(min(n-first, 40))
		if i >= 50 { // a block's worth, often up to the tree's end (as the ledger writer asks)
			first = r.IntN(n)
			last = min(n-1, first+r.IntN(1100))
			if i%2 == 0 {
				last = n - 1
			}
		}
		batch, err := tr.InclusionProofs(uint64(first), uint64(last), uint64(n))
		if err != nil {
			t.Fatal(err)
		}
		for j, got := range batch {
			want := refPath // the reference, or for most of a long range the single proof (itself checked above)
			if i >= 50 && j%37 != 0 {
				want = func(m int, _ [][]byte) []Hash { p, _ := tr.InclusionProof(uint64(m), uint64(n)); return p }
			}
			if want := want(first+j, d[:n]); !equalHashes(got, want) {
				t.Fatalf("InclusionProofs(%d..%d, %d)[%d] = %v, want %v", first, last, n, j, got, want)
			}
		}
	}
	// Truncating to any size and appending again gives the same tree.
	for i := 0; i < 100; i++ {
		var tt Tree
		n := 1 + r.IntN(300)
		for j := 0; j < n; j++ {
			tt.Append(d[j])
		}
		m := r.IntN(n + 1)
		if err := tt.Truncate(uint64(m)); err != nil {
			t.Fatal(err)
		}
		if got := tt.Root(); got != refMTH(d[:m]) {
			t.Fatalf("Truncate(%d) of %d: root %s", m, n, got)
		}
		for j := m; j < n; j++ {
			tt.Append(d[j])
		}
		if got := tt.Root(); got != refMTH(d[:n]) {
			t.Fatalf("Truncate(%d) of %d then append: root %s", m, n, got)
		}
		if p, err := tt.InclusionProof(uint64(n-1), uint64(n)); err != nil || !equalHashes(p, refPath(n-1, d[:n])) {
			t.Fatalf("proof after truncate: %v", err)
		}
	}
	// A tree built leaf by leaf agrees with the reference at every size.
	var inc Tree
	for n := 1; n <= 300; n++ {
		inc.Append(d[n-1])
		if inc.Root() != refMTH(d[:n]) {
			t.Fatalf("incremental root at %d differs", n)
		}
	}
}

func FuzzVerifyInclusion(f *testing.F) {
	f.Add(uint64(1), uint64(5), []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, index, size uint64, raw []byte) {
		var proof []Hash
		for len(raw) >= HashSize {
			var h Hash
			copy(h[:], raw)
			proof = append(proof, h)
			raw = raw[HashSize:]
		}
		// Must never panic; a random proof must not verify against EmptyRoot.
		if VerifyInclusion(index, size, HashLeaf(raw), proof, EmptyRoot) == nil {
			t.Fatalf("random proof verified")
		}
	})
}
