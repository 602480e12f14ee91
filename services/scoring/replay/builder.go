package replay

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// MaxRuns bounds the runs a Builder keeps (arrival-order fragments of the
// day's trace); beyond it the two runs closest in time are joined.
const MaxRuns = 8

// MaxEntries bounds the cell entries a Builder keeps (about 1,000 km of
// driving at 250 m cells); later entries are dropped.
const MaxEntries = 4096

// joinMs: a fix at most this long after a run's last fix continues the run
// (contiguous sampling); a later one starts a new run, so an upload that
// fills the gap later is not lost.
const joinMs = 10_000

// entry is the moment a trace entered a grid cell, T ms after the
// Builder's base; Brk marks the first entry of a trip.
type entry struct {
	X, Y int32
	T    uint32
	Brk  bool
}

// run is a stretch of the trace built from fixes that arrived in time
// order: the hysteresis walk's state and the cells entered.
type run struct {
	First, Last int64   // first and last fix, ms after base
	PX, PY      float64 // last fix, projected metres
	Cur         [2]int32
	Ents        []entry
}

// Builder folds one vehicle-day's fixes, in any arrival order, into the
// cell entries its fingerprints are computed from, in bounded memory
// (16 bytes per entry, one entry per cell entered: ~64 bytes per km). Fixes
// that arrive in time order extend one run; an upload arriving out of
// order starts another run, and runs are joined in time order when the day
// is fingerprinted. A fix inside a run's time span (a repeat, a late fix)
// is ignored.
type Builder struct {
	Base    int64 // UTC Unix ms that entry times count from (the day's start)
	runs    []run
	n       int // entries kept
	Dropped int // entries beyond MaxEntries
	// The day's last fix with a position, whatever its speed (End): its
	// time, ms after Base, and cell; hasLast false until one is folded in.
	lastT    int64
	lastCell [2]int32
	hasLast  bool
}

// NewBuilder starts an empty Builder whose times count from base (a day
// window's start; fixes must lie within 49 days after it).
func NewBuilder(base int64) *Builder { return &Builder{Base: base} }

// Add folds one fix in: a fix without a position (lat = lon = 0) or
// outside [Base, Base + 2^32 - 1] ms is ignored; any other fix, whatever
// its speed, may be the day's last fix (End); of those, fixes slower
// than cfg.MovingKmh go no further.
func (b *Builder) Add(cfg *Config, f Fix) {
	if (f.Lat == 0 && f.Lon == 0) || f.TimeMs < b.Base || f.TimeMs-b.Base > math.MaxUint32 {
		return
	}
	t := f.TimeMs - b.Base
	x, y := proj(f.Lat, f.Lon)
	if !b.hasLast || t >= b.lastT {
		c := [2]int32{int32(math.Floor(x / cfg.CellM)), int32(math.Floor(y / cfg.CellM))}
		// the latest fix; of several at that time, the greatest cell
		// (column, then row): the same whatever the arrival order
		if !b.hasLast || t > b.lastT || c[0] > b.lastCell[0] || c[0] == b.lastCell[0] && c[1] > b.lastCell[1] {
			b.lastT, b.lastCell, b.hasLast = t, c, true
		}
	}
	if f.SpeedKmh < cfg.MovingKmh {
		return
	}
	// i: the last run starting at or before t.
	i := len(b.runs) - 1
	for i >= 0 && b.runs[i].First > t {
		i--
	}
	if i >= 0 && t <= b.runs[i].Last {
		return // inside a run: a repeat or a late fix
	}
	if i >= 0 && t-b.runs[i].Last <= joinMs && (i+1 == len(b.runs) || t < b.runs[i+1].First) {
		b.step(cfg, &b.runs[i], x, y, t)
		return
	}
	c := [2]int32{int32(math.Floor(x / cfg.CellM)), int32(math.Floor(y / cfg.CellM))}
	r := run{First: t, Last: t, PX: x, PY: y, Cur: c}
	b.add(&r, entry{X: c[0], Y: c[1], T: uint32(t)})
	b.runs = slices.Insert(b.runs, i+1, r)
	if len(b.runs) > MaxRuns {
		best := 0
		for j := 1; j+1 < len(b.runs); j++ {
			if b.runs[j+1].First-b.runs[j].Last < b.runs[best+1].First-b.runs[best].Last {
				best = j
			}
		}
		b.joinRuns(cfg, best)
	}
}

func (b *Builder) add(r *run, e entry) {
	if b.n >= MaxEntries {
		b.Dropped++
		return
	}
	r.Ents = append(r.Ents, e)
	b.n++
}

// step walks run r on to the fix (x, y) at t: the current cell changes only
// when the fix lies outside it grown by MarginM on every side; the new cell
// is the fix's own, entered at the time interpolated where the segment from
// the previous fix first crosses the grown cell's edge. A fix more than
// TripGapMs after the previous one starts a new trip.
func (b *Builder) step(cfg *Config, r *run, x, y float64, t int64) {
	if t-r.Last > cfg.TripGapMs {
		c := [2]int32{int32(math.Floor(x / cfg.CellM)), int32(math.Floor(y / cfg.CellM))}
		b.add(r, entry{X: c[0], Y: c[1], T: uint32(t), Brk: true})
		r.Cur, r.PX, r.PY, r.Last = c, x, y, t
		return
	}
	x0, y0 := float64(r.Cur[0])*cfg.CellM-cfg.MarginM, float64(r.Cur[1])*cfg.CellM-cfg.MarginM
	x1, y1 := x0+cfg.CellM+2*cfg.MarginM, y0+cfg.CellM+2*cfg.MarginM
	if x >= x0 && x < x1 && y >= y0 && y < y1 {
		r.PX, r.PY, r.Last = x, y, t
		return
	}
	frac := 1.0
	cross := func(p, q, lo, hi float64) {
		switch {
		case q < lo && p >= lo && p != q:
			frac = min(frac, (p-lo)/(p-q))
		case q >= hi && p < hi && p != q:
			frac = min(frac, (hi-p)/(q-p))
		}
	}
	cross(r.PX, x, x0, x1)
	cross(r.PY, y, y0, y1)
	c := [2]int32{int32(math.Floor(x / cfg.CellM)), int32(math.Floor(y / cfg.CellM))}
	te := float64(r.Last) + frac*float64(t-r.Last)
	b.add(r, entry{X: c[0], Y: c[1], T: uint32(math.Round(te))})
	r.Cur, r.PX, r.PY, r.Last = c, x, y, t
}

// joinRuns joins run i+1 onto run i (see entries).
func (b *Builder) joinRuns(cfg *Config, i int) {
	a, c := &b.runs[i], &b.runs[i+1]
	a.Ents = appendRun(cfg, a.Ents, a, c)
	a.Last, a.PX, a.PY, a.Cur = c.Last, c.PX, c.PY, c.Cur
	b.runs = slices.Delete(b.runs, i+1, i+2)
}

// appendRun appends run c's entries after run a's (a ends before c
// starts): c's first entry starts a trip when c begins more than
// TripGapMs after a ends, and is dropped when it is the cell a was in.
func appendRun(cfg *Config, dst []entry, a, c *run) []entry {
	es := c.Ents
	if len(es) > 0 && !es[0].Brk {
		switch {
		case c.First-a.Last > cfg.TripGapMs:
			e := es[0]
			e.Brk = true
			dst = append(dst, e)
			es = es[1:]
		case es[0].X == a.Cur[0] && es[0].Y == a.Cur[1]:
			es = es[1:]
		}
	}
	return append(dst, es...)
}

// End returns the day's last fix with a position folded in, whatever its
// speed (Add): its time (UTC Unix ms) and its own cell, (floor(x /
// CellM), floor(y / CellM)) of its projected position; of several fixes
// at that time, the greatest cell (column, then row). ok is false when no
// fix with a position was folded in. It is where the vehicle was last
// seen that day (a box keeps reporting while parked), the anchor of its
// next day's first trip (Index.SetEnd).
func (b *Builder) End() (timeMs int64, cell [2]int32, ok bool) {
	if !b.hasLast {
		return 0, [2]int32{}, false
	}
	return b.Base + b.lastT, b.lastCell, true
}

// Entries returns the day's cell entries, runs joined in time order.
func (b *Builder) entries(cfg *Config) []entry {
	if len(b.runs) == 0 {
		return nil
	}
	out := slices.Clone(b.runs[0].Ents)
	for i := 1; i < len(b.runs); i++ {
		out = appendRun(cfg, out, &b.runs[i-1], &b.runs[i])
	}
	return out
}

// Fingerprints splits the day's entries into trips (at each Brk) and
// returns the fingerprint of every trip with at least MinShort shingles
// (under MinShingles: a short fingerprint, see Judge), numbered in time order from 0, each with its first and last
// cell and, after another trip of the day (fingerprinted or not), its
// Origin against that trip's last cell (the day's first trip: see
// Index.Anchor).
func (b *Builder) Fingerprints(cfg *Config, vehicle, date string) []Fingerprint {
	es := b.entries(cfg)
	var out []Fingerprint
	var sh []uint64
	start := 0
	for k := 1; k <= len(es); k++ {
		if k < len(es) && !es[k].Brk {
			continue
		}
		sh = shingles(*cfg, es[start:k], sh[:0])
		if len(sh) >= cfg.MinShort {
			fp := Fingerprint{Version: cfg.Version, Vehicle: vehicle, Date: date, Trip: uint16(len(out)),
				StartMs: b.Base + int64(es[start].T), EndMs: b.Base + int64(es[k-1].T), N: uint32(len(sh)),
				From: [2]int32{es[start].X, es[start].Y}, To: [2]int32{es[k-1].X, es[k-1].Y}, first: start == 0}
			if start > 0 { // the previous trip of the day, fingerprinted or not, ended in es[start-1]
				fp.Origin = origin(cfg, [2]int32{es[start-1].X, es[start-1].Y}, fp.From)
			}
			fp.Sig = signature(sh)
			if len(sh) < cfg.MinShingles {
				fp.Exact = exactHash(es[start:k])
			}
			out = append(out, fp)
		}
		start = k
	}
	return out
}

// Trips is the Builder over a whole trace at once: the fingerprints of
// fixes (any order) as one day named vehicle, date.
func Trips(cfg Config, vehicle, date string, fixes []Fix) []Fingerprint {
	if len(fixes) == 0 {
		return nil
	}
	base := fixes[0].TimeMs
	for _, f := range fixes {
		base = min(base, f.TimeMs)
	}
	b := NewBuilder(base)
	for _, f := range fixes {
		b.Add(&cfg, f)
	}
	return b.Fingerprints(&cfg, vehicle, date)
}

// builderVersion is the first byte of an encoded Builder (DecodeBuilder
// also reads version 1: no last fix).
const builderVersion = 2

// AppendBinary appends the Builder's state (scoring's changelog keeps it
// with the day): version byte 1; Base (zig-zag varint); Dropped (uvarint);
// the number of runs (uvarint); per run: First and Last - First (uvarint,
// ms after Base), PX and PY (IEEE-754 bits, 8 bytes little-endian each),
// Cur (two zig-zag varints), the number of entries (uvarint), and per
// entry X - X' and Y - Y' (zig-zag varints; X', Y' the previous entry's, 0
// for the first), then (T - T') x 2 + Brk (uvarint; T' the previous
// entry's T, First for the first). About 4-5 bytes per entry. Then
// (version 2; version 1 ends after the runs) the last fix (End): uvarint 0
// when none, else its time + 1 (ms after Base), then its cell column and
// row (zig-zag varints).
func (b *Builder) AppendBinary(dst []byte) []byte {
	dst = append(dst, builderVersion)
	dst = binary.AppendVarint(dst, b.Base)
	dst = binary.AppendUvarint(dst, uint64(b.Dropped))
	dst = binary.AppendUvarint(dst, uint64(len(b.runs)))
	for i := range b.runs {
		r := &b.runs[i]
		dst = binary.AppendUvarint(dst, uint64(r.First))
		dst = binary.AppendUvarint(dst, uint64(r.Last-r.First))
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(r.PX))
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(r.PY))
		dst = binary.AppendVarint(dst, int64(r.Cur[0]))
		dst = binary.AppendVarint(dst, int64(r.Cur[1]))
		dst = binary.AppendUvarint(dst, uint64(len(r.Ents)))
		var px, py int32
		pt := uint32(r.First)
		for _, e := range r.Ents {
			dst = binary.AppendVarint(dst, int64(e.X-px))
			dst = binary.AppendVarint(dst, int64(e.Y-py))
			brk := uint64(0)
			if e.Brk {
				brk = 1
			}
			dst = binary.AppendUvarint(dst, uint64(e.T-pt)<<1|brk)
			px, py, pt = e.X, e.Y, e.T
		}
	}
	if !b.hasLast {
		return binary.AppendUvarint(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(b.lastT)+1)
	dst = binary.AppendVarint(dst, int64(b.lastCell[0]))
	return binary.AppendVarint(dst, int64(b.lastCell[1]))
}

// DecodeBuilder reads a Builder written by AppendBinary and returns the
// bytes after it. Anything else is ErrRecord.
func DecodeBuilder(src []byte) (*Builder, []byte, error) {
	bad := func(what string) (*Builder, []byte, error) {
		return nil, nil, fmt.Errorf("%w: builder %s", ErrRecord, what)
	}
	if len(src) < 1 || src[0] < 1 || src[0] > builderVersion {
		return bad("version")
	}
	v1 := src[0] == 1
	src = src[1:]
	ok := true
	vi := func() int64 {
		v, k := binary.Varint(src)
		if k <= 0 {
			ok = false
			return 0
		}
		src = src[k:]
		return v
	}
	uv := func() uint64 {
		v, k := binary.Uvarint(src)
		if k <= 0 {
			ok = false
			return 0
		}
		src = src[k:]
		return v
	}
	b := &Builder{Base: vi()}
	b.Dropped = int(min(uv(), math.MaxInt32))
	nr := uv()
	if !ok || nr > MaxRuns {
		return bad("runs")
	}
	for range nr {
		var r run
		first, span := uv(), uv()
		if !ok || first > math.MaxUint32 || span > math.MaxUint32-first {
			return bad("times")
		}
		r.First, r.Last = int64(first), int64(first+span)
		if len(src) < 16 {
			return bad("position")
		}
		r.PX = math.Float64frombits(binary.LittleEndian.Uint64(src))
		r.PY = math.Float64frombits(binary.LittleEndian.Uint64(src[8:]))
		src = src[16:]
		cx, cy := vi(), vi()
		ne := uv()
		if !ok || cx != int64(int32(cx)) || cy != int64(int32(cy)) || ne > uint64(MaxEntries-b.n) || ne > uint64(len(src)) {
			return bad("run")
		}
		r.Cur = [2]int32{int32(cx), int32(cy)}
		r.Ents = make([]entry, 0, ne)
		var px, py int64
		pt := first
		for range ne {
			dx, dy, tt := vi(), vi(), uv()
			px, py, pt = px+dx, py+dy, pt+tt>>1
			if !ok || px != int64(int32(px)) || py != int64(int32(py)) || pt > math.MaxUint32 {
				return bad("entry")
			}
			r.Ents = append(r.Ents, entry{X: int32(px), Y: int32(py), T: uint32(pt), Brk: tt&1 == 1})
		}
		b.n += len(r.Ents)
		b.runs = append(b.runs, r)
	}
	if v1 {
		return b, src, nil
	}
	if lt := uv(); !ok || lt > math.MaxUint32+1 {
		return bad("last fix")
	} else if lt > 0 {
		cx, cy := vi(), vi()
		if !ok || cx != int64(int32(cx)) || cy != int64(int32(cy)) {
			return bad("last fix")
		}
		b.lastT, b.lastCell, b.hasLast = int64(lt-1), [2]int32{int32(cx), int32(cy)}, true
	}
	return b, src, nil
}
