package replay

// The map-based Index and Postings as they were before the compact layout
// (commit aec412a), kept as the reference of the differential tests
// (compact_test.go): same verdicts, same Check order, same changelog.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

type refSlot struct {
	fp   Fingerprint
	next [Bands]uint32
	used bool
}

type tripEnd struct {
	date  string
	endMs int64
	to    [2]int32
}

type refKey struct {
	vehicle, date string
	trip          uint16
}

type refIndex struct {
	cfg       Config
	retention int // days
	budget    int // fingerprints kept per day
	slots     []refSlot
	free      []uint32
	keys      map[refKey]uint32
	perDay    map[string]int
	heads     map[uint64]uint32  // band key -> first slot + 1 of its chain
	ends      map[string]tripEnd // vehicle -> its latest end held (Anchor): a fingerprint's or a day's (SetEnd)
}

// NewIndex returns an empty Index keeping retention days (>= 1) of at most
// budget fingerprints each (>= 1).
func newRefIndex(cfg Config, retention, budget int) (*refIndex, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if retention < 1 || budget < 1 {
		return nil, errors.New("replay: retention and budget must be >= 1")
	}
	return &refIndex{cfg: cfg, retention: retention, budget: budget, keys: map[refKey]uint32{},
		perDay: map[string]int{}, heads: map[uint64]uint32{}, ends: map[string]tripEnd{}}, nil
}

// Len is the number of fingerprints held.
func (x *refIndex) Len() int { return len(x.keys) }

// Check returns the fingerprints held of which fp is a copy (Judge with
// fp the copy), most contained first (ties by vehicle, date, trip). It
// changes nothing.
func (x *refIndex) Check(fp *Fingerprint) []Match {
	if fp.Version != x.cfg.Version {
		return nil
	}
	self := refKey{fp.Vehicle, fp.Date, fp.Trip}
	var seen map[uint32]bool
	var out []Match
	for b := range Bands {
		for id := x.heads[bandKey(fp, b)]; id != 0; id = x.slots[id-1].next[b] {
			sl := &x.slots[id-1]
			old := &sl.fp
			if (refKey{old.Vehicle, old.Date, old.Trip}) == self || seen[id] {
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
func (x *refIndex) Anchor(fp *Fingerprint) {
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
func (x *refIndex) Parked(vehicle, date string, f Fix) {
	px, py := proj(f.Lat, f.Lon)
	x.SetEnd(vehicle, End{date, f.TimeMs, [2]int32{int32(math.Floor(px / x.cfg.CellM)), int32(math.Floor(py / x.cfg.CellM))}})
}

// SetEnd records e, the last fix of one of vehicle's days (Builder.End),
// as the vehicle's end unless the index holds a later one (a tie goes to
// e: a day's last fix is never before its last trip's end, and when
// equal it is the more exact position). It reports whether the held end
// changed (the caller then writes the vehicle's end record). Call it
// after the day's fingerprints are added.
func (x *refIndex) SetEnd(vehicle string, e End) bool {
	old, ok := x.ends[vehicle]
	if ok && (old.endMs > e.TimeMs || old == (tripEnd{e.Date, e.TimeMs, e.Cell})) {
		return false
	}
	x.ends[vehicle] = tripEnd{e.Date, e.TimeMs, e.Cell}
	return true
}

// EndOf returns vehicle's end held (the anchor of its next first trip).
func (x *refIndex) EndOf(vehicle string) (End, bool) {
	e, ok := x.ends[vehicle]
	return End{e.date, e.endMs, e.to}, ok
}

// Add keeps fp (replacing an earlier fingerprint of the same trip) unless
// its day already holds budget fingerprints; it reports whether it kept it.
func (x *refIndex) Add(fp *Fingerprint) bool {
	k := refKey{fp.Vehicle, fp.Date, fp.Trip}
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
		x.slots = append(x.slots, refSlot{})
		id = uint32(len(x.slots))
	}
	sl := &x.slots[id-1]
	*sl = refSlot{fp: *fp, used: true}
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
func (x *refIndex) Remove(vehicle, date string, trip uint16) {
	k := refKey{vehicle, date, trip}
	if id, ok := x.keys[k]; ok {
		x.remove(k, id)
	}
}

func (x *refIndex) remove(k refKey, id uint32) {
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
	*sl = refSlot{}
	x.free = append(x.free, id)
}

// Expire drops the fingerprints and the ends of days before the Retention
// days ending with today (dates compare as YYYY-MM-DD strings; keep is the
// oldest date kept, computed by the caller as today - (Retention - 1)
// days) and returns the fingerprints' topic keys and the vehicles whose
// end it dropped, sorted, for tombstones.
func (x *refIndex) Expire(keep string) (gone, ends []string) {
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
func (x *refIndex) Retention() int { return x.retention }

type refPostings struct {
	cfg       Config
	retention int
	budget    int
	fps       map[refKey]*refPosting
	lists     map[uint64][]refKey // band key -> fingerprints holding it here, in arrival order
	perDay    map[string]int
	today     string
	oldest    string              // keep(today), cached
	dirty     map[refKey]struct{} // changed since the last Flush (absent from fps: a tombstone)
}

type refPosting struct {
	fp    Fingerprint
	bands uint32 // bit b: the fingerprint reached this partition through band b
}

// NewPostings returns empty postings keeping retention (>= 1) days of at
// most budget (>= 1) fingerprints each.
func newRefPostings(cfg Config, retention, budget int) (*refPostings, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if retention < 1 || budget < 1 {
		return nil, errors.New("replay: retention and budget must be >= 1")
	}
	return &refPostings{cfg: cfg, retention: retention, budget: budget, fps: map[refKey]*refPosting{},
		lists: map[uint64][]refKey{}, perDay: map[string]int{}, dirty: map[refKey]struct{}{}}, nil
}

// Len is the number of fingerprints held.
func (p *refPostings) Len() int { return len(p.fps) }

// Entries is the number of (band key, fingerprint) entries held.
func (p *refPostings) Entries() int {
	n := 0
	for _, l := range p.lists {
		n += len(l)
	}
	return n
}

// Offer folds in fp, which reached this partition through band (its record
// key is BandKey(fp, band)), and returns the verdicts it settles, sorted by
// copy (vehicle, date, trip) then original: for every fingerprint X held
// under the same band key, of another vehicle or another date, whose
// lowest shared band with fp is band, Judge decides which of the two is
// the copy of the other (simultaneous trips of two vehicles by their
// origins, otherwise the later; containment and Jaccard floors); a copy
// gets one verdict per record,
// against its most contained original (ties: the first by vehicle, date,
// trip). A fingerprint of another Version, of a day before the retention,
// or already held through this band is ignored. A fingerprint over its
// day's budget is judged but not kept.
func (p *refPostings) Offer(fp *Fingerprint, band int) []Verdict {
	if fp.Version != p.cfg.Version || band < 0 || band >= Bands {
		return nil
	}
	if fp.Date > p.today {
		p.today = fp.Date
		p.oldest = p.keep()
		p.expire()
	}
	if fp.Date < p.oldest {
		return nil
	}
	k := refKey{fp.Vehicle, fp.Date, fp.Trip}
	held := p.fps[k]
	if held != nil && held.bands&(1<<band) != 0 {
		return nil
	}
	bk := bandKey(fp, band)
	best := map[refKey]Verdict{}
	for _, ok := range p.lists[bk] {
		if ok == k || ok.vehicle == k.vehicle && ok.date == k.date {
			continue // the same vehicle-day: the scoring task's own index judges it
		}
		o := &p.fps[ok].fp
		if LowestSharedBand(o, fp) != band {
			continue // judged on the partition of a lower shared band
		}
		orig, cp, _, c, why := Judge(&p.cfg, o, fp)
		if why != "" {
			continue
		}
		v := Verdict{Vehicle: cp.Vehicle, Date: cp.Date, Trip: cp.Trip, OfVehicle: orig.Vehicle, OfDate: orig.Date,
			OfTrip: orig.Trip, ContainPermille: uint16(min(1000, c*1000))}
		ck := refKey{cp.Vehicle, cp.Date, cp.Trip}
		if w, seen := best[ck]; !seen || v.ContainPermille > w.ContainPermille ||
			v.ContainPermille == w.ContainPermille && w.ID() > v.ID() {
			best[ck] = v
		}
	}
	switch {
	case held != nil:
		held.bands |= 1 << band
		p.lists[bk] = append(p.lists[bk], k)
		p.dirty[k] = struct{}{}
	case p.perDay[fp.Date] < p.budget:
		p.fps[k] = &refPosting{fp: *fp, bands: 1 << band}
		p.perDay[fp.Date]++
		p.lists[bk] = append(p.lists[bk], k)
		p.dirty[k] = struct{}{}
	}
	out := slices.Collect(maps.Values(best))
	slices.SortFunc(out, func(a, b Verdict) int { return strings.Compare(a.ID(), b.ID()) })
	return out
}

// keep is the oldest date kept: today - (Retention - 1) days.
func (p *refPostings) keep() string {
	d, err := time.Parse(time.DateOnly, p.today)
	if err != nil {
		return ""
	}
	return d.AddDate(0, 0, -(p.retention - 1)).Format(time.DateOnly)
}

// expire drops the fingerprints of days before keep.
func (p *refPostings) expire() {
	keep := p.oldest
	for k, ps := range p.fps {
		if k.date >= keep {
			continue
		}
		p.drop(k, ps)
		p.dirty[k] = struct{}{}
	}
}

func (p *refPostings) drop(k refKey, ps *refPosting) {
	for b := range Bands {
		if ps.bands&(1<<b) == 0 {
			continue
		}
		bk := bandKey(&ps.fp, b)
		l := slices.DeleteFunc(p.lists[bk], func(x refKey) bool { return x == k })
		if len(l) == 0 {
			delete(p.lists, bk)
		} else {
			p.lists[bk] = l
		}
	}
	delete(p.fps, k)
	if p.perDay[k.date]--; p.perDay[k.date] <= 0 {
		delete(p.perDay, k.date)
	}
}

// Flush calls put once for every fingerprint changed since the last Flush,
// in key order: key Key(fp), value version byte 1, the band set (4 bytes,
// big endian, bit b = band b), the fingerprint record (AppendBinary); nil
// for a fingerprint dropped.
func (p *refPostings) Flush(put func(key string, value []byte)) {
	keys := slices.SortedFunc(maps.Keys(p.dirty), func(a, b refKey) int {
		return strings.Compare(a.vehicle+"/"+a.date+"/"+strconv.Itoa(int(a.trip)), b.vehicle+"/"+b.date+"/"+strconv.Itoa(int(b.trip)))
	})
	for _, k := range keys {
		key := k.vehicle + "/" + k.date + "/" + strconv.Itoa(int(k.trip))
		ps := p.fps[k]
		if ps == nil {
			put(key, nil)
			continue
		}
		b := binary.BigEndian.AppendUint32([]byte{postingVersion}, ps.bands)
		put(key, AppendBinary(b, &ps.fp))
	}
	clear(p.dirty)
}

// Restore applies one changelog record written by Flush (replayed from the
// start of the changelog, before any Offer). The band lists are rebuilt in
// changelog order; arrival order within a list does not change any
// verdict.
func (p *refPostings) Restore(key string, value []byte) error {
	parts := strings.Split(key, "/")
	if len(parts) != 3 {
		return fmt.Errorf("restore %s: bad posting key", key)
	}
	trip, err := strconv.ParseUint(parts[2], 10, 16)
	if err != nil {
		return fmt.Errorf("restore %s: bad posting key", key)
	}
	k := refKey{parts[0], parts[1], uint16(trip)}
	if old := p.fps[k]; old != nil {
		p.drop(k, old)
	}
	if value == nil {
		return nil
	}
	if len(value) < 5 || value[0] != postingVersion {
		return fmt.Errorf("restore %s: %w: posting version", key, ErrRecord)
	}
	bands := binary.BigEndian.Uint32(value[1:])
	fp, err := Decode(value[5:])
	if err != nil {
		return fmt.Errorf("restore %s: %w", key, err)
	}
	if Key(&fp) != key || bands == 0 {
		return fmt.Errorf("restore %s: record of %s with bands %#x", key, Key(&fp), bands)
	}
	ps := &refPosting{fp: fp, bands: bands}
	p.fps[k] = ps
	p.perDay[k.date]++
	for b := range Bands {
		if bands&(1<<b) != 0 {
			bk := bandKey(&fp, b)
			p.lists[bk] = append(p.lists[bk], k)
		}
	}
	if fp.Date > p.today {
		p.today = fp.Date
		p.oldest = p.keep()
	}
	return nil
}
