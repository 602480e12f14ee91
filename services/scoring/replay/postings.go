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
	fps       map[fpKey]*posting
	lists     map[uint64][]fpKey // band key -> fingerprints holding it here, in arrival order
	perDay    map[string]int
	today     string
	oldest    string             // keep(today), cached
	dirty     map[fpKey]struct{} // changed since the last Flush (absent from fps: a tombstone)
}

type posting struct {
	fp    Fingerprint
	bands uint32 // bit b: the fingerprint reached this partition through band b
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
	return &Postings{cfg: cfg, retention: retention, budget: budget, fps: map[fpKey]*posting{},
		lists: map[uint64][]fpKey{}, perDay: map[string]int{}, dirty: map[fpKey]struct{}{}}, nil
}

// Len is the number of fingerprints held.
func (p *Postings) Len() int { return len(p.fps) }

// Entries is the number of (band key, fingerprint) entries held.
func (p *Postings) Entries() int {
	n := 0
	for _, l := range p.lists {
		n += len(l)
	}
	return n
}

// LowestSharedBand is the smallest band index at which a and b hold the
// same Rows signature values, -1 when none.
func LowestSharedBand(a, b *Fingerprint) int {
	for band := range Bands {
		if [Rows]uint16(a.Sig[band*Rows:]) == [Rows]uint16(b.Sig[band*Rows:]) {
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
// day's budget is judged but not kept.
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
	k := fpKey{fp.Vehicle, fp.Date, fp.Trip}
	held := p.fps[k]
	if held != nil && held.bands&(1<<band) != 0 {
		return nil
	}
	bk := bandKey(fp, band)
	best := map[fpKey]Verdict{}
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
		ck := fpKey{cp.Vehicle, cp.Date, cp.Trip}
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
		p.fps[k] = &posting{fp: *fp, bands: 1 << band}
		p.perDay[fp.Date]++
		p.lists[bk] = append(p.lists[bk], k)
		p.dirty[k] = struct{}{}
	}
	out := slices.Collect(maps.Values(best))
	slices.SortFunc(out, func(a, b Verdict) int { return strings.Compare(a.ID(), b.ID()) })
	return out
}

// keep is the oldest date kept: today - (Retention - 1) days.
func (p *Postings) keep() string {
	d, err := time.Parse(time.DateOnly, p.today)
	if err != nil {
		return ""
	}
	return d.AddDate(0, 0, -(p.retention - 1)).Format(time.DateOnly)
}

// expire drops the fingerprints of days before keep.
func (p *Postings) expire() {
	keep := p.oldest
	for k, ps := range p.fps {
		if k.date >= keep {
			continue
		}
		p.drop(k, ps)
		p.dirty[k] = struct{}{}
	}
}

func (p *Postings) drop(k fpKey, ps *posting) {
	for b := range Bands {
		if ps.bands&(1<<b) == 0 {
			continue
		}
		bk := bandKey(&ps.fp, b)
		l := slices.DeleteFunc(p.lists[bk], func(x fpKey) bool { return x == k })
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
func (p *Postings) Restore(key string, value []byte) error {
	parts := strings.Split(key, "/")
	if len(parts) != 3 {
		return fmt.Errorf("restore %s: bad posting key", key)
	}
	trip, err := strconv.ParseUint(parts[2], 10, 16)
	if err != nil {
		return fmt.Errorf("restore %s: bad posting key", key)
	}
	k := fpKey{parts[0], parts[1], uint16(trip)}
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
	ps := &posting{fp: fp, bands: bands}
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
