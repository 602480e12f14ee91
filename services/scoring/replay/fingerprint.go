// Package replay recognises a day whose trace repeats an earlier trace (the
// same vehicle's, shifted in time, or another vehicle's) within tolerance:
// GPS noise of a few metres, another sampling rate, a part of a trip. It is
// pure (no Kafka, no clock): Trips turns a day's fixes into one compact
// Fingerprint per trip, Index keeps the fingerprints of the last days in
// bounded memory and finds the earlier ones a new trip matches, and
// AppendBinary/Decode are the record format of the compacted topic that
// rebuilds an Index after a restart. docs/scoring.md, "Replay detection",
// specifies every step exactly.
package replay

import (
	"errors"
	"math"
	"slices"
)

// K is the number of MinHash values of a fingerprint, Bands x Rows.
const (
	K     = 64
	Bands = 32
	Rows  = K / Bands
)

// Config holds the fingerprint's parameters. Zero fields take the
// defaults of DefaultConfig; Version names them (a fingerprint is only
// compared with fingerprints of its own version).
type Config struct {
	Version     uint8   // the fingerprint format and parameters (1)
	CellM       float64 // grid cell edge, metres (250)
	MarginM     float64 // hysteresis: a fix must leave the current cell by this much to change cell (30)
	MovingKmh   float64 // fixes slower than this are not part of a trip (5)
	TripGapMs   int64   // a silence between moving fixes longer than this ends a trip (180 s)
	Span        int     // a shingle spans this many cell changes (4)
	BucketRatio float64 // duration buckets grow by this ratio (1.08)
	MinShingles int     // trips with fewer shingles are short: they get a short fingerprint or none (24)
	// MinShort: a short trip (MinShort <= N < MinShingles) gets a short
	// fingerprint, matched only as a verbatim copy (Judge, rule 5); fewer
	// shingles get none (4). MinShort = MinShingles: no short fingerprints.
	MinShort   int
	MinContain float64 // a match needs this estimated share of the copy's shingles in the original's (0.5)
	// MinJaccard: a match also needs this estimated Jaccard similarity
	// (equal signature values / K), the evidence floor under which an
	// estimated containment is not trusted (0.125: 8 of 64 values).
	MinJaccard float64
	// WholeCells, PartJaccard, PartShared: the floor of a copy of a part
	// of a trip. A copy whose first and last entry cells are each within
	// WholeCells (Chebyshev) of the original's is a whole-trip copy and
	// needs MinContain and MinJaccard only; any other copy also needs an
	// estimated Jaccard of at least PartJaccard and an estimated
	// C x N of at least PartShared shingles held in the original (2,
	// 0.25: 16 of 64 values, 24: MinShingles).
	WholeCells  int32
	PartJaccard float64
	PartShared  float64
	// NearCells, FarCells: a trip starts near the vehicle's previous trip's
	// end when their cells are at most NearCells apart (Chebyshev), away
	// from it when at least FarCells apart (2 and 8).
	NearCells, FarCells int32
}

// DefaultConfig is version 1 of the fingerprint.
func DefaultConfig() Config {
	return Config{Version: 1, CellM: 250, MarginM: 30, MovingKmh: 5, TripGapMs: 180_000, Span: 4,
		BucketRatio: 1.08, MinShingles: 24, MinShort: 4, MinContain: 0.5, MinJaccard: 0.125,
		WholeCells: 2, PartJaccard: 0.25, PartShared: 24, NearCells: 2, FarCells: 8}
}

// Validate reports parameters the fingerprint cannot work with.
func (c Config) Validate() error {
	if c.CellM <= 0 || c.MarginM < 0 || c.MarginM >= c.CellM/2 || c.MovingKmh < 0 || c.TripGapMs <= 0 ||
		c.Span < 1 || c.BucketRatio <= 1 || c.MinShingles < 1 || c.MinShort < 1 || c.MinShort > c.MinShingles ||
		c.MinContain <= 0 || c.MinContain > 1 ||
		c.MinJaccard < 0 || c.MinJaccard > 1 || c.WholeCells < 0 || c.PartJaccard < 0 || c.PartJaccard > 1 ||
		c.PartShared < 0 || c.NearCells < 0 || c.FarCells <= c.NearCells {
		return errors.New("replay: invalid config")
	}
	return nil
}

// Fix is one sample of a trace: event time (UTC Unix ms), WGS84 position,
// reported speed.
type Fix struct {
	TimeMs   int64
	Lat, Lon float64
	SpeedKmh float64
}

// Fingerprint is one trip's summary: who drove it when, how many shingles
// it had, and their MinHash signature (the 16 low bits of each minimum).
type Fingerprint struct {
	Version uint8
	Vehicle string
	Date    string // the local day of the trip's day window, YYYY-MM-DD
	Trip    uint16 // index of the trip in its day (time order)
	StartMs int64  // first fix of the trip, UTC Unix ms
	EndMs   int64  // last fix
	N       uint32 // distinct shingles
	Sig     [K]uint16
	// From and To are the trip's first and last entry cells (column, row).
	From, To [2]int32
	// Origin says where the trip starts against the end of the vehicle's
	// previous trip (OriginUnknown, OriginNear, OriginAway): the evidence
	// that tells a copy from its original when the two are driven at the
	// same time (Judge).
	Origin uint8
	// Exact is, for a short trip (N < MinShingles), the hash of its cell
	// entries at their times after its first entry, to the millisecond
	// (exactHash): equal only for the same trace re-sent, whatever the
	// time shift. 0 for other trips.
	Exact uint64
	// first: the trip is the first of its day (its Origin needs the
	// vehicle's earlier days: Index.Anchor). Not part of the record.
	first bool
}

// Origin values.
const (
	OriginUnknown uint8 = 0 // no previous trip known, or between NearCells and FarCells
	OriginNear    uint8 = 1 // within NearCells of the previous trip's last cell
	OriginAway    uint8 = 2 // FarCells or more from it
)

// origin classifies a trip starting in cell from after a trip that ended
// in cell prev.
func origin(cfg *Config, prev, from [2]int32) uint8 {
	d := max(abs32(from[0]-prev[0]), abs32(from[1]-prev[1]))
	switch {
	case d <= cfg.NearCells:
		return OriginNear
	case d >= cfg.FarCells:
		return OriginAway
	}
	return OriginUnknown
}

func abs32(x int32) int32 {
	if x < 0 {
		return -x
	}
	return x
}

// cell is a grid cell: column (east) and row (north) of CellM squares of
// an equirectangular projection at the latitude band's scale.
type cell struct{ X, Y int32 }

// proj projects a position to metres: y = lat x 111,320; x = lon x 111,320
// x cos(floor(lat) + 0.5 degrees). The scale is fixed per 1-degree band so
// every box computes the same cells whatever its exact latitude.
func proj(lat, lon float64) (x, y float64) {
	f := math.Floor(lat)
	var c float64
	if f >= -90 && f <= 90 {
		c = bandCos[int(f)+90] // the same value, without a cosine per fix
	} else {
		c = math.Cos((f + 0.5) * math.Pi / 180)
	}
	return lon * 111320 * c, lat * 111320
}

// bandCos[i] is proj's cosine of the band of latitude i - 90 (floor of the
// latitude), computed by the same expression.
var bandCos = func() (t [181]float64) {
	for i := range t {
		t[i] = math.Cos((float64(i-90) + 0.5) * math.Pi / 180)
	}
	return t
}()

// shingles returns the trip's shingles, sorted and distinct: for each k,
// the hash of (cell k, cell k+Span, bucket of the time from entering cell
// k to entering cell k+Span). The first entry is where the trip started,
// not a crossing, so shingles start at k = 1. The bucket of d ms is
// floor(ln(d / 1000) / ln(BucketRatio)) (d >= 1 s; below, bucket -1).
func shingles(cfg Config, es []entry, dst []uint64) []uint64 {
	lr := math.Log(cfg.BucketRatio)
	for k := 1; k+cfg.Span < len(es); k++ {
		a, b := es[k], es[k+cfg.Span]
		d := float64(b.T-a.T) / 1000
		q := int64(-1)
		if d >= 1 {
			q = int64(math.Floor(math.Log(d) / lr))
		}
		h := mix64(uint64(uint32(a.X))<<32 | uint64(uint32(a.Y)))
		h = mix64(h ^ (uint64(uint32(b.X))<<32 | uint64(uint32(b.Y))))
		h = mix64(h ^ uint64(q))
		dst = append(dst, h)
	}
	slices.Sort(dst)
	return slices.Compact(dst)
}

// mix64 is SplitMix64's finaliser.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// seeds are the K hash functions' seeds: mix64(i + 1).
var seeds = func() (s [K]uint64) {
	for i := range s {
		s[i] = mix64(uint64(i) + 1)
	}
	return s
}()

// signature is the MinHash signature: for each i the minimum over the
// shingles h of mix64(h ^ seeds[i]), keeping its 16 low bits.
func signature(sh []uint64) (sig [K]uint16) {
	var m [K]uint64
	for i := range m {
		m[i] = math.MaxUint64
	}
	for _, h := range sh {
		for i := range m {
			if v := mix64(h ^ seeds[i]); v < m[i] {
				m[i] = v
			}
		}
	}
	for i := range m {
		sig[i] = uint16(m[i])
	}
	return sig
}

// Similarity is the estimated Jaccard similarity of two fingerprints'
// shingle sets (the share of equal signature values) and the estimated
// containment of b's set in a's: J (|A| + |B|) / ((1 + J) |B|), capped at 1.
func Similarity(a, b *Fingerprint) (jaccard, contain float64) {
	eq := 0
	for i := range a.Sig {
		if a.Sig[i] == b.Sig[i] {
			eq++
		}
	}
	j := float64(eq) / K
	if b.N == 0 {
		return j, 0
	}
	return j, min(1, j*float64(a.N+b.N)/((1+j)*float64(b.N)))
}

// Judge decides whether one of two trips (not the same trip) is a copy of
// the other (docs/scoring.md, "Replay detection", Matching), and returns
// the original, the copy, their estimated Jaccard and containment
// (Similarity(orig, cp)) and why not ("" when cp is a copy of orig):
//
//  1. Simultaneous trips (Simultaneous) are one trace reported twice at
//     the time it was driven (a cloned box, a same-day copy): the copy is
//     the one that
//     starts away from its vehicle's previous trip (OriginAway) while the
//     other starts near its own (OriginNear); without that one-sided
//     evidence, no verdict ("simultaneous, no one-sided origin").
//  2. Otherwise the copy is the later by (StartMs, vehicle, date, trip).
//  3. A copy inside a concurrent original (Concurrent; the copy starts
//     more than TripGapMs after it and ends no later: a cloned box's
//     victim) gives no verdict
//     ("inside the original's span").
//  4. The copy holds at least MinContain of its shingles in the original
//     and the two have an estimated Jaccard of at least MinJaccard; a copy
//     that is not Whole (a part of a trip) also needs a Jaccard of at
//     least PartJaccard and containment x its N of at least PartShared.
//  5. When either trip is short (N < MinShingles), the pair must be a
//     verbatim copy: both short, with the same Exact (shortWhy); rule 4
//     then applies as to any pair.
func Judge(cfg *Config, a, b *Fingerprint) (orig, cp *Fingerprint, jaccard, contain float64, why string) {
	orig, cp = a, b
	if Simultaneous(cfg, a, b) {
		switch {
		case a.Origin == OriginNear && b.Origin == OriginAway:
		case a.Origin == OriginAway && b.Origin == OriginNear:
			orig, cp = b, a
		default:
			return nil, nil, 0, 0, "simultaneous, no one-sided origin"
		}
	} else if before(b, a) {
		orig, cp = b, a
	}
	if Concurrent(orig, cp) && cp.StartMs > orig.StartMs+cfg.TripGapMs && cp.EndMs <= orig.EndMs {
		return orig, cp, 0, 0, "inside the original's span"
	}
	jaccard, contain = Similarity(orig, cp)
	if Short(cfg, a) || Short(cfg, b) {
		if why = shortWhy(cfg, orig, cp); why != "" {
			return orig, cp, jaccard, contain, why
		}
	}
	switch {
	case contain < cfg.MinContain:
		why = "containment below MinContain"
	case jaccard < cfg.MinJaccard:
		why = "Jaccard below MinJaccard"
	case !Whole(cfg, orig, cp) && jaccard < cfg.PartJaccard:
		why = "a part of a trip, Jaccard below PartJaccard"
	case !Whole(cfg, orig, cp) && contain*float64(cp.N) < cfg.PartShared:
		why = "a part of a trip, shared shingles below PartShared"
	}
	return orig, cp, jaccard, contain, why
}

// Short reports whether fp is a short trip's fingerprint (N < MinShingles).
func Short(cfg *Config, fp *Fingerprint) bool { return int(fp.N) < cfg.MinShingles }

// shortWhy is Judge's rule 5 for a pair with a short trip: a verbatim
// copy only, both short with the same nonzero Exact.
func shortWhy(cfg *Config, orig, cp *Fingerprint) string {
	switch {
	case !Short(cfg, orig) || !Short(cfg, cp):
		return "short and long"
	case orig.Exact == 0 || orig.Exact != cp.Exact:
		return "short, not verbatim"
	}
	return ""
}

// exactHash is a short trip's Exact over its entries e_0 .. e_n-1: h = 0,
// then per entry h = mix64(h ^ (uint32(X) << 32 | uint32(Y))) and h =
// mix64(h ^ (T - T_0)), ms; 1 if the result is 0.
func exactHash(es []entry) uint64 {
	var h uint64
	for _, e := range es {
		h = mix64(h ^ (uint64(uint32(e.X))<<32 | uint64(uint32(e.Y))))
		h = mix64(h ^ uint64(e.T-es[0].T))
	}
	return max(h, 1)
}

// Whole reports whether cp copies the whole of orig: its first and its
// last entry cells are each within WholeCells (Chebyshev) of orig's.
func Whole(cfg *Config, orig, cp *Fingerprint) bool {
	d := func(a, b [2]int32) int32 { return max(abs32(a[0]-b[0]), abs32(a[1]-b[1])) }
	return d(orig.From, cp.From) <= cfg.WholeCells && d(orig.To, cp.To) <= cfg.WholeCells
}

// Simultaneous reports whether two trips are one drive reported at the
// time it was driven: trips of two vehicles whose spans [StartMs, EndMs]
// intersect and whose starts or whose ends are at most TripGapMs apart (a
// copy shifted by more than a trip gap is an ordinary, later copy).
func Simultaneous(cfg *Config, a, b *Fingerprint) bool {
	return a.Vehicle != b.Vehicle && a.StartMs <= b.EndMs && b.StartMs <= a.EndMs &&
		(abs64(a.StartMs-b.StartMs) <= cfg.TripGapMs || abs64(a.EndMs-b.EndMs) <= cfg.TripGapMs)
}

// Concurrent reports whether two trips of two vehicles were driven at
// least partly at the same time: their spans [StartMs, EndMs] intersect.
func Concurrent(a, b *Fingerprint) bool {
	return a.Vehicle != b.Vehicle && a.StartMs <= b.EndMs && b.StartMs <= a.EndMs
}

func abs64(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// Refusal names the first rule that keeps trip cp from being judged a copy
// of trip orig: no shared band (the checks never compare the pair), a rule
// of Judge, or Judge calling orig the copy ("" when none does).
func Refusal(cfg *Config, orig, cp *Fingerprint) string {
	if LowestSharedBand(orig, cp) < 0 {
		return "no shared LSH band"
	}
	_, c, _, _, why := Judge(cfg, orig, cp)
	switch {
	case why != "":
		return why
	case c != cp:
		return "judged the original"
	}
	return ""
}
