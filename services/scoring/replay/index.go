package replay

import (
	"errors"
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
// (estimated, Similarity). Not safe for concurrent use.
type Index struct {
	cfg       Config
	retention int // days
	budget    int // fingerprints kept per day
	fps       map[fpKey]*Fingerprint
	perDay    map[string]int
	bands     map[uint64][]fpKey
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
	return &Index{cfg: cfg, retention: retention, budget: budget, fps: map[fpKey]*Fingerprint{},
		perDay: map[string]int{}, bands: map[uint64][]fpKey{}}, nil
}

// Len is the number of fingerprints held.
func (x *Index) Len() int { return len(x.fps) }

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

// Check returns the earlier fingerprints fp repeats, most similar first
// (ties by vehicle, date, trip). It changes nothing.
func (x *Index) Check(fp *Fingerprint) []Match {
	if fp.Version != x.cfg.Version {
		return nil
	}
	self := fpKey{fp.Vehicle, fp.Date, fp.Trip}
	seen := map[fpKey]bool{}
	var out []Match
	for b := range Bands {
		for _, k := range x.bands[bandKey(fp, b)] {
			if seen[k] || k == self {
				continue
			}
			seen[k] = true
			old := x.fps[k]
			if old.StartMs >= fp.StartMs {
				continue // the copy is the later one
			}
			j, c := Similarity(old, fp)
			if c >= x.cfg.MinContain {
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
	if _, ok := x.fps[k]; ok {
		x.remove(k)
	}
	if x.perDay[fp.Date] >= x.budget {
		return false
	}
	c := *fp
	x.fps[k] = &c
	x.perDay[fp.Date]++
	for b := range Bands {
		bk := bandKey(fp, b)
		x.bands[bk] = append(x.bands[bk], k)
	}
	return true
}

// Remove forgets the fingerprint of one trip, if held.
func (x *Index) Remove(vehicle, date string, trip uint16) {
	if k := (fpKey{vehicle, date, trip}); x.fps[k] != nil {
		x.remove(k)
	}
}

func (x *Index) remove(k fpKey) {
	fp := x.fps[k]
	for b := range Bands {
		bk := bandKey(fp, b)
		l := slices.DeleteFunc(x.bands[bk], func(e fpKey) bool { return e == k })
		if len(l) == 0 {
			delete(x.bands, bk)
		} else {
			x.bands[bk] = l
		}
	}
	delete(x.fps, k)
	if x.perDay[k.date]--; x.perDay[k.date] <= 0 {
		delete(x.perDay, k.date)
	}
}

// Expire drops the fingerprints of days before the Retention days ending
// with today (dates compare as YYYY-MM-DD strings; keep is the oldest date
// kept, computed by the caller as today - (Retention - 1) days) and
// returns their topic keys, for tombstones.
func (x *Index) Expire(keep string) []string {
	var gone []string
	for k, fp := range x.fps {
		if k.date < keep {
			gone = append(gone, Key(fp))
			x.remove(k)
		}
	}
	slices.Sort(gone)
	return gone
}

// Retention is the number of days the index keeps.
func (x *Index) Retention() int { return x.retention }
