package replay

import "unsafe"

// The compact storage shared by Index and Postings (docs/scoring.md,
// "Replay detection", "The index's layout"): fingerprints in fixed-size
// slots of chunked slices addressed by a uint32 id (0: none), their
// vehicle and date strings interned (one copy per vehicle and per date,
// reference counted), their (vehicle, date, trip) keys in an
// open-addressing table of slot ids, and the LSH band chains threaded
// through per-band head arrays indexed by the band key's low bits (the
// index's heads also hold a 32-bit tag, a Bloom filter of their chain's
// band keys, so a band value that no slot of the chain holds is mostly
// rejected without reading a slot). Every structure is a slice of
// fixed-size entries without pointers: no map entry, string or pointer
// per fingerprint.

// The layout stores a band as one uint32 (two signature values).
var _ = [1]struct{}{}[Rows-2]

// rowsOf is band b of sig as one uint32: Sig[2b] << 16 | Sig[2b+1].
func rowsOf(sig *[K]uint16, b int) uint32 {
	return uint32(sig[b*Rows])<<16 | uint32(sig[b*Rows+1])
}

// rowsKey is bandKey of a band b holding rows.
func rowsKey(b int, rows uint32) uint64 { return mix64(uint64(b)<<32 | uint64(rows)) }

// chunkBits: slots are allocated 1 << chunkBits at a time (no copy on
// growth, at most one partly used chunk).
const chunkBits = 10

// slots is the arena of Index's and Postings' fixed-size slots, addressed
// by uint32 ids 1 .. top (0 is "none"), allocated 1 << chunkBits at a
// time; a released id is reused before a new one is taken.
type slots[T any] struct {
	chunks [][]T
	free   []uint32
	top    uint32 // ids ever used: 1 .. top
}

// at is slot id (1 <= id <= top).
func (s *slots[T]) at(id uint32) *T {
	return &s.chunks[(id-1)>>chunkBits][(id-1)&(1<<chunkBits-1)]
}

// alloc returns the id of a zero slot: the last released, else a new one.
func (s *slots[T]) alloc() uint32 {
	if n := len(s.free); n > 0 {
		id := s.free[n-1]
		s.free = s.free[:n-1]
		return id
	}
	if int(s.top) == len(s.chunks)<<chunkBits {
		s.chunks = append(s.chunks, make([]T, 1<<chunkBits))
	}
	s.top++
	return s.top
}

// release zeroes slot id and makes its id free.
func (s *slots[T]) release(id uint32) {
	var zero T
	*s.at(id) = zero
	s.free = append(s.free, id)
}

// bytes is the heap the arena holds.
func (s *slots[T]) bytes() int {
	var zero T
	return len(s.chunks)*(1<<chunkBits)*int(unsafe.Sizeof(zero)) + 8*cap(s.chunks) + 4*cap(s.free)
}

// minHeads is the smallest head array per band (a power of two).
const minHeads = 16

// postLoad is the most chain entries per head of Postings, on average,
// before its head arrays double: after a doubling the load is over
// postLoad / 2, so the heads cost 4 / load bytes per entry, 1 to 2.
const postLoad = 4

// indexLoad is the same for Index, whose heads are 8 bytes (a slot id and
// a tag): 8 x Bands / load bytes per fingerprint, 32 to 64, and a chain
// of 4 to 8 slots that the tag lets Check skip unless it may hold the
// band value sought (about 1 in 10).
const indexLoad = 8

// tagBits are a band key's bits in a head's tag (a Bloom filter of the
// chain's band keys, 2 of 32 bits by the key's high bits; the head's index
// is its low bits).
func tagBits(k uint64) uint32 { return 1<<(k>>59) | 1<<(k>>54&31) }

// interner gives each distinct string a uint32 id (from 1) while it is
// referenced; ids of released strings are reused.
type interner struct {
	ids   map[string]uint32
	names []string // id - 1 -> the string
	refs  []int32
	free  []uint32
}

// id is s's id, 0 when s is not interned.
func (in *interner) id(s string) uint32 { return in.ids[s] }

// name is the string of id.
func (in *interner) name(id uint32) string { return in.names[id-1] }

// ref interns s (when new) and adds a reference to it.
func (in *interner) ref(s string) uint32 {
	id := in.ids[s]
	if id == 0 {
		if in.ids == nil {
			in.ids = map[string]uint32{}
		}
		if n := len(in.free); n > 0 {
			id = in.free[n-1]
			in.free = in.free[:n-1]
			in.names[id-1], in.refs[id-1] = s, 0
		} else {
			in.names = append(in.names, s)
			in.refs = append(in.refs, 0)
			id = uint32(len(in.names))
		}
		in.ids[s] = id
	}
	in.refs[id-1]++
	return id
}

// refID adds a reference to id when it is s's (nonzero), else interns s.
func (in *interner) refID(id uint32, s string) uint32 {
	if id == 0 {
		return in.ref(s)
	}
	in.refs[id-1]++
	return id
}

// unref drops a reference to id, releasing the string at none.
func (in *interner) unref(id uint32) {
	if in.refs[id-1]--; in.refs[id-1] > 0 {
		return
	}
	delete(in.ids, in.names[id-1])
	in.names[id-1] = ""
	in.free = append(in.free, id)
}

// bytes is the heap held: the map (~48 bytes an entry with its load), the
// slices, the strings.
func (in *interner) bytes() int {
	n := 48*len(in.ids) + 16*cap(in.names) + 4*cap(in.refs) + 4*cap(in.free)
	for _, s := range in.names {
		n += len(s)
	}
	return n
}

// key is a fingerprint's (vehicle, date, trip) as interned ids.
type key struct {
	veh, date uint32
	trip      uint16
}

func (k key) hash() uint64 {
	return mix64(uint64(k.veh)<<32 ^ uint64(k.date)<<16 ^ uint64(k.trip))
}

// keyTable finds a slot by its key: open addressing with linear probing
// over slot ids (0: empty), at most 3/4 full, deletion by backward shift
// (no tombstones). keyOf reads a slot's key.
// trips finds a trip's slot by its key (vehicle, date, trip): the key
// table of slot ids and the interned vehicle and date strings, the same
// in Index and Postings.
type trips struct {
	keys     keyTable
	vehicles interner
	dates    interner
}

// find returns the slot id of a trip's fingerprint, 0 when not held.
func (t *trips) find(vehicle, date string, trip uint16) uint32 {
	v, d := t.vehicles.id(vehicle), t.dates.id(date)
	if v == 0 || d == 0 {
		return 0
	}
	return t.keys.find(key{v, d, trip})
}

type keyTable struct {
	ids   []uint32
	n     int
	keyOf func(id uint32) key
}

// find returns the slot id holding k, 0 when none.
func (t *keyTable) find(k key) uint32 {
	if t.n == 0 {
		return 0
	}
	mask := uint64(len(t.ids) - 1)
	for i := k.hash() & mask; ; i = (i + 1) & mask {
		id := t.ids[i]
		if id == 0 || t.keyOf(id) == k {
			return id
		}
	}
}

// insert adds slot id (its key not held).
func (t *keyTable) insert(id uint32) {
	if 4*(t.n+1) > 3*len(t.ids) {
		old := t.ids
		t.ids = make([]uint32, max(16, 2*len(old)))
		for _, o := range old {
			if o != 0 {
				t.place(o)
			}
		}
	}
	t.place(id)
	t.n++
}

func (t *keyTable) place(id uint32) {
	mask := uint64(len(t.ids) - 1)
	i := t.keyOf(id).hash() & mask
	for t.ids[i] != 0 {
		i = (i + 1) & mask
	}
	t.ids[i] = id
}

// delete removes slot id (held under key k).
func (t *keyTable) delete(k key, id uint32) {
	mask := uint64(len(t.ids) - 1)
	i := k.hash() & mask
	for t.ids[i] != id {
		i = (i + 1) & mask
	}
	// Backward shift: move up every later entry of the run whose home is
	// not in (i, j].
	for j := (i + 1) & mask; t.ids[j] != 0; j = (j + 1) & mask {
		h := t.keyOf(t.ids[j]).hash() & mask
		if (j > i && (h <= i || h > j)) || (j < i && h <= i && h > j) {
			t.ids[i] = t.ids[j]
			i = j
		}
	}
	t.ids[i] = 0
	t.n--
}
