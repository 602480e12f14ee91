package scoring

import (
	"math"

	"github.com/minecart/minecart/services/telemetry"
)

// A seg summarises one contiguous run of a vehicle-day's events (in event
// time) so that two runs can be stitched without their events: join(A, B)
// is exactly what folding A's events and then B's events would give. The
// summary is a monoid (join is associative, the single event is its unit
// of construction), so a day's result depends on the set of its events and
// not on the order its upload batches arrived in: Day keeps a few segs
// sorted by time and joins them, in time order, when they become adjacent
// or when it must to stay bounded. docs/scoring.md, "Order does not
// matter", gives every rule below for re-implementers.
//
// Fields are exported (in an unexported type) only so that encoding/binary
// can write and read them for the changelog; every field is fixed-size.
type seg struct {
	FirstSeq, LastSeq uint64
	Dev               uint8  // device index in Day.devs (devOther: never joins by seq)
	N                 uint32 // samples (accepted events)

	F1, F2, L1, L2 sample // first two and last two samples (F2/L1 valid when N >= 2)

	DrivingMs, NightMs uint32
	Speed              chain
	Harsh              [3]harshSum
	Stretch            stretch

	Triples, ExactT, ExactV uint32 // regularity over sample triples

	Fix    fixes
	Steps  steps // every GPS step of the seg except the first (Fix.First -> Fix.Second)
	Odo    odo
	HDOPRj uint32

	// Cand is the first sample's fix when it is static (below StaticKmh,
	// else usable): it becomes a fix when the box was silent for more
	// than MaxGap before it (the end of an unobserved gap: a box that
	// lost power while driving and came back parked).
	HasCand bool
	Cand    fix
}

// sample is what a join needs of one event.
type sample struct {
	T      uint32 // ms after the day's start
	SpeedC int32  // centi-km/h
	Bits   uint8  // sMoving, sOver
	Harsh  [3]uint8
}

const (
	sMoving = 1 << iota
	sOver
)

// Harsh sample classes: X ends an episode (gated, or below the release
// level), M keeps one going (between release and threshold), T starts one.
const (
	hX = iota
	hM
	hT
)

// chain sums speeding intervals: a chain is a maximal run of consecutive
// intervals that start at a sample over the limit and are at most MaxGap
// long; a chain counts (all of it) when it lasts at least SpeedMinDuration.
type chain struct {
	All             bool   // every interval is in one chain (Head is the total)
	Head, Tail, Mid uint32 // leading chain, trailing chain, counted chains between
}

// harshSum is one harsh detector's episodes over a run of samples. H is
// the leading run of M/T samples: what it adds depends on whether an
// episode was active when the run started (active: H continues it; not:
// an episode starts at H's first T). Everything after H does not.
type harshSum struct {
	AllH, HNon, FStarted, TailActive bool
	HHold, FHold, TailHold, Mid      uint32 // holds in ms; Mid = counted episodes closed after H
}

// stretch is continuous driving for fatigue: a stretch is a maximal chain
// of moving samples less than FatigueBreak apart; it adds
// floor((last - first) / FatigueAfter) fatigue events.
type stretch struct {
	Has, All                     bool
	HFirst, HLast, TFirst, TLast uint32
	Mid                          uint32
}

// fixes are a seg's distinct usable GPS fixes: First, Second (N >= 2) and
// Last. A fix at the same E7 position as the previous usable fix is a
// repeat and no new fix (it keeps the earlier time: a 20 Hz box repeating
// its 1 Hz fix).
type fixes struct {
	N                   uint8 // 0, 1 or 2 (2 means two or more)
	First, Second, Last fix
}

type fix struct {
	T        uint32
	Lat, Lon int32
	SpeedC   int32
	Drive    uint32 // driving ms of the seg before this fix's sample
	OdoM     int64  // odometer at this fix's event, metres (0 = not reported)
}

// steps are the sums over GPS steps (consecutive distinct fixes).
type steps struct {
	PaidMM, GapMM, GapUnpaidOdoM int64 // paid GPS steps (mm); unobserved gaps paid by the odometer (mm); odometer over unpaid gaps (m)
	Jumps, Gaps, GapsPaid        uint32
	JudgedP, ExactP              uint32
	Runs                         jrun // runs of consecutive jumps, in step order
}

// jrun sums the teleport evidence of runs of consecutive jumps (implausible
// steps) over a sequence of steps: a lone jump between plausible steps is a
// relocation that stayed (TeleportReanchor, 3, as the 3 rejected fixes it
// took before 2026.12-1); a run of L >= 2 jumps is L-1 outliers (out and
// back); a run touching the sequence's start or end counts L.
type jrun struct {
	Any, AllJ       bool   // any step; every step a jump (Head is the count)
	Head, Tail, Mid uint32 // leading jumps, trailing jumps, evidence of closed runs
}

func (a jrun) join(b jrun, reanchor uint32) jrun {
	switch {
	case !a.Any:
		return b
	case !b.Any:
		return a
	case a.AllJ && b.AllJ:
		return jrun{Any: true, AllJ: true, Head: a.Head + b.Head}
	case a.AllJ:
		return jrun{Any: true, Head: a.Head + b.Head, Tail: b.Tail, Mid: b.Mid}
	case b.AllJ:
		return jrun{Any: true, Head: a.Head, Tail: a.Tail + b.Head, Mid: a.Mid}
	}
	return jrun{Any: true, Head: a.Head, Tail: b.Tail, Mid: a.Mid + b.Mid + interior(a.Tail+b.Head, reanchor)}
}

func interior(l, reanchor uint32) uint32 {
	switch l {
	case 0:
		return 0
	case 1:
		return reanchor
	}
	return l - 1
}

// evidence is the day's teleport evidence: the closed runs, plus the runs
// at the day's two ends counted by their length.
func (a jrun) evidence() uint32 {
	if a.AllJ {
		return a.Head
	}
	return a.Head + a.Mid + a.Tail
}

// odo are the reported odometer readings, in whole metres.
type odo struct {
	Has         bool
	First, Last int64
	M           int64 // sum of deltas between consecutive readings, rollbacks excluded
	Rollbacks   uint32
}

// rollbackM is Rules.OdoRollbackKm in whole metres: a decrease between two
// readings of more than this many metres is a rollback.
func rollbackM(r *Rules) int64 { return int64(math.Round(r.OdoRollbackKm * 1000)) }

// newSeg is the seg of one event at t (ms after the day's start).
func newSeg(r *Rules, ev *telemetry.Event, t uint32, dev uint8, nightEnd uint32) seg {
	speed := ev.SpeedKmh
	s := sample{T: t, SpeedC: int32(math.Round(speed * 100))}
	if speed >= r.MovingKmh {
		s.Bits |= sMoving
	}
	limit := r.DefaultLimitKmh
	if ev.SpeedLimitKmh > 0 {
		limit = ev.SpeedLimitKmh
	}
	if speed > limit*(1+r.SpeedTolerancePct/100)+r.SpeedToleranceKmh {
		s.Bits |= sOver
	}
	v := [3]float64{-ev.AccelLonMS2 / G, ev.AccelLonMS2 / G, math.Abs(ev.AccelLatMS2) / G}
	thr := [3]float64{r.HarshBrakeG, r.HarshAccelG, r.HarshCornerG}
	gate := [3]float64{r.HarshMinKmh, r.HarshMinKmh, r.CornerMinKmh}
	g := seg{FirstSeq: ev.Seq, LastSeq: ev.Seq, Dev: dev, N: 1, F1: s, F2: s, L1: s, L2: s}
	for i := range v {
		c := uint8(hX)
		switch {
		case speed < gate[i]:
		case v[i] >= thr[i]:
			c = hT
		case v[i] >= thr[i]*(1-r.HarshHysteresis):
			c = hM
		}
		s.Harsh[i] = c
		g.Harsh[i] = harshSum{AllH: c != hX, HNon: c != hX, FStarted: c == hT}
	}
	g.F1, g.F2, g.L1, g.L2 = s, s, s, s
	g.Speed = chain{All: true}
	if s.Bits&sMoving != 0 {
		g.Stretch = stretch{Has: true, All: true, HFirst: t, HLast: t}
	}
	if ev.OdometerKm > 0 {
		m := int64(math.Round(ev.OdometerKm * 1000))
		g.Odo = odo{Has: true, First: m, Last: m}
	}
	switch {
	case ev.Lat == 0 && ev.Lon == 0: // no fix
	case ev.HDOP > r.MaxHDOP && r.MaxHDOP > 0:
		g.HDOPRj = 1
	case speed < r.StaticKmh: // static jitter; the end of a gap, maybe
		g.HasCand = true
		g.Cand = fix{T: t, Lat: e7(ev.Lat), Lon: e7(ev.Lon), SpeedC: s.SpeedC}
		if g.Odo.Has {
			g.Cand.OdoM = g.Odo.First
		}
	default:
		f := fix{T: t, Lat: e7(ev.Lat), Lon: e7(ev.Lon), SpeedC: s.SpeedC}
		if g.Odo.Has {
			f.OdoM = g.Odo.First
		}
		g.Fix = fixes{N: 1, First: f, Last: f}
	}
	return g
}

// join returns the seg of a's events followed by b's (a ends before b
// starts). It is associative.
func join(r *Rules, a, b *seg, nightEnd uint32) seg {
	maxGap := uint32(r.MaxGap.Milliseconds())
	dt := b.F1.T - a.L2.T
	inGap := dt <= maxGap
	prev := a.L2
	var o seg
	o.FirstSeq, o.LastSeq, o.Dev, o.N = a.FirstSeq, b.LastSeq, a.Dev, a.N+b.N
	if a.Dev != b.Dev {
		o.Dev = devOther
	}
	// Samples.
	o.F1, o.F2 = a.F1, a.F2
	if a.N == 1 {
		o.F2 = b.F1
	}
	o.L1, o.L2 = b.L1, b.L2
	if b.N == 1 {
		o.L1 = a.L2
	}
	// Driving and night over the join interval (it belongs to a's last sample).
	o.DrivingMs, o.NightMs = a.DrivingMs+b.DrivingMs, a.NightMs+b.NightMs
	var joinDrive uint32
	if prev.Bits&sMoving != 0 && inGap {
		joinDrive = dt
		if prev.T < nightEnd {
			o.NightMs += min(b.F1.T, nightEnd) - prev.T
		}
	}
	o.DrivingMs += joinDrive
	// Speeding.
	jc := chain{}
	if prev.Bits&sOver != 0 && inGap {
		jc = chain{All: true, Head: dt}
	}
	minRun := uint32(r.SpeedMinDuration.Milliseconds())
	o.Speed = a.Speed.join(jc, minRun).join(b.Speed, minRun)
	// Harsh.
	hold := min(dt, uint32(r.SampleHold.Milliseconds()))
	minHarsh := uint32(r.HarshMinDuration.Milliseconds())
	for i := range o.Harsh {
		a.Harsh[i].joinTo(&o.Harsh[i], &b.Harsh[i], hold, minHarsh)
	}
	// Fatigue.
	o.Stretch = a.Stretch.join(b.Stretch, uint32(r.FatigueBreak.Milliseconds()), uint32(r.FatigueAfter.Milliseconds()))
	// Regularity: the triples that cross the join.
	o.Triples, o.ExactT, o.ExactV = a.Triples+b.Triples, a.ExactT+b.ExactT, a.ExactV+b.ExactV
	if a.N >= 2 {
		o.judge(r, &a.L1, &a.L2, &b.F1)
	}
	if b.N >= 2 {
		o.judge(r, &a.L2, &b.F1, &b.F2)
	}
	// GPS.
	o.HasCand, o.Cand = a.HasCand, a.Cand
	if b.HasCand && !inGap {
		// b's first sample is static and follows a silence longer than
		// MaxGap: its fix ends the gap.
		c := seg{Fix: fixes{N: 1, First: b.Cand, Last: b.Cand}}
		nb := *b
		nb.joinFixes(r, &c, b, 0)
		o.joinFixes(r, a, &nb, a.DrivingMs+joinDrive)
	} else {
		o.joinFixes(r, a, b, a.DrivingMs+joinDrive)
	}
	// Odometer. Rollbacks of both sides always add up (a run without
	// readings can hold one: a late event of a cross-day rollback, AddRef).
	rb := a.Odo.Rollbacks + b.Odo.Rollbacks
	o.Odo = a.Odo
	switch {
	case !a.Odo.Has:
		o.Odo = b.Odo
	case b.Odo.Has:
		o.Odo.M += b.Odo.M
		if d := b.Odo.First - a.Odo.Last; d >= -rollbackM(r) {
			o.Odo.M += d
		} else {
			rb++
		}
		o.Odo.Last = b.Odo.Last
	}
	o.Odo.Rollbacks = rb
	o.HDOPRj = a.HDOPRj + b.HDOPRj
	return o
}

// judge scores one sample triple for regularity (too_regular).
func (o *seg) judge(r *Rules, pp, p, s *sample) {
	maxGap := uint32(r.MaxGap.Milliseconds())
	dt := s.T - p.T
	if p.T-pp.T > maxGap || dt == 0 || dt > maxGap || s.Bits&sMoving == 0 {
		return
	}
	o.Triples++
	if dt == p.T-pp.T {
		o.ExactT++
	}
	if math.Abs(float64(int64(s.SpeedC)-2*int64(p.SpeedC)+int64(pp.SpeedC))) <= r.RegularSpeedTolKmh*100 {
		o.ExactV++
	}
}

// joinFixes joins the fixes of a and b; shift is added to b's Drive values
// (a's driving plus the join interval's).
func (o *seg) joinFixes(r *Rules, a, b *seg, shift uint32) {
	o.Steps = a.Steps
	defer func() { o.Steps = o.Steps.add(r, &b.Steps) }()
	if b.Fix.N == 0 {
		o.Fix = a.Fix
		return
	}
	bf := b.Fix
	bf.First.Drive += shift
	bf.Second.Drive += shift
	bf.Last.Drive += shift
	if a.Fix.N == 0 {
		o.Fix = bf
		return
	}
	o.Fix.First = a.Fix.First
	p := a.Fix.Last
	same := p.Lat == bf.First.Lat && p.Lon == bf.First.Lon
	// The fix after p in the joined sequence, and b's first step (if any)
	// as it is in the joined sequence.
	var next *fix
	switch {
	case !same:
		next = &bf.First
	case bf.N >= 2:
		next = &bf.Second
	}
	if next != nil {
		if a.Fix.N >= 2 {
			o.Steps.step(r, &p, next)
		}
		if !same && bf.N >= 2 {
			o.Steps.step(r, &bf.First, &bf.Second)
		}
	}
	switch {
	case a.Fix.N >= 2:
		o.Fix.N, o.Fix.Second = 2, a.Fix.Second
	case next != nil:
		o.Fix.N, o.Fix.Second = 2, *next
	default:
		o.Fix.N = 1
	}
	o.Fix.Last = p
	if next != nil {
		o.Fix.Last = bf.Last
	}
}

// step appends one GPS step from fix p to fix q.
func (s *steps) step(r *Rules, p, q *fix) {
	dt := int64(q.T) - int64(p.T)
	if dt <= 0 {
		return
	}
	jump := false
	defer func() {
		s.Runs = s.Runs.join(jrun{Any: true, AllJ: jump, Head: b2u(jump)}, uint32(r.TeleportReanchor))
	}()
	m := stepM(p.Lat, p.Lon, q.Lat, q.Lon)
	if dt > r.MaxGap.Milliseconds() && int64(q.Drive-p.Drive)*2 < dt {
		// Unobserved gap (off, parked, out of coverage): not paid by GPS;
		// paid by the odometer when both ends report one and they agree.
		s.Gaps++
		if p.OdoM > 0 && q.OdoM > 0 {
			d := q.OdoM - p.OdoM
			slack := r.GapOdoSlackM
			if float64(d) >= m-slack && float64(d) <= r.GapOdoMaxFactor*m+slack &&
				float64(d)*3600/float64(dt) <= r.GapOdoMaxKmh {
				s.GapMM += d * 1000
				s.GapsPaid++
			} else if d > 0 {
				s.GapUnpaidOdoM += d
			}
		}
		return
	}
	if m*3600/float64(dt) > r.TeleportKmh {
		s.Jumps++
		jump = true
		return
	}
	s.PaidMM += int64(math.Round(m * 1000))
	if dt <= r.MaxGap.Milliseconds() && float64(q.SpeedC)/100 >= r.MovingKmh {
		s.JudgedP++
		mean := (float64(p.SpeedC) + float64(q.SpeedC)) / 200
		if math.Abs(m-mean/3.6*float64(dt)/1000) <= r.RegularPosTolM {
			s.ExactP++
		}
	}
}

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// add appends b's steps after s's.
func (s steps) add(r *Rules, b *steps) steps {
	s.Runs = s.Runs.join(b.Runs, uint32(r.TeleportReanchor))
	s.PaidMM += b.PaidMM
	s.GapMM += b.GapMM
	s.GapUnpaidOdoM += b.GapUnpaidOdoM
	s.Jumps += b.Jumps
	s.Gaps += b.Gaps
	s.GapsPaid += b.GapsPaid
	s.JudgedP += b.JudgedP
	s.ExactP += b.ExactP
	return s
}

func runCount(x, min uint32) uint32 {
	if x >= min && x > 0 {
		return x
	}
	return 0
}

func (a chain) join(b chain, min uint32) chain {
	switch {
	case a.All && b.All:
		return chain{All: true, Head: a.Head + b.Head}
	case a.All:
		return chain{Head: a.Head + b.Head, Tail: b.Tail, Mid: b.Mid}
	case b.All:
		return chain{Head: a.Head, Tail: a.Tail + b.Head, Mid: a.Mid}
	}
	return chain{Head: a.Head, Tail: b.Tail, Mid: a.Mid + b.Mid + runCount(a.Tail+b.Head, min)}
}

func (a chain) total(min uint32) uint32 {
	if a.All {
		return runCount(a.Head, min)
	}
	return runCount(a.Head, min) + a.Mid + runCount(a.Tail, min)
}

func ep(hold, min uint32) uint32 {
	if hold >= min {
		return 1
	}
	return 0
}

// joinTo writes a then b to o; hold = the join interval's hold (min(dt,
// SampleHold)).
func (a *harshSum) joinTo(o, b *harshSum, hold, min uint32) {
	if a.AllH {
		hh := a.HHold + hold + b.HHold
		fs, fh := b.FStarted, b.FHold
		if a.FStarted {
			fs, fh = true, a.FHold+hold+b.HHold
		}
		*o = *b
		o.HNon = true
		o.HHold, o.FStarted, o.FHold = hh, fs, fh
		return
	}
	x := *a
	x.Mid = a.Mid + b.Mid
	switch {
	case a.TailActive:
		h := a.TailHold + hold
		if b.HNon {
			h += b.HHold
			if b.AllH {
				x.TailActive, x.TailHold = true, h
				*o = x
				return
			}
		}
		x.Mid += ep(h, min)
	case b.FStarted:
		if b.AllH {
			x.TailActive, x.TailHold = true, b.FHold
			*o = x
			return
		}
		x.Mid += ep(b.FHold, min)
	}
	if b.AllH { // b all M without a T, entered inactive
		x.TailActive, x.TailHold = false, 0
	} else {
		x.TailActive, x.TailHold = b.TailActive, b.TailHold
	}
	*o = x
}

func (a harshSum) total(min uint32) uint32 {
	n := uint32(0)
	if a.FStarted {
		n += ep(a.FHold, min)
	}
	if a.AllH {
		return n
	}
	n += a.Mid
	if a.TailActive {
		n += ep(a.TailHold, min)
	}
	return n
}

func (a stretch) join(b stretch, brk, after uint32) stretch {
	if !a.Has {
		return b
	}
	if !b.Has {
		return a
	}
	f := func(first, last uint32) uint32 { return (last - first) / after }
	aLast := a.TLast
	if a.All {
		aLast = a.HLast
	}
	linked := b.HFirst-aLast < brk
	switch {
	case a.All && b.All:
		if linked {
			return stretch{Has: true, All: true, HFirst: a.HFirst, HLast: b.HLast}
		}
		return stretch{Has: true, HFirst: a.HFirst, HLast: a.HLast, TFirst: b.HFirst, TLast: b.HLast}
	case a.All:
		o := b
		if linked {
			o.HFirst = a.HFirst
		} else {
			o.Mid += f(b.HFirst, b.HLast)
			o.HFirst, o.HLast = a.HFirst, a.HLast
		}
		return o
	case b.All:
		o := a
		if linked {
			o.TLast = b.HLast
		} else {
			o.Mid += f(a.TFirst, a.TLast)
			o.TFirst, o.TLast = b.HFirst, b.HLast
		}
		return o
	}
	o := stretch{Has: true, HFirst: a.HFirst, HLast: a.HLast, TFirst: b.TFirst, TLast: b.TLast, Mid: a.Mid + b.Mid}
	if linked {
		o.Mid += f(a.TFirst, b.HLast)
	} else {
		o.Mid += f(a.TFirst, a.TLast) + f(b.HFirst, b.HLast)
	}
	return o
}

func (a stretch) total(after uint32) uint32 {
	if !a.Has {
		return 0
	}
	n := (a.HLast - a.HFirst) / after
	if !a.All {
		n += a.Mid + (a.TLast-a.TFirst)/after
	}
	return n
}

// The three harsh detectors, in seg.Harsh order.
const (
	harshBrake = iota
	harshAccel
	harshCorner
)
