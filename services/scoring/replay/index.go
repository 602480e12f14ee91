package replay

import (
	"errors"
	"math"
	"slices"
	"strconv"
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
// (estimated, Similarity). Memory: the fingerprints in one slice, one map
// entry per trip key and per band (a chain of fingerprints sharing a band
// value runs through each fingerprint's next links). Not safe for
// concurrent use.
type Index struct {
	cfg       Config
	retention int // days
	budget    int // fingerprints kept per day
	slots     []islot
	free      []uint32
	keys      map[fpKey]uint32
	perDay    map[string]int
	heads     map[uint64]uint32  // band key -> first slot + 1 of its chain
	ends      map[string]tripEnd // vehicle -> its latest end held (Anchor): a fingerprint's or a day's (SetEnd)
}

// tripEnd is where and when a vehicle was last known to be: the end of
// its latest fingerprinted trip, or its day's last fix (SetEnd).
type tripEnd struct {
	date  string
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

type islot struct {
	fp   Fingerprint
	next [Bands]uint32 // next slot + 1 in each band's chain (0: end)
	used bool
}

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
	return &Index{cfg: cfg, retention: retention, budget: budget, keys: map[fpKey]uint32{},
		perDay: map[string]int{}, heads: map[uint64]uint32{}, ends: map[string]tripEnd{}}, nil
}

// Len is the number of fingerprints held.
func (x *Index) Len() int { return len(x.keys) }

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

// Check returns the fingerprints held of which fp is a copy (Judge with
// fp the copy), most contained first (ties by vehicle, date, trip). It
// changes nothing.
func (x *Index) Check(fp *Fingerprint) []Match {
	if fp.Version != x.cfg.Version {
		return nil
	}
	self := fpKey{fp.Vehicle, fp.Date, fp.Trip}
	var seen map[uint32]bool
	var out []Match
	for b := range Bands {
		for id := x.heads[bandKey(fp, b)]; id != 0; id = x.slots[id-1].next[b] {
			sl := &x.slots[id-1]
			old := &sl.fp
			if (fpKey{old.Vehicle, old.Date, old.Trip}) == self || seen[id] {
				continue
			}
			if seen == nil {
				seen = map[uint32]bool{}
			}
			seen[id] = true
			if _, cp, j, c, why := Judge(&x.cfg, old, fp); why == "" && cp == fp {
				out = append(out, Match{Of: *old, Jaccard: j, Contain: c})
			}
		}
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
	if e, ok := x.ends[fp.Vehicle]; ok && e.endMs < fp.StartMs {
		fp.Origin = origin(&x.cfg, e.to, fp.From)
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
	old, ok := x.ends[vehicle]
	if ok && (old.endMs > e.TimeMs || old == (tripEnd{e.Date, e.TimeMs, e.Cell})) {
		return false
	}
	x.ends[vehicle] = tripEnd{e.Date, e.TimeMs, e.Cell}
	return true
}

// EndOf returns vehicle's end held (the anchor of its next first trip).
func (x *Index) EndOf(vehicle string) (End, bool) {
	e, ok := x.ends[vehicle]
	return End{e.date, e.endMs, e.to}, ok
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
	k := fpKey{fp.Vehicle, fp.Date, fp.Trip}
	if id, ok := x.keys[k]; ok {
		x.remove(k, id)
	}
	if x.perDay[fp.Date] >= x.budget {
		return false
	}
	var id uint32
	if n := len(x.free); n > 0 {
		id = x.free[n-1]
		x.free = x.free[:n-1]
	} else {
		x.slots = append(x.slots, islot{})
		id = uint32(len(x.slots))
	}
	sl := &x.slots[id-1]
	*sl = islot{fp: *fp, used: true}
	x.keys[k] = id
	x.perDay[fp.Date]++
	if e, ok := x.ends[fp.Vehicle]; !ok || fp.EndMs > e.endMs {
		x.ends[fp.Vehicle] = tripEnd{fp.Date, fp.EndMs, fp.To}
	}
	for b := range Bands {
		bk := bandKey(fp, b)
		sl.next[b] = x.heads[bk]
		x.heads[bk] = id
	}
	return true
}

// Remove forgets the fingerprint of one trip, if held.
func (x *Index) Remove(vehicle, date string, trip uint16) {
	k := fpKey{vehicle, date, trip}
	if id, ok := x.keys[k]; ok {
		x.remove(k, id)
	}
}

func (x *Index) remove(k fpKey, id uint32) {
	sl := &x.slots[id-1]
	for b := range Bands {
		bk := bandKey(&sl.fp, b)
		if x.heads[bk] == id {
			if sl.next[b] == 0 {
				delete(x.heads, bk)
			} else {
				x.heads[bk] = sl.next[b]
			}
			continue
		}
		for p := x.heads[bk]; p != 0; p = x.slots[p-1].next[b] {
			if x.slots[p-1].next[b] == id {
				x.slots[p-1].next[b] = sl.next[b]
				break
			}
		}
	}
	delete(x.keys, k)
	if x.perDay[k.date]--; x.perDay[k.date] <= 0 {
		delete(x.perDay, k.date)
	}
	*sl = islot{}
	x.free = append(x.free, id)
}

// Expire drops the fingerprints and the ends of days before the Retention
// days ending with today (dates compare as YYYY-MM-DD strings; keep is the
// oldest date kept, computed by the caller as today - (Retention - 1)
// days) and returns the fingerprints' topic keys and the vehicles whose
// end it dropped, sorted, for tombstones.
func (x *Index) Expire(keep string) (gone, ends []string) {
	for k, id := range x.keys {
		if k.date < keep {
			gone = append(gone, Key(&x.slots[id-1].fp))
			x.remove(k, id)
		}
	}
	for v, e := range x.ends {
		if e.date < keep {
			delete(x.ends, v)
			ends = append(ends, v)
		}
	}
	slices.Sort(gone)
	slices.Sort(ends)
	return gone, ends
}

// Retention is the number of days the index keeps.
func (x *Index) Retention() int { return x.retention }

// BandKey is the key of band b (0 <= b < Bands) of fp: two fingerprints
// share band b exactly when their BandKeys for b are equal (the key is a
// bijection of the band index and its Rows values). The global check
// (docs/scoring.md, "Global replay check") routes fingerprints by it.
func BandKey(fp *Fingerprint, b int) uint64 { return bandKey(fp, b) }
