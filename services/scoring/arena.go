package scoring

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
)

// arena holds variable-length records (a vehicle id, a cold day) for
// Windows' slots without a Go object per record: records are appended to
// 1 MiB chunks, each as a uvarint length and its bytes, and named by a
// uint32 ref (chunk << arenaBits | offset). A freed record is only counted
// (dead); Windows.compact copies the live ones into a new arena when the
// dead bytes exceed half the live ones, so the arena holds at most ~1.5x
// its live bytes plus one chunk.
type arena struct {
	chunks     [][]byte
	live, dead int
}

const (
	arenaBits  = 20
	arenaChunk = 1 << arenaBits
	noRef      = ^uint32(0)
)

func (a *arena) put(b []byte) uint32 {
	size := uvarintLen(uint64(len(b))) + len(b)
	k := len(a.chunks) - 1
	if k < 0 || cap(a.chunks[k])-len(a.chunks[k]) < size {
		if len(a.chunks) >= 1<<(32-arenaBits)-1 {
			panic("scoring: open-day arena beyond 4 GiB")
		}
		a.chunks = append(a.chunks, make([]byte, 0, max(arenaChunk, size)))
		k++
	}
	c := a.chunks[k]
	off := len(c)
	c = binary.AppendUvarint(c, uint64(len(b)))
	a.chunks[k] = append(c, b...)
	a.live += size
	return uint32(k)<<arenaBits | uint32(off)
}

// get returns a record's bytes (valid until the next compaction).
func (a *arena) get(ref uint32) []byte {
	c := a.chunks[ref>>arenaBits][ref&(arenaChunk-1):]
	n, k := binary.Uvarint(c)
	return c[k : k+int(n)]
}

func (a *arena) free(ref uint32) {
	n := len(a.get(ref))
	size := uvarintLen(uint64(n)) + n
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
