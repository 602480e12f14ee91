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
	MinShingles int     // trips with fewer shingles get no fingerprint (24)
	MinContain  float64 // a match needs this estimated share of the new trip's shingles in the old one's (0.5)
}

// DefaultConfig is version 1 of the fingerprint.
func DefaultConfig() Config {
	return Config{Version: 1, CellM: 250, MarginM: 30, MovingKmh: 5, TripGapMs: 180_000, Span: 4,
		BucketRatio: 1.08, MinShingles: 24, MinContain: 0.5}
}

// Validate reports parameters the fingerprint cannot work with.
func (c Config) Validate() error {
	if c.CellM <= 0 || c.MarginM < 0 || c.MarginM >= c.CellM/2 || c.MovingKmh < 0 || c.TripGapMs <= 0 ||
		c.Span < 1 || c.BucketRatio <= 1 || c.MinShingles < 1 || c.MinContain <= 0 || c.MinContain > 1 {
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
}

// cell is a grid cell: column (east) and row (north) of CellM squares of
// an equirectangular projection at the latitude band's scale.
type cell struct{ X, Y int32 }

// proj projects a position to metres: y = lat x 111,320; x = lon x 111,320
// x cos(floor(lat) + 0.5 degrees). The scale is fixed per 1-degree band so
// every box computes the same cells whatever its exact latitude.
func proj(lat, lon float64) (x, y float64) {
	band := (math.Floor(lat) + 0.5) * math.Pi / 180
	return lon * 111320 * math.Cos(band), lat * 111320
}

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
