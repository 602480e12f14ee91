package replay

import (
	"errors"
	"math"
	"slices"
	"strconv"
	"unsafe"
)

// Match is an earlier fingerprint a new trip repeats.
type Match struct {
	Of               Fingerprint // the earlier trip
	Jaccard, Contain float64     // Similarity(earlier, new)
}

// Index holds the fingerprints of the last Retention days, at most Budget
// per day, and finds the ones a new trip repeats: candidates share at least
// one LSH band (Rows consecutive signature values) with the new trip, and a
// candidate matches when it started earlier than the new trip, is not the
// same trip, and holds at least MinContain of the new trip's shingles
// (estimated, Similarity). Memory (compact.go): one fixed-size slot per
// fingerprint holding its fields and, per band, the band's signature values
// next to the link to the next slot of the band's chain; per band a head
// array indexed by the band key's low bits (a chain holds every slot whose
// band key has those bits: Check skips the slots of other band values by
// their stored values); the keys in an open-addressing table; vehicle and
// date strings interned. Not safe for concurrent use.
type Index struct {
	cfg       Config
	retention int // days
	budget    int // fingerprints kept per day
	slots     slots[islot]
	n         int      // slots used
	heads     []uint64 // band b's head array at [b*nh, (b+1)*nh): the chain's tag << 32 | its first slot id
	nh        int      // head array length per band, a power of two
	trips              // its keys, vehicles and dates: referenced by slots, vehicles and dates also by ends
	ends      []vend   // vehicle id - 1 -> its latest end held (Anchor): a fingerprint's or a day's (SetEnd)
	perDay    map[string]int
}

// vend is where and when a vehicle was last known to be, when set: the
// end of its latest fingerprinted trip, or its day's last fix (SetEnd).
type vend struct {
	set   bool
	date  uint32
	endMs int64
	to    [2]int32
}

// End is a vehicle's day's last fix (Builder.End): the day's date, the
// fix's time (UTC Unix ms) and its cell. Index.SetEnd keeps it as the
// anchor of the vehicle's next day's first trip; EncodeEnd is its
// changelog record.
type End struct {
	Date   string
	TimeMs int64
	Cell   [2]int32
}

// islot is one fingerprint (312 bytes): per band its Rows signature
// values and the next slot of its chain, then the other fields; veh 0 is a
// free slot. date's bit 31 is the fingerprint's first flag.
type islot struct {
	band    [Bands]ilink
	startMs int64
	endMs   int64
	exact   uint64
	from    [2]int32
	to      [2]int32
	n       uint32
	veh     uint32
	date    uint32
	trip    uint16
	version uint8
	origin  uint8
}

type ilink struct {
	rows uint32 // rowsOf the band
	next uint32 // next slot id in the band's chain (0: end)
}

const firstBit = 1 << 31

type fpKey struct {
	vehicle, date string
	trip          uint16
}

// NewIndex returns an empty Index keeping retention days (>= 1) of at most
// budget fingerprints each (>= 1).
func NewIndex(cfg Config, retention, budget int) (*Index, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if retention < 1 || budget < 1 {
		return nil, errors.New("replay: retention and budget must be >= 1")
	}
	x := &Index{cfg: cfg, retention: retention, budget: budget, perDay: map[string]int{},
		nh: minHeads, heads: make([]uint64, Bands*minHeads)}
	x.keys.keyOf = func(id uint32) key { return x.slot(id).key() }
	return x, nil
}

// Len is the number of fingerprints held.
func (x *Index) Len() int { return x.n }

// bandKey is band b's key: mix64 over the band's index and its Rows values.
func bandKey(fp *Fingerprint, b int) uint64 {
	h := uint64(b)
	for _, v := range fp.Sig[b*Rows : (b+1)*Rows] {
		h = h<<16 | uint64(v)
	}
	return mix64(h)
}

// Key is the compacted topic's record key of fp: "<vehicle>/<date>/<trip>".
func Key(fp *Fingerprint) string {
	return fp.Vehicle + "/" + fp.Date + "/" + strconv.Itoa(int(fp.Trip))
}

func (x *Index) slot(id uint32) *islot {
	return x.slots.at(id)
}

func (sl *islot) key() key { return key{sl.veh, sl.date &^ firstBit, sl.trip} }

// load sets *fp to the fingerprint of sl.
func (x *Index) load(sl *islot, fp *Fingerprint) {
	*fp = Fingerprint{Version: sl.version, Vehicle: x.vehicles.name(sl.veh), Date: x.dates.name(sl.date &^ firstBit),
		Trip: sl.trip, StartMs: sl.startMs, EndMs: sl.endMs, N: sl.n, From: sl.from, To: sl.to, Origin: sl.origin,
		Exact: sl.exact, first: sl.date&firstBit != 0}
	for b := range Bands {
		fp.Sig[b*Rows], fp.Sig[b*Rows+1] = uint16(sl.band[b].rows>>16), uint16(sl.band[b].rows)
	}
}

// head is the head array entry of band b holding rows, and its tag bits.
func (x *Index) head(b int, rows uint32) (*uint64, uint32) {
	k := rowsKey(b, rows)
	return &x.heads[b*x.nh+int(k&uint64(x.nh-1))], tagBits(k)
}

// Check returns the fingerprints held of which fp is a copy (Judge with
// fp the copy), most contained first (ties by vehicle, date, trip). It
// changes nothing but the tags of the chains it walks (made exact). A
// fingerprint held is judged once, from the chain of the lowest band it
// shares with fp.
func (x *Index) Check(fp *Fingerprint) []Match {
	if fp.Version != x.cfg.Version || x.n == 0 {
		return nil
	}
	self := key{x.vehicles.id(fp.Vehicle), x.dates.id(fp.Date), fp.Trip}
	var rows [Bands]uint32
	for b := range Bands {
		rows[b] = rowsOf(&fp.Sig, b)
	}
	var out []Match
	var old Fingerprint
	for b := range Bands {
		r := rows[b]
		h, bits := x.head(b, r)
		if uint32(*h>>32)&bits != bits {
			continue // no slot of the chain holds r
		}
		var tag uint32
		for id := uint32(*h); id != 0; {
			sl := x.slot(id)
			id = sl.band[b].next
			tag |= tagBits(rowsKey(b, sl.band[b].rows))
			if sl.band[b].rows != r || sharesBelow(sl, &rows, b) || sl.key() == self {
				continue // another band value in a merged chain, judged at a lower band, or fp itself
			}
			x.load(sl, &old)
			if _, cp, j, c, why := Judge(&x.cfg, &old, fp); why == "" && cp == fp {
				out = append(out, Match{Of: old, Jaccard: j, Contain: c})
			}
		}
		*h = uint64(tag)<<32 | uint64(uint32(*h)) // the chain's exact tag: bits of removed slots dropped
	}
	slices.SortFunc(out, func(a, b Match) int {
		switch {
		case a.Contain != b.Contain:
			if a.Contain > b.Contain {
				return -1
			}
			return 1
		case a.Of.Vehicle != b.Of.Vehicle:
			return cmpStr(a.Of.Vehicle, b.Of.Vehicle)
		case a.Of.Date != b.Of.Date:
			return cmpStr(a.Of.Date, b.Of.Date)
		}
		return int(a.Of.Trip) - int(b.Of.Trip)
	})
	return out
}

// sharesBelow reports whether sl holds one of rows' bands before band b.
func sharesBelow(sl *islot, rows *[Bands]uint32, b int) bool {
	for i := range b {
		if sl.band[i].rows == rows[i] {
			return true
		}
	}
	return false
}

// Anchor sets the Origin of a day's first trip (Fingerprints leaves it
// unknown) against the vehicle's latest end held (the latest of its
// fingerprints' ends and of its days' last fixes, SetEnd) when that is
// before fp starts: OriginNear or OriginAway by the distance from that
// cell to fp's first cell; unknown when there is none. Other fingerprints
// are left as they are. Call it before Add.
func (x *Index) Anchor(fp *Fingerprint) {
	if !fp.first {
		return
	}
	if v := x.vehicles.id(fp.Vehicle); v != 0 {
		if e := &x.ends[v-1]; e.set && e.endMs < fp.StartMs {
			fp.Origin = origin(&x.cfg, e.to, fp.From)
		}
	}
}

// Parked records that vehicle's latest trip ended at fix f, on date,
// when the index holds no later end for it: what Anchor compares a first
// trip with, as if that trip's fingerprint had been added. For an index
// that starts without the vehicle's earlier days (a simulation's first
// day, where the box's position before it is known); expiry drops it
// with its date like any other end.
func (x *Index) Parked(vehicle, date string, f Fix) {
	px, py := proj(f.Lat, f.Lon)
	x.SetEnd(vehicle, End{date, f.TimeMs, [2]int32{int32(math.Floor(px / x.cfg.CellM)), int32(math.Floor(py / x.cfg.CellM))}})
}

// SetEnd records e, the last fix of one of vehicle's days (Builder.End),
// as the vehicle's end unless the index holds a later one (a tie goes to
// e: a day's last fix is never before its last trip's end, and when
// equal it is the more exact position). It reports whether the held end
// changed (the caller then writes the vehicle's end record). Call it
// after the day's fingerprints are added.
func (x *Index) SetEnd(vehicle string, e End) bool {
	v := x.vehicles.id(vehicle)
	if v != 0 {
		if old := &x.ends[v-1]; old.set && (old.endMs > e.TimeMs ||
			old.endMs == e.TimeMs && old.to == e.Cell && x.dates.name(old.date) == e.Date) {
			return false
		}
	}
	x.setEnd(vehicle, v, e.Date, e.TimeMs, e.Cell)
	return true
}

// setEnd sets the end of vehicle (id v, 0 when not interned).
func (x *Index) setEnd(vehicle string, v uint32, date string, ms int64, to [2]int32) {
	if v == 0 {
		v = x.vref(vehicle)
	} else if !x.ends[v-1].set {
		x.vehicles.refs[v-1]++ // the end references its vehicle
	}
	e := &x.ends[v-1]
	d := x.dates.ref(date)
	if e.set {
		x.dates.unref(e.date)
	}
	*e = vend{set: true, date: d, endMs: ms, to: to}
}

// vref interns vehicle with one more reference.
func (x *Index) vref(vehicle string) uint32 {
	v := x.vehicles.ref(vehicle)
	for len(x.ends) < int(v) {
		x.ends = append(x.ends, vend{})
	}
	return v
}

// EndOf returns vehicle's end held (the anchor of its next first trip).
func (x *Index) EndOf(vehicle string) (End, bool) {
	v := x.vehicles.id(vehicle)
	if v == 0 || !x.ends[v-1].set {
		return End{}, false
	}
	e := &x.ends[v-1]
	return End{x.dates.name(e.date), e.endMs, e.to}, true
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Add keeps fp (replacing an earlier fingerprint of the same trip) unless
// its day already holds budget fingerprints; it reports whether it kept it.
func (x *Index) Add(fp *Fingerprint) bool {
	v, d := x.vehicles.id(fp.Vehicle), x.dates.id(fp.Date)
	if v != 0 && d != 0 {
		if id := x.keys.find(key{v, d, fp.Trip}); id != 0 {
			x.remove(id, true)
			v, d = x.vehicles.id(fp.Vehicle), x.dates.id(fp.Date) // perhaps released
		}
	}
	if x.perDay[fp.Date] >= x.budget {
		return false
	}
	id := x.slots.alloc()
	if v == 0 {
		v = x.vref(fp.Vehicle)
	} else {
		x.vehicles.refs[v-1]++
	}
	d = x.dates.refID(d, fp.Date)
	sl := x.slot(id)
	*sl = islot{startMs: fp.StartMs, endMs: fp.EndMs, exact: fp.Exact, from: fp.From, to: fp.To, n: fp.N,
		veh: v, date: d, trip: fp.Trip, version: fp.Version, origin: fp.Origin}
	if fp.first {
		sl.date |= firstBit
	}
	for b := range Bands {
		sl.band[b].rows = rowsOf(&fp.Sig, b)
	}
	x.keys.insert(id)
	x.perDay[x.dates.name(d)]++
	x.n++
	if e := &x.ends[v-1]; !e.set || fp.EndMs > e.endMs {
		x.setEnd(fp.Vehicle, v, fp.Date, fp.EndMs, fp.To)
	}
	if x.n > indexLoad*x.nh {
		x.relink()
	} else {
		x.link(id, sl)
	}
	return true
}

// link puts slot id first in its bands' chains.
func (x *Index) link(id uint32, sl *islot) {
	for b := range Bands {
		h, bits := x.head(b, sl.band[b].rows)
		sl.band[b].next = uint32(*h)
		*h = uint64(uint32(*h>>32)|bits)<<32 | uint64(id)
	}
}

// relink rebuilds every chain, with head arrays of at least x.n /
// indexLoad entries per band.
func (x *Index) relink() {
	for x.n > indexLoad*x.nh {
		x.nh *= 2
	}
	if len(x.heads) != Bands*x.nh {
		x.heads = make([]uint64, Bands*x.nh)
	} else {
		clear(x.heads)
	}
	for id := uint32(1); id <= x.slots.top; id++ {
		if sl := x.slot(id); sl.veh != 0 {
			x.link(id, sl)
		}
	}
}

// Remove forgets the fingerprint of one trip, if held.
func (x *Index) Remove(vehicle, date string, trip uint16) {
	if id := x.find(vehicle, date, trip); id != 0 {
		x.remove(id, true)
	}
}

// remove frees slot id, unlinking it from its chains when unlink (else
// the caller relinks).
func (x *Index) remove(id uint32, unlink bool) {
	sl := x.slot(id)
	if unlink {
		x.unlink(id, sl)
	}
	k := sl.key()
	x.keys.delete(k, id)
	date := x.dates.name(k.date)
	if x.perDay[date]--; x.perDay[date] <= 0 {
		delete(x.perDay, date)
	}
	x.vehicles.unref(k.veh)
	x.dates.unref(k.date)
	x.slots.release(id)
	x.n--
}

// unlink takes slot id out of its bands' chains. The chains' tags keep
// its bits (a tag may hold bits of no slot of its chain: Check walks the
// chain for nothing once, and refreshes the tag).
func (x *Index) unlink(id uint32, sl *islot) {
	for b := range Bands {
		h, _ := x.head(b, sl.band[b].rows)
		if uint32(*h) == id {
			*h = *h&^(1<<32-1) | uint64(sl.band[b].next)
			continue
		}
		for p := uint32(*h); p != 0; {
			pl := x.slot(p)
			if pl.band[b].next == id {
				pl.band[b].next = sl.band[b].next
				break
			}
			p = pl.band[b].next
		}
	}
}

// Expire drops the fingerprints and the ends of days before the Retention
// days ending with today (dates compare as YYYY-MM-DD strings; keep is the
// oldest date kept, computed by the caller as today - (Retention - 1)
// days) and returns the fingerprints' topic keys and the vehicles whose
// end it dropped, sorted, for tombstones. When it drops more than an
// eighth of the fingerprints it rebuilds the chains instead of unlinking
// each.
func (x *Index) Expire(keep string) (gone, ends []string) {
	old := make([]bool, len(x.dates.names)+1)
	for i, d := range x.dates.names {
		old[i+1] = x.dates.refs[i] > 0 && d < keep
	}
	var ids []uint32
	for id := uint32(1); id <= x.slots.top; id++ {
		if sl := x.slot(id); sl.veh != 0 && old[sl.date&^firstBit] {
			ids = append(ids, id)
			gone = append(gone, x.vehicles.name(sl.veh)+"/"+x.dates.name(sl.date&^firstBit)+"/"+strconv.Itoa(int(sl.trip)))
		}
	}
	bulk := 8*len(ids) > x.n
	for _, id := range ids {
		x.remove(id, !bulk)
	}
	if bulk {
		x.relink()
	}
	for i := range x.ends {
		if e := &x.ends[i]; e.set && x.dates.name(e.date) < keep {
			v := uint32(i + 1)
			ends = append(ends, x.vehicles.name(v))
			x.dates.unref(e.date)
			*e = vend{}
			x.vehicles.unref(v)
		}
	}
	slices.Sort(gone)
	slices.Sort(ends)
	return gone, ends
}

// Retention is the number of days the index keeps.
func (x *Index) Retention() int { return x.retention }

// bytes is the heap the index holds, by its structures' sizes.
func (x *Index) bytes() int {
	return x.slots.bytes() +
		4*len(x.keys.ids) + 8*len(x.heads) + x.vehicles.bytes() + x.dates.bytes() +
		int(unsafe.Sizeof(vend{}))*cap(x.ends) + 48*len(x.perDay)
}

// BandKey is the key of band b (0 <= b < Bands) of fp: two fingerprints
// share band b exactly when their BandKeys for b are equal (the key is a
// bijection of the band index and its Rows values). The global check
// (docs/scoring.md, "Global replay check") routes fingerprints by it.
func BandKey(fp *Fingerprint, b int) uint64 { return bandKey(fp, b) }
