package replay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Postings is one partition of the global replay check (docs/scoring.md,
// "Global replay check"): the fingerprints that reached it through one or
// more of their LSH bands, each with the set of those bands, and for each
// band key the fingerprints holding it. Offer folds one (fingerprint,
// band) record in and returns the verdicts it settles. A pair of trips is
// judged on exactly one partition, the one of the lowest band they share,
// when the second of the two arrives, whatever their order, so every pair
// gives at most one verdict in the whole check. Like Index it keeps
// Retention days of at most Budget fingerprints per day, pure (no Kafka,
// no clock: "today" is the latest fingerprint date offered), and hands
// the changelog records to Flush. Not safe for concurrent use.
type Postings struct {
	cfg       Config
	retention int
	budget    int
	slots     slots[pslot]
	n         int      // slots used
	trips              // its keys, vehicles and dates
	ents      []pent   // entry id - 1: one (fingerprint, band) held
	efree     []uint32 // free entry ids
	nents     int      // entries used
	heads     []uint32 // band b's head array at [b*nh, (b+1)*nh): first entry id of its chain
	nh        int      // head array length per band, a power of two
	perDay    map[string]int
	today     string
	oldest    string             // keep(today), cached
	dirty     map[fpKey]struct{} // changed since the last Flush (not held: a tombstone)
}

// pslot is one fingerprint held (192 bytes); veh 0 is a free slot.
type pslot struct {
	sig     [K]uint16
	startMs int64
	endMs   int64
	exact   uint64
	from    [2]int32
	to      [2]int32
	n       uint32
	bands   uint32 // bit b: the fingerprint reached this partition through band b
	veh     uint32
	date    uint32
	trip    uint16
	version uint8
	origin  uint8
}

// pent is one (fingerprint, band) held: its slot and the next entry of the
// band's chain.
type pent struct {
	slot, next uint32
}

// NewPostings returns empty postings keeping retention (>= 1) days of at
// most budget (>= 1) fingerprints each.
func NewPostings(cfg Config, retention, budget int) (*Postings, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if retention < 1 || budget < 1 {
		return nil, errors.New("replay: retention and budget must be >= 1")
	}
	p := &Postings{cfg: cfg, retention: retention, budget: budget, perDay: map[string]int{},
		dirty: map[fpKey]struct{}{}, nh: minHeads, heads: make([]uint32, Bands*minHeads)}
	p.keys.keyOf = func(id uint32) key { sl := p.slot(id); return key{sl.veh, sl.date, sl.trip} }
	return p, nil
}

// Len is the number of fingerprints held.
func (p *Postings) Len() int { return p.n }

// Entries is the number of (band key, fingerprint) entries held.
func (p *Postings) Entries() int { return p.nents }

func (p *Postings) slot(id uint32) *pslot {
	return p.slots.at(id)
}

// load sets *fp to the fingerprint of sl.
func (p *Postings) load(sl *pslot, fp *Fingerprint) {
	*fp = Fingerprint{Version: sl.version, Vehicle: p.vehicles.name(sl.veh), Date: p.dates.name(sl.date),
		Trip: sl.trip, StartMs: sl.startMs, EndMs: sl.endMs, N: sl.n, Sig: sl.sig, From: sl.from, To: sl.to,
		Origin: sl.origin, Exact: sl.exact}
}

// head is the head array entry of band b holding rows.
func (p *Postings) head(b int, rows uint32) *uint32 {
	return &p.heads[b*p.nh+int(rowsKey(b, rows)&uint64(p.nh-1))]
}

// link adds the entry (slot id, band b) first in its chain.
func (p *Postings) link(id uint32, b int, rows uint32) {
	var e uint32
	if n := len(p.efree); n > 0 {
		e = p.efree[n-1]
		p.efree = p.efree[:n-1]
	} else {
		p.ents = append(p.ents, pent{})
		e = uint32(len(p.ents))
	}
	h := p.head(b, rows)
	p.ents[e-1] = pent{slot: id, next: *h}
	*h = e
	p.nents++
}

// relink rebuilds every chain and the entries, with head arrays of at
// least entries / (Bands x postLoad) per band.
func (p *Postings) relink() {
	for p.nents > postLoad*Bands*p.nh {
		p.nh *= 2
	}
	if len(p.heads) != Bands*p.nh {
		p.heads = make([]uint32, Bands*p.nh)
	} else {
		clear(p.heads)
	}
	p.ents, p.efree, p.nents = make([]pent, 0, p.nents), nil, 0
	for id := uint32(1); id <= p.slots.top; id++ {
		if sl := p.slot(id); sl.veh != 0 {
			for b := range Bands {
				if sl.bands&(1<<b) != 0 {
					p.link(id, b, rowsOf(&sl.sig, b))
				}
			}
		}
	}
}

// hold adds the entry of slot id through band b (set in its bands) and
// grows the heads.
func (p *Postings) hold(id uint32, b int, rows uint32) {
	p.link(id, b, rows)
	p.grow()
}

// grow doubles the heads (relink) when the chains are over postLoad long
// on average.
func (p *Postings) grow() {
	if p.nents > postLoad*Bands*p.nh {
		p.relink()
	}
}

// LowestSharedBand is the smallest band index at which a and b hold the
// same Rows signature values, -1 when none.
func LowestSharedBand(a, b *Fingerprint) int { return lowestShared(&a.Sig, &b.Sig) }

func lowestShared(a, b *[K]uint16) int {
	for band := range Bands {
		if [Rows]uint16(a[band*Rows:]) == [Rows]uint16(b[band*Rows:]) {
			return band
		}
	}
	return -1
}

// before orders trips by (StartMs, vehicle, date, trip): of two matching
// trips that are not simultaneous (Judge) the later one is the copy.
func before(a, b *Fingerprint) bool {
	switch {
	case a.StartMs != b.StartMs:
		return a.StartMs < b.StartMs
	case a.Vehicle != b.Vehicle:
		return a.Vehicle < b.Vehicle
	case a.Date != b.Date:
		return a.Date < b.Date
	}
	return a.Trip < b.Trip
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
// day's budget is judged but not kept. A trip held already (its key) gains
// the band in its band set, entered under the held fingerprint's band
// values, as Restore enters it, even when the one offered differs (a
// re-scored day's trip): the state is always the one its changelog
// restores. (The map-based postings before the compact layout entered it
// under the offered fingerprint's band key, which its drop then missed: a
// list entry without a fingerprint, dereferenced by a later offer.)
func (p *Postings) Offer(fp *Fingerprint, band int) []Verdict {
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
	selfV, selfD := p.vehicles.id(fp.Vehicle), p.dates.id(fp.Date)
	var held uint32
	if selfV != 0 && selfD != 0 {
		held = p.keys.find(key{selfV, selfD, fp.Trip})
	}
	if held != 0 && p.slot(held).bands&(1<<band) != 0 {
		return nil
	}
	rows := rowsOf(&fp.Sig, band)
	var best map[fpKey]Verdict
	var o Fingerprint
	for e := *p.head(band, rows); e != 0; e = p.ents[e-1].next {
		sl := p.slot(p.ents[e-1].slot)
		if rowsOf(&sl.sig, band) != rows || sl.veh == selfV && sl.date == selfD {
			continue // another band value in a merged chain, or the same vehicle-day: the scoring task's own index judges it
		}
		if lowestShared(&sl.sig, &fp.Sig) != band {
			continue // judged on the partition of a lower shared band
		}
		p.load(sl, &o)
		orig, cp, _, c, why := Judge(&p.cfg, &o, fp)
		if why != "" {
			continue
		}
		v := Verdict{Vehicle: cp.Vehicle, Date: cp.Date, Trip: cp.Trip, OfVehicle: orig.Vehicle, OfDate: orig.Date,
			OfTrip: orig.Trip, ContainPermille: uint16(min(1000, c*1000))}
		ck := fpKey{cp.Vehicle, cp.Date, cp.Trip}
		if best == nil {
			best = map[fpKey]Verdict{}
		}
		if w, seen := best[ck]; !seen || v.ContainPermille > w.ContainPermille ||
			v.ContainPermille == w.ContainPermille && w.ID() > v.ID() {
			best[ck] = v
		}
	}
	switch {
	case held != 0:
		sl := p.slot(held)
		sl.bands |= 1 << band
		p.hold(held, band, rowsOf(&sl.sig, band)) // the entry of the fingerprint held, as Restore builds it
		p.dirty[p.keyOf(sl)] = struct{}{}
	case p.perDay[fp.Date] < p.budget:
		id := p.add(fp, 1<<band, selfV, selfD)
		p.hold(id, band, rows)
		p.dirty[p.keyOf(p.slot(id))] = struct{}{}
	}
	if best == nil {
		return nil
	}
	out := slices.Collect(maps.Values(best))
	slices.SortFunc(out, func(a, b Verdict) int { return strings.Compare(a.ID(), b.ID()) })
	return out
}

// keyOf is the key of the fingerprint in sl, its strings the interned ones.
func (p *Postings) keyOf(sl *pslot) fpKey {
	return fpKey{p.vehicles.name(sl.veh), p.dates.name(sl.date), sl.trip}
}

// add puts fp in a new slot with bands (its entries are the caller's) and
// returns its id; v and d are its vehicle's and date's ids when interned
// (else 0).
func (p *Postings) add(fp *Fingerprint, bands uint32, v, d uint32) uint32 {
	id := p.slots.alloc()
	sl := p.slot(id)
	*sl = pslot{sig: fp.Sig, startMs: fp.StartMs, endMs: fp.EndMs, exact: fp.Exact, from: fp.From, to: fp.To, n: fp.N,
		bands: bands, veh: p.vehicles.refID(v, fp.Vehicle), date: p.dates.refID(d, fp.Date), trip: fp.Trip,
		version: fp.Version, origin: fp.Origin}
	p.keys.insert(id)
	p.perDay[p.dates.name(sl.date)]++
	p.n++
	return id
}

// keep is the oldest date kept: today - (Retention - 1) days.
func (p *Postings) keep() string {
	d, err := time.Parse(time.DateOnly, p.today)
	if err != nil {
		return ""
	}
	return d.AddDate(0, 0, -(p.retention - 1)).Format(time.DateOnly)
}

// expire drops the fingerprints of days before keep. When that is more
// than an eighth of them it rebuilds the chains instead of unlinking each.
func (p *Postings) expire() {
	keep := p.oldest
	old := make([]bool, len(p.dates.names)+1)
	for i, d := range p.dates.names {
		old[i+1] = p.dates.refs[i] > 0 && d < keep
	}
	var ids []uint32
	for id := uint32(1); id <= p.slots.top; id++ {
		if sl := p.slot(id); sl.veh != 0 && old[sl.date] {
			ids = append(ids, id)
		}
	}
	bulk := 8*len(ids) > p.n
	for _, id := range ids {
		p.dirty[p.keyOf(p.slot(id))] = struct{}{}
		p.drop(id, !bulk)
	}
	if bulk {
		p.relink()
	}
}

// drop frees slot id and, when unlink, its entries (else the caller
// relinks).
func (p *Postings) drop(id uint32, unlink bool) {
	sl := p.slot(id)
	for b := range Bands {
		if !unlink || sl.bands&(1<<b) == 0 {
			continue
		}
		h := p.head(b, rowsOf(&sl.sig, b))
		for prev, e := uint32(0), *h; e != 0; prev, e = e, p.ents[e-1].next {
			if p.ents[e-1].slot != id {
				continue
			}
			if prev == 0 {
				*h = p.ents[e-1].next
			} else {
				p.ents[prev-1].next = p.ents[e-1].next
			}
			p.ents[e-1] = pent{}
			p.efree = append(p.efree, e)
			p.nents--
			break
		}
	}
	k := key{sl.veh, sl.date, sl.trip}
	p.keys.delete(k, id)
	date := p.dates.name(k.date)
	if p.perDay[date]--; p.perDay[date] <= 0 {
		delete(p.perDay, date)
	}
	p.vehicles.unref(k.veh)
	p.dates.unref(k.date)
	p.slots.release(id)
	p.n--
}

// bytes is the heap the postings hold, by their structures' sizes (dirty
// aside: it empties at each Flush).
func (p *Postings) bytes() int {
	return p.slots.bytes() +
		4*len(p.keys.ids) + 8*cap(p.ents) + 4*cap(p.efree) + 4*len(p.heads) + p.vehicles.bytes() +
		p.dates.bytes() + 48*len(p.perDay)
}

// postingVersion is the first byte of a posting's changelog value.
const postingVersion = 1

// Flush calls put once for every fingerprint changed since the last Flush,
// in key order: key Key(fp), value version byte 1, the band set (4 bytes,
// big endian, bit b = band b), the fingerprint record (AppendBinary); nil
// for a fingerprint dropped.
func (p *Postings) Flush(put func(key string, value []byte)) {
	keys := slices.SortedFunc(maps.Keys(p.dirty), func(a, b fpKey) int {
		return strings.Compare(a.vehicle+"/"+a.date+"/"+strconv.Itoa(int(a.trip)), b.vehicle+"/"+b.date+"/"+strconv.Itoa(int(b.trip)))
	})
	var fp Fingerprint
	for _, k := range keys {
		key := k.vehicle + "/" + k.date + "/" + strconv.Itoa(int(k.trip))
		id := p.find(k.vehicle, k.date, k.trip)
		if id == 0 {
			put(key, nil)
			continue
		}
		sl := p.slot(id)
		p.load(sl, &fp)
		b := binary.BigEndian.AppendUint32([]byte{postingVersion}, sl.bands)
		put(key, AppendBinary(b, &fp))
	}
	if len(p.dirty) > 4096 {
		p.dirty = map[fpKey]struct{}{} // clear keeps a map's buckets: an expiry's burst would stay allocated
	} else {
		clear(p.dirty)
	}
}

// Restore applies one changelog record written by Flush (replayed from the
// start of the changelog, before any Offer). The band lists are rebuilt in
// changelog order; arrival order within a list does not change any
// verdict.
func (p *Postings) Restore(key string, value []byte) error {
	parts := strings.Split(key, "/")
	if len(parts) != 3 {
		return fmt.Errorf("restore %s: bad posting key", key)
	}
	trip, err := strconv.ParseUint(parts[2], 10, 16)
	if err != nil {
		return fmt.Errorf("restore %s: bad posting key", key)
	}
	if old := p.find(parts[0], parts[1], uint16(trip)); old != 0 {
		p.drop(old, true)
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
	id := p.add(&fp, bands, 0, 0)
	for b := range Bands {
		if bands&(1<<b) != 0 {
			p.link(id, b, rowsOf(&fp.Sig, b))
		}
	}
	p.grow()
	if fp.Date > p.today {
		p.today = fp.Date
		p.oldest = p.keep()
	}
	return nil
}
