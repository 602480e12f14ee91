// Package merkle is an append-only Merkle tree exactly as RFC 6962 / RFC 9162
// define it (leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || left ||
// right)), with inclusion and consistency proofs for any past tree size and
// the functions that verify them. It is pure: no I/O, no clock.
//
// The tree keeps the leaf hashes and every fourth level of internal nodes
// (levels 0, 4, 8, ...); nodes of the levels in between are recomputed from
// the stored level below them on demand (at most 7 hashes each). That costs
// about 34 bytes per leaf instead of 64 for all levels.
package merkle

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"slices"
)

// HashSize is the size of a SHA-256 hash.
const HashSize = sha256.Size

// Hash is one SHA-256 node hash.
type Hash [HashSize]byte

// String returns the hash in lower-case hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// ParseHash decodes a hash from 64 hex digits.
func ParseHash(s string) (Hash, error) {
	var h Hash
	b, err := hex.DecodeString(s)
	if err != nil {
		return h, fmt.Errorf("hash %q: %w", s, err)
	}
	if len(b) != HashSize {
		return h, fmt.Errorf("hash %q: %d bytes, want %d", s, len(b), HashSize)
	}
	copy(h[:], b)
	return h, nil
}

// EmptyRoot is the root of the empty tree: SHA-256 of the empty string.
var EmptyRoot = Hash(sha256.Sum256(nil))

// HashLeaf returns SHA-256(0x00 || data).
func HashLeaf(data []byte) Hash {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(data)
	var out Hash
	h.Sum(out[:0])
	return out
}

// HashChildren returns SHA-256(0x01 || left || right).
func HashChildren(left, right Hash) Hash {
	var buf [1 + 2*HashSize]byte
	buf[0] = 1
	copy(buf[1:], left[:])
	copy(buf[1+HashSize:], right[:])
	return sha256.Sum256(buf[:])
}

// Errors returned for proofs that do not apply or do not verify.
var (
	ErrRange  = errors.New("merkle: index or size out of range")
	ErrVerify = errors.New("merkle: proof does not verify")
)

// stride: levels 0, stride, 2*stride, ... are stored.
const stride = 4

// Tree is an append-only RFC 6962 Merkle tree. The zero value is an empty
// tree ready to use. A Tree is not safe for concurrent writes; concurrent
// readers need the caller's lock against a writer.
type Tree struct {
	size     uint64
	levels   [][]Hash // levels[j]: complete nodes of level j*stride, in index order
	frontier []Hash   // frontier[k]: the complete subtree of level k on the right edge, if bit k of size is set
	// recent, after KeepRecent, holds the nodes of the levels that are
	// not stored which completed since: recent[l] the nodes of level l
	// from index recentLo[l] on, in index order (they complete in order).
	keep     bool
	recent   [][]Hash
	recentLo []uint64
}

// KeepRecent makes the tree keep, until the next KeepRecent or Truncate,
// the nodes of the levels it does not store (levels not a multiple of 4)
// that complete from now on: a writer that appends a release and then
// makes the inclusion proofs of its blocks finds them there instead of
// hashing them again (about 0.9 hashes per leaf, most of a block's proof
// work). They take about 28 bytes per leaf appended since; the storage
// is reused by the next KeepRecent.
func (t *Tree) KeepRecent() {
	t.keep = true
	for l := range t.recent {
		t.recent[l] = t.recent[l][:0]
	}
}

// keepNode records h, node index of level (not a stored level), as it
// completes.
func (t *Tree) keepNode(level int, index uint64, h Hash) {
	if level >= len(t.recent) {
		t.recent = slices.Grow(t.recent, level+1-len(t.recent))[:level+1]
		t.recentLo = slices.Grow(t.recentLo, level+1-len(t.recentLo))[:level+1]
	}
	if len(t.recent[level]) == 0 {
		t.recentLo[level] = index
	}
	t.recent[level] = append(t.recent[level], h)
}

// Size is the number of leaves.
func (t *Tree) Size() uint64 { return t.size }

// Reserve grows the leaf storage so that n leaves fit without copying.
func (t *Tree) Reserve(n uint64) {
	if len(t.levels) == 0 {
		t.levels = append(t.levels, nil)
	}
	if uint64(cap(t.levels[0])) < n {
		l := make([]Hash, len(t.levels[0]), n)
		copy(l, t.levels[0])
		t.levels[0] = l
	}
}

// Grow makes room for n more leaves without reallocating the leaf level
// more than once: when it must grow, it grows to at least 1.5 times its
// size (Append's own growth copies the whole level every 25 %).
func (t *Tree) Grow(n int) {
	if n <= 0 {
		return
	}
	if len(t.levels) == 0 {
		t.levels = append(t.levels, nil)
	}
	need := uint64(len(t.levels[0])) + uint64(n)
	if uint64(cap(t.levels[0])) >= need {
		return
	}
	t.Reserve(max(need, uint64(len(t.levels[0]))*3/2))
}

// Append adds the entry data as the next leaf and returns its leaf hash.
func (t *Tree) Append(data []byte) Hash {
	h := HashLeaf(data)
	t.AppendHash(h)
	return h
}

// AppendHash adds a leaf by its leaf hash.
func (t *Tree) AppendHash(leaf Hash) {
	if len(t.levels) == 0 {
		t.levels = append(t.levels, nil)
	}
	t.levels[0] = append(t.levels[0], leaf)
	cur, level, idx := leaf, 0, t.size
	for idx&1 == 1 {
		cur = HashChildren(t.frontier[level], cur)
		level++
		idx >>= 1
		if level%stride == 0 {
			j := level / stride
			if len(t.levels) == j {
				t.levels = append(t.levels, nil)
			}
			t.levels[j] = append(t.levels[j], cur)
		} else if t.keep {
			t.keepNode(level, idx, cur)
		}
	}
	if len(t.frontier) == level {
		t.frontier = append(t.frontier, cur)
	} else {
		t.frontier[level] = cur
	}
	t.size++
}

// Root is the root of the current tree.
func (t *Tree) Root() Hash {
	if t.size == 0 {
		return EmptyRoot
	}
	var acc Hash
	first := true
	for k := 0; k < len(t.frontier); k++ {
		if t.size&(1<<uint(k)) == 0 {
			continue
		}
		if first {
			acc, first = t.frontier[k], false
		} else {
			acc = HashChildren(t.frontier[k], acc)
		}
	}
	return acc
}

// LeafHash returns the hash of leaf i.
func (t *Tree) LeafHash(i uint64) (Hash, error) {
	if i >= t.size {
		return Hash{}, fmt.Errorf("leaf %d of tree size %d: %w", i, t.size, ErrRange)
	}
	return t.levels[0][i], nil
}

// RootAt is the root of the tree when it had size leaves.
func (t *Tree) RootAt(size uint64) (Hash, error) {
	if size > t.size {
		return Hash{}, fmt.Errorf("root at size %d of tree size %d: %w", size, t.size, ErrRange)
	}
	if size == 0 {
		return EmptyRoot, nil
	}
	return t.mth(0, size), nil
}

// calc computes nodes, subtree hashes and proofs over a tree, optionally
// remembering what it computed (memo) so many proofs against one tree size
// share their work.
type calc struct {
	t      *Tree
	memo   []nodeWindow       // by level: nodes of non-stored levels near a run of leaves
	ranges map[[2]uint64]Hash // (lo, n) -> MTH of an incomplete range
	// edge remembers MTH(D[lo:size]) of the incomplete ranges that end at
	// size (every one an inclusion proof in the tree of size asks for),
	// by bits.Len64(size-lo): a slice instead of the ranges map.
	size uint64
	edge []edgeRange
}

type edgeRange struct {
	lo uint64
	h  Hash
	ok bool
}

// nodeWindow remembers the computed nodes of one level whose index is in
// [lo, lo+len(h)); a zero hash is "not computed" (a node that is really
// zero is only computed again).
type nodeWindow struct {
	lo uint64
	h  []Hash
}

// memoFor makes c remember the non-stored nodes of every level near the
// leaves first..last (the nodes their proofs and the recomputed levels
// below those need): a slice per level instead of a map.
// The windows' storage (c.memo on entry, from an earlier batch) is
// reused and cleared.
func (c *calc) memoFor(first, last, size uint64) {
	const margin = 1 << stride // children of a sibling, down to the stored level
	top := uint(bits.Len64(size))
	old := c.memo
	c.memo = make([]nodeWindow, top)
	for level := uint(1); level < top; level++ {
		if level%stride == 0 {
			continue
		}
		lo, hi := first>>level, last>>level
		lo -= min(lo, margin)
		hi += margin
		if hi-lo > 1<<20 {
			continue
		}
		var h []Hash
		if int(level) < len(old) && uint64(cap(old[level].h)) >= hi-lo+1 {
			h = old[level].h[:hi-lo+1]
			clear(h)
		} else {
			h = make([]Hash, hi-lo+1)
		}
		c.memo[level] = nodeWindow{lo: lo, h: h}
	}
}

// node is the complete node of level at index (its leaves all present).
func (c *calc) node(level uint, index uint64) Hash {
	if level%stride == 0 {
		return c.t.levels[level/stride][index]
	}
	if t := c.t; t.keep && int(level) < len(t.recent) && index >= t.recentLo[level] && index-t.recentLo[level] < uint64(len(t.recent[level])) {
		return t.recent[level][index-t.recentLo[level]]
	}
	if c.memo == nil || int(level) >= len(c.memo) {
		return HashChildren(c.node(level-1, 2*index), c.node(level-1, 2*index+1))
	}
	w := &c.memo[level]
	if index < w.lo || index-w.lo >= uint64(len(w.h)) {
		return HashChildren(c.node(level-1, 2*index), c.node(level-1, 2*index+1))
	}
	p := &w.h[index-w.lo]
	if *p == (Hash{}) {
		*p = HashChildren(c.node(level-1, 2*index), c.node(level-1, 2*index+1))
	}
	return *p
}

// mth is MTH(D[lo:lo+n]) for n >= 1 where the range lies inside the tree
// and, as in every range the RFC algorithms ask for, a power-of-two range
// starts at a multiple of its size.
func (c *calc) mth(lo, n uint64) Hash {
	if n&(n-1) == 0 && lo%n == 0 {
		level := uint(bits.TrailingZeros64(n))
		return c.node(level, lo>>level)
	}
	if c.edge != nil && lo+n == c.size {
		// The incomplete ranges ending at size have distinct lengths'
		// bit lengths: size-lo keeps the low bits of size below one.
		p := &c.edge[bits.Len64(n)]
		if p.ok && p.lo == lo {
			return p.h
		}
		k := largestPow2Below(n)
		h := HashChildren(c.mth(lo, k), c.mth(lo+k, n-k))
		*p = edgeRange{lo: lo, h: h, ok: true}
		return h
	}
	if c.ranges != nil {
		if h, ok := c.ranges[[2]uint64{lo, n}]; ok {
			return h
		}
	}
	k := largestPow2Below(n)
	h := HashChildren(c.mth(lo, k), c.mth(lo+k, n-k))
	if c.ranges != nil {
		c.ranges[[2]uint64{lo, n}] = h
	}
	return h
}

func (t *Tree) mth(lo, n uint64) Hash {
	c := calc{t: t}
	return c.mth(lo, n)
}

// largestPow2Below returns the largest power of two strictly less than n (n >= 2).
func largestPow2Below(n uint64) uint64 {
	return 1 << (bits.Len64(n-1) - 1)
}

// InclusionProof returns PATH(index, D[0:size]) of RFC 9162 section 2.1.3.1:
// the audit path of leaf index in the tree of the given (past or current)
// size, from the leaf's sibling upwards.
func (t *Tree) InclusionProof(index, size uint64) ([]Hash, error) {
	if size > t.size || index >= size {
		return nil, fmt.Errorf("inclusion of leaf %d in size %d (tree size %d): %w", index, size, t.size, ErrRange)
	}
	c := calc{t: t}
	return c.path(make([]Hash, 0, bits.Len64(size)), index, 0, size), nil
}

// InclusionProofs returns the inclusion proofs of leaves first..last (a
// block's entries) in the tree of size, sharing the nodes they have in
// common: about one hash per leaf instead of dozens.
func (t *Tree) InclusionProofs(first, last, size uint64) ([][]Hash, error) {
	var p Proofs
	return p.Make(t, first, last, size)
}

// Proofs makes batches of inclusion proofs (as Tree.InclusionProofs)
// into storage it reuses from one batch to the next: a writer that
// encodes each batch before it asks for the next allocates nothing per
// proof. The zero value is ready to use.
type Proofs struct {
	all  []Hash
	out  [][]Hash
	memo []nodeWindow
	edge []edgeRange
}

// Make returns the inclusion proofs of leaves first..last in the tree of
// size. They are valid until the next call of Make.
func (p *Proofs) Make(t *Tree, first, last, size uint64) ([][]Hash, error) {
	if size > t.size || first > last || last >= size {
		return nil, fmt.Errorf("inclusion of leaves %d..%d in size %d (tree size %d): %w", first, last, size, t.size, ErrRange)
	}
	if p.edge == nil {
		p.edge = make([]edgeRange, 65)
	}
	clear(p.edge)
	c := calc{t: t, ranges: map[[2]uint64]Hash{}, size: size, edge: p.edge, memo: p.memo}
	c.memoFor(first, last, size)
	p.memo = c.memo
	// Every proof is at most bits.Len64(size) hashes: one backing array
	// for all of them, each proof capped at its own length.
	n := int(last - first + 1)
	if need := n * bits.Len64(size); cap(p.all) < need {
		p.all = make([]Hash, 0, need)
	}
	if cap(p.out) < n {
		p.out = make([][]Hash, 0, n)
	}
	all, out := p.all[:0], p.out[:0]
	// Consecutive leaves share most of their proof: a leaf's path is the
	// siblings inside the complete subtree the RFC's descent ends in
	// (sibling l is node(l, (i>>l)^1)), then the ranges beside the
	// descent above it. Leaf i in the same complete subtree as leaf i-1
	// has the proof of i-1 from level bits.Len64((i-1)^i) up (their
	// ancestors there are one); only the levels below are looked up.
	var subEnd uint64 // the end of the previous leaf's complete subtree
	for i := first; i <= last; i++ {
		at := len(all)
		if i > first && i < subEnd {
			prev := out[len(out)-1]
			shared := bits.Len64((i - 1) ^ i)
			for l := range shared {
				all = append(all, c.node(uint(l), (i>>uint(l))^1))
			}
			all = append(all, prev[shared:]...)
		} else {
			all = c.path(all, i, 0, size)
			_, subEnd = completeSubtree(i, size)
		}
		out = append(out, all[at:len(all):len(all)])
	}
	p.all, p.out = all, out
	return out, nil
}

// completeSubtree is the complete subtree [lo, end) that PATH's descent
// towards leaf m in the tree of size leaves ends in: its proof's first
// bits.Len64(end-lo)-1 hashes are the siblings inside it.
func completeSubtree(m, size uint64) (lo, end uint64) {
	n := size
	for n&(n-1) != 0 {
		k := largestPow2Below(n)
		if m-lo < k {
			n = k
			break
		}
		lo, n = lo+k, n-k
	}
	return lo, lo + n
}

func (c *calc) path(dst []Hash, m, lo, n uint64) []Hash {
	if n == 1 {
		return dst
	}
	k := largestPow2Below(n)
	if m < k {
		dst = c.path(dst, m, lo, k)
		return append(dst, c.mth(lo+k, n-k))
	}
	dst = c.path(dst, m-k, lo+k, n-k)
	return append(dst, c.mth(lo, k))
}

// ConsistencyProof returns PROOF(first, D[0:second]) of RFC 9162 section
// 2.1.4.1. It is empty when first is 0 or first == second.
func (t *Tree) ConsistencyProof(first, second uint64) ([]Hash, error) {
	if second > t.size || first > second {
		return nil, fmt.Errorf("consistency %d..%d (tree size %d): %w", first, second, t.size, ErrRange)
	}
	if first == 0 || first == second {
		return []Hash{}, nil
	}
	c := calc{t: t}
	return c.subproof(make([]Hash, 0, bits.Len64(second)+1), first, 0, second, true), nil
}

func (c *calc) subproof(dst []Hash, m, lo, n uint64, b bool) []Hash {
	if m == n {
		if b {
			return dst
		}
		return append(dst, c.mth(lo, n))
	}
	k := largestPow2Below(n)
	if m <= k {
		dst = c.subproof(dst, m, lo, k, b)
		return append(dst, c.mth(lo+k, n-k))
	}
	dst = c.subproof(dst, m-k, lo+k, n-k, false)
	return append(dst, c.mth(lo, k))
}

// MemoryBytes is the memory held by the tree's hashes (capacity, not length).
func (t *Tree) MemoryBytes() uint64 {
	var n uint64
	for _, l := range t.levels {
		n += uint64(cap(l)) * HashSize
	}
	for _, l := range t.recent {
		n += uint64(cap(l)) * HashSize
	}
	return n + uint64(cap(t.frontier))*HashSize
}

// Truncate shrinks the tree to its first n leaves, as if the later ones had
// never been appended (the ledger writer undoes blocks of an aborted
// transaction this way).
func (t *Tree) Truncate(n uint64) error {
	if n > t.size {
		return fmt.Errorf("truncate to %d leaves of %d: %w", n, t.size, ErrRange)
	}
	t.keep = false // the kept nodes may cover leaves cut off: none are used until KeepRecent
	for l := range t.recent {
		t.recent[l] = t.recent[l][:0]
	}
	for j := range t.levels {
		t.levels[j] = t.levels[j][:n>>(uint(j)*stride)]
	}
	frontier := make([]Hash, bits.Len64(n))
	c := calc{t: t}
	start := uint64(0)
	for k := bits.Len64(n) - 1; k >= 0; k-- {
		if n&(1<<uint(k)) != 0 {
			frontier[k] = c.node(uint(k), start>>uint(k))
			start += 1 << uint(k)
		}
	}
	t.frontier = frontier
	t.size = n
	return nil
}

// AppendNodes appends to dst the n complete nodes of level (0: the leaf
// hashes) from index first on, 32 bytes each, and returns it: the bytes
// of a C2SP tlog-tiles tile (level 8L, n hashes). Levels that are
// multiples of 4 are stored and copied; others are recomputed. A node
// whose leaves are not all in the tree is ErrRange.
func (t *Tree) AppendNodes(dst []byte, level uint, first, n uint64) ([]byte, error) {
	if level >= 64 || n > (^uint64(0)>>level) || first > (^uint64(0)>>level)-n || (first+n)<<level > t.size {
		return dst, fmt.Errorf("%d nodes of level %d from %d, tree size %d: %w", n, level, first, t.size, ErrRange)
	}
	c := calc{t: t}
	for i := first; i < first+n; i++ {
		h := c.node(level, i)
		dst = append(dst, h[:]...)
	}
	return dst, nil
}
