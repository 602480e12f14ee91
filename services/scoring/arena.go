package scoring

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
)

// arena holds variable-length records (a vehicle id and a cold day) for
// Windows' slots without a Go object per record: records are appended to
// 1 MiB chunks, each as a uvarint length and its bytes, and named by a
// uint32 ref (chunk << arenaBits | offset). A freed record is only counted
// (dead, per chunk); when the dead bytes exceed 1/16 of the live ones,
// Windows.compact moves the live records out of the chunks with the most
// dead bytes, chunk by chunk, and releases those chunks, so after a Flush
// the arena holds at most 17/16 of its live bytes (or 1 MiB of dead ones),
// and never two copies of itself.
type arena struct {
	chunks     [][]byte // nil: released (its index is in spare)
	chunkLive  []int    // live bytes per chunk
	spare      []int    // released chunk indexes, reused before new ones
	next       int      // 1 + the chunk taking puts (0: none yet)
	live, dead int
}

const (
	arenaBits  = 20
	arenaChunk = 1 << arenaBits
	noRef      = ^uint32(0)
)

func (a *arena) put(b []byte) uint32 {
	size := uvarintLen(uint64(len(b))) + len(b)
	k := a.next - 1
	if k < 0 || cap(a.chunks[k])-len(a.chunks[k]) < size {
		k = a.newChunk(max(arenaChunk, size))
	}
	c := a.chunks[k]
	off := len(c)
	c = binary.AppendUvarint(c, uint64(len(b)))
	a.chunks[k] = append(c, b...)
	a.chunkLive[k] += size
	a.live += size
	return uint32(k)<<arenaBits | uint32(off)
}

// newChunk starts a chunk of capacity n and makes it the one taking puts.
func (a *arena) newChunk(n int) int {
	var k int
	if m := len(a.spare); m > 0 {
		k, a.spare = a.spare[m-1], a.spare[:m-1]
	} else {
		if len(a.chunks) >= 1<<(32-arenaBits)-1 {
			panic("scoring: open-day arena beyond 4 GiB")
		}
		a.chunks, a.chunkLive = append(a.chunks, nil), append(a.chunkLive, 0)
		k = len(a.chunks) - 1
	}
	a.chunks[k] = make([]byte, 0, n)
	a.next = k + 1
	return k
}

// release drops chunk k once its live records were moved: what it held,
// live or dead, no longer counts.
func (a *arena) release(k int) {
	a.live -= a.chunkLive[k]
	a.dead -= len(a.chunks[k]) - a.chunkLive[k]
	a.chunks[k], a.chunkLive[k] = nil, 0
	a.spare = append(a.spare, k)
	if a.next == k+1 {
		a.next = 0
	}
}

// get returns a record's bytes (valid until its chunk is released).
func (a *arena) get(ref uint32) []byte {
	c := a.chunks[ref>>arenaBits][ref&(arenaChunk-1):]
	n, k := binary.Uvarint(c)
	return c[k : k+int(n)]
}

func (a *arena) free(ref uint32) {
	n := len(a.get(ref))
	size := uvarintLen(uint64(n)) + n
	a.chunkLive[ref>>arenaBits] -= size
	a.live -= size
	a.dead += size
}

// splitRecord splits a cold slot's record into its vehicle id's encoding
// (appendID) and its packed day.
func splitRecord(rec []byte) (key, cold []byte) {
	_, _, _, cold, _ = splitID(rec)
	return rec[:len(rec)-len(cold)], cold
}

// key returns a slot's vehicle id encoding (appendID): the index's key,
// valid until the slot changes or the arena is compacted.
func (w *Windows) key(s *slot) []byte {
	if s.flags()&slotHot != 0 {
		return w.hot[s.ref].key
	}
	key, _ := splitRecord(w.arena.get(s.ref))
	return key
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// dayIndex finds a slot by (vehicle, window start): open addressing with
// linear probing over slot numbers + 1 (0: empty), at most 3/4 full,
// deletion by backward shift (no tombstones). The key lives in the slot
// (its window's start and its vehicle id's encoding), so an entry is 4 bytes.
type dayIndex struct {
	t    []int32
	n    int
	seed maphash.Seed
}

// dayHash mixes a vehicle id's maphash with a window start.
func dayHash(vehicle uint64, start int64) uint64 {
	h := vehicle ^ uint64(start)*0x9e3779b97f4a7c15
	h ^= h >> 29
	return h * 0xbf58476d1ce4e5b9
}

func (w *Windows) slotHash(i int32) uint64 {
	s := w.slot(i)
	return dayHash(maphash.Bytes(w.index.seed, w.key(s)), w.start(s))
}

// lookup returns the slot of (vehicle, start), or -1.
func (w *Windows) lookup(vehicle string, start int64) int32 {
	x := &w.index
	if x.n == 0 {
		return -1
	}
	w.qbuf = appendID(w.qbuf[:0], vehicle)
	mask := uint64(len(x.t) - 1)
	for k := dayHash(maphash.Bytes(x.seed, w.qbuf), start) & mask; ; k = (k + 1) & mask {
		e := x.t[k]
		if e == 0 {
			return -1
		}
		if s := w.slot(e - 1); w.start(s) == start && bytes.Equal(w.key(s), w.qbuf) {
			return e - 1
		}
	}
}

func (w *Windows) indexAdd(i int32) {
	x := &w.index
	if (x.n+1)*4 > len(x.t)*3 {
		old := x.t
		x.t = make([]int32, max(64, 2*len(old)))
		for _, e := range old {
			if e != 0 {
				w.indexPut(e)
			}
		}
	}
	w.indexPut(i + 1)
	x.n++
}

func (w *Windows) indexPut(e int32) {
	x := &w.index
	mask := uint64(len(x.t) - 1)
	k := w.slotHash(e-1) & mask
	for x.t[k] != 0 {
		k = (k + 1) & mask
	}
	x.t[k] = e
}

func (w *Windows) indexDel(i int32) {
	x := &w.index
	mask := uint64(len(x.t) - 1)
	k := w.slotHash(i) & mask
	for x.t[k] != i+1 {
		k = (k + 1) & mask
	}
	x.t[k] = 0
	x.n--
	for j := (k + 1) & mask; x.t[j] != 0; j = (j + 1) & mask {
		h := w.slotHash(x.t[j]-1) & mask
		// The entry at j may move to the hole at k unless its home h lies
		// cyclically in (k, j].
		if k <= j && (h <= k || h > j) || k > j && h <= k && h > j {
			x.t[k], x.t[j] = x.t[j], 0
			k = j
		}
	}
}
