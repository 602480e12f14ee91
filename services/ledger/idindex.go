package ledger

import "hash/maphash"

// idIndex is one of the book's idempotency sets (credited score ids, or
// request ids), in memory only: nothing of it is published or stored. An
// id is found by a 64-bit maphash of its bytes (a per-index random seed)
// and then compared in full, so two ids with the same hash are told apart
// and the book's behaviour never depends on the seed. Each id keeps the
// points credited so far and its leaf index (credits; unused for
// requests).
//
// Nothing in it holds a pointer (the ids' bytes are copied into chunks,
// records refer to them by offset), so a set of millions of ids costs the
// garbage collector nothing to scan. Removal (Undo, and taking back a
// release or block that failed) is for the most recent ids: their records
// and bytes are reclaimed when they are the last ones added, as they are
// when ids are removed newest first; others are only unlinked.
type idIndex struct {
	seed   maphash.Seed
	heads  map[uint64]uint32 // hash -> 1 + index in recs of the newest id with that hash
	recs   []idRec
	chunks [][]byte // ids' bytes, back to back; a chunk is never reallocated
	// withExtra: the index keeps bytes beside each id (insertWith), their
	// length in place of points.
	withExtra bool
}

type idRec struct {
	off    uint64 // chunk<<32 | position of the id's bytes
	n      uint32 // the id's length
	next   uint32 // 1 + index of the next older id with the same hash, 0 for none
	points int64
	leaf   uint64
}

// idChunk is the size of a chunk of ids' bytes (ids are at most maxField
// bytes, so one always fits).
const idChunk = 1 << 20

func newIDIndex() idIndex {
	return idIndex{seed: maphash.MakeSeed(), heads: make(map[uint64]uint32)}
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
	for i := x.heads[h]; i != 0; {
		r := &x.recs[i-1]
		if int(r.n) == len(id) && string(x.bytes(r)) == id {
			return r
		}
		i = r.next
	}
	return nil
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
	x.recs = append(x.recs, idRec{off: off, n: uint32(len(id)), next: x.heads[h], points: points, leaf: leaf})
	x.heads[h] = uint32(len(x.recs))
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
	prev := uint32(0)
	for i := x.heads[h]; i != 0; {
		r := &x.recs[i-1]
		if int(r.n) != len(id) || string(x.bytes(r)) != id {
			prev, i = i, r.next
			continue
		}
		switch {
		case prev != 0:
			x.recs[prev-1].next = r.next
		case r.next != 0:
			x.heads[h] = r.next
		default:
			delete(x.heads, h)
		}
		if int(i) == len(x.recs) { // the newest: reclaim its record and bytes
			c := &x.chunks[r.off>>32]
			if p := uint32(r.off); int(r.off>>32) == len(x.chunks)-1 && int(p+r.n)+int(x.extraLen(r)) == len(*c) {
				*c = (*c)[:p]
			}
			x.recs = x.recs[:i-1]
		}
		return
	}
}
