package ledger

import (
	"hash/maphash"
	"slices"
)

// idIndex is one of the book's idempotency sets (credited score ids, or
// request ids), in memory only: nothing of it is published or stored. An
// id is found by a maphash of its bytes (a per-index random seed) and then
// compared in full, so ids with the same hash are told apart and the
// book's behaviour never depends on the seed. Each id keeps the points
// credited so far and its leaf index (credits; unused for requests).
//
// The table is open addressing with linear probing: one 8-byte slot per
// id (a 32-bit tag of the hash and the record's index), at most half
// full, so an id not in the set (every new credit) costs one probe of a
// table of 16 bytes per id and no look at the records. Nothing in it
// holds a pointer (the ids' bytes are copied into chunks, records refer
// to them by offset), so a set of millions of ids costs the garbage
// collector nothing to scan. Removal (Undo, and taking back a release or
// block that failed) is for the most recent ids: their records and bytes
// are reclaimed when they are the last ones added, as they are when ids
// are removed newest first; others are only unlinked.
type idIndex struct {
	seed   maphash.Seed
	slots  []uint64 // tag<<32 | 1 + index in recs; 0: empty
	bits   uint     // len(slots) == 1 << bits
	used   int
	recs   []idRec
	chunks [][]byte // ids' bytes, back to back; a chunk is never reallocated
	// withExtra: the index keeps bytes beside each id (insertWith), their
	// length in place of points.
	withExtra bool
}

type idRec struct {
	off    uint64 // chunk<<32 | position of the id's bytes
	n      uint32 // the id's length
	tag    uint32 // the low 32 bits of the id's hash
	points int64
	leaf   uint64
}

// idChunk is the size of a chunk of ids' bytes (ids are at most maxField
// bytes, so one always fits).
const idChunk = 1 << 20

func newIDIndex() idIndex {
	return idIndex{seed: maphash.MakeSeed()}
}

// home is the first slot a tag probes (Fibonacci hashing of the tag).
func (x *idIndex) home(tag uint32) uint64 {
	return uint64((tag * 0x9E3779B9) >> (32 - x.bits))
}

// grow makes room for n more ids without growing the table again.
func (x *idIndex) grow(n int) {
	need := 2 * (x.used + n)
	if need <= len(x.slots) {
		return
	}
	bits := max(x.bits, 10)
	for 1<<bits < need {
		bits++
	}
	if bits > 32 {
		panic("ledger: id index over 2^31 ids")
	}
	old := x.slots
	x.slots, x.bits = make([]uint64, 1<<bits), bits
	mask := uint64(len(x.slots) - 1)
	for _, s := range old {
		if s == 0 {
			continue
		}
		i := x.home(uint32(s >> 32))
		for x.slots[i] != 0 {
			i = (i + 1) & mask
		}
		x.slots[i] = s
	}
}

// reserve makes room for n more records (grow is for the table), so that
// n inserts copy the records at most once: for a release of credits, whose
// ids are almost all new.
func (x *idIndex) reserve(n int) {
	x.recs = slices.Grow(x.recs, n)
}

func (x *idIndex) bytes(r *idRec) []byte {
	c := x.chunks[r.off>>32]
	p := uint32(r.off)
	return c[p : p+r.n]
}

// extraLen is the length of what insertWith kept beside r's id (0 in an
// index of credits or requests, whose points are points).
func (x *idIndex) extraLen(r *idRec) uint32 {
	if !x.withExtra {
		return 0
	}
	return uint32(r.points)
}

// find returns the record of id, or nil.
func (x *idIndex) find(id string) *idRec {
	return x.findHash(maphash.String(x.seed, id), id)
}

func (x *idIndex) findHash(h uint64, id string) *idRec {
	if _, s := x.slot(h, id); s != 0 {
		return &x.recs[uint32(s)-1]
	}
	return nil
}

// slot returns where id is in the table and its slot, or (where the
// probe ended, 0).
func (x *idIndex) slot(h uint64, id string) (uint64, uint64) {
	if x.used == 0 {
		return 0, 0
	}
	tag := uint32(h)
	mask := uint64(len(x.slots) - 1)
	for i := x.home(tag); ; i = (i + 1) & mask {
		s := x.slots[i]
		if s == 0 {
			return i, 0
		}
		if uint32(s>>32) != tag {
			continue
		}
		r := &x.recs[uint32(s)-1]
		if int(r.n) == len(id) && string(x.bytes(r)) == id {
			return i, s
		}
	}
}

// insertWith adds id with extra bytes kept beside it (extra, in place of
// points) unless the index holds id; it reports whether it did.
func (x *idIndex) insertWith(id, extra string, leaf uint64) bool {
	h := maphash.String(x.seed, id)
	if x.findHash(h, id) != nil {
		return false
	}
	x.withExtra = true
	x.addParts(h, id, extra, int64(len(extra)), leaf)
	return true
}

// extra is what insertWith kept beside r's id.
func (x *idIndex) extra(r *idRec) string {
	c := x.chunks[r.off>>32]
	p := uint32(r.off) + r.n
	return string(c[p : p+uint32(r.points)])
}

// add adds id, which must not be in the index, and returns its record.
func (x *idIndex) add(id string, points int64, leaf uint64) *idRec {
	return x.addHash(maphash.String(x.seed, id), id, points, leaf)
}

func (x *idIndex) addHash(h uint64, id string, points int64, leaf uint64) *idRec {
	return x.addParts(h, id, "", points, leaf)
}

func (x *idIndex) addParts(h uint64, id, extra string, points int64, leaf uint64) *idRec {
	n := len(x.chunks)
	if n == 0 || len(x.chunks[n-1])+len(id)+len(extra) > idChunk {
		x.chunks = append(x.chunks, make([]byte, 0, idChunk))
		n++
	}
	c := &x.chunks[n-1]
	off := uint64(n-1)<<32 | uint64(len(*c))
	*c = append(append(*c, id...), extra...)
	x.grow(1)
	tag := uint32(h)
	if len(x.recs) >= 1<<32-1 {
		panic("ledger: id index over 2^32 records")
	}
	x.recs = append(x.recs, idRec{off: off, n: uint32(len(id)), tag: tag, points: points, leaf: leaf})
	mask := uint64(len(x.slots) - 1)
	i := x.home(tag)
	for x.slots[i] != 0 {
		i = (i + 1) & mask
	}
	x.slots[i] = uint64(tag)<<32 | uint64(len(x.recs))
	x.used++
	return &x.recs[len(x.recs)-1]
}

// insert adds id unless the index holds it; it reports whether it did.
func (x *idIndex) insert(id string, points int64, leaf uint64) bool {
	h := maphash.String(x.seed, id)
	if x.findHash(h, id) != nil {
		return false
	}
	x.addHash(h, id, points, leaf)
	return true
}

// remove takes id out of the index (nothing if it is not in it).
func (x *idIndex) remove(id string) {
	x.removeHash(maphash.String(x.seed, id), id)
}

func (x *idIndex) removeHash(h uint64, id string) {
	i, s := x.slot(h, id)
	if s == 0 {
		return
	}
	// Backward-shift deletion: later slots of the probe run that may
	// move into the hole do, so every probe still finds its id.
	mask := uint64(len(x.slots) - 1)
	for j := (i + 1) & mask; x.slots[j] != 0; j = (j + 1) & mask {
		k := x.home(uint32(x.slots[j] >> 32))
		// The id at j may fill the hole at i unless its home is
		// cyclically in (i, j].
		if (j > i && (k <= i || k > j)) || (j < i && k <= i && k > j) {
			x.slots[i] = x.slots[j]
			i = j
		}
	}
	x.slots[i] = 0
	x.used--
	if idx := int(uint32(s)); idx == len(x.recs) { // the newest: reclaim its record and bytes
		r := &x.recs[idx-1]
		c := &x.chunks[r.off>>32]
		if p := uint32(r.off); int(r.off>>32) == len(x.chunks)-1 && int(p+r.n)+int(x.extraLen(r)) == len(*c) {
			*c = (*c)[:p]
		}
		x.recs = x.recs[:idx-1]
	}
}
