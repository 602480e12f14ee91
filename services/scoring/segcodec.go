package scoring

import "encoding/binary"

// The changelog layout of a seg is encoding/binary's little-endian layout
// of its fields in declaration order (bools one byte, no padding);
// appendSeg and readSeg write and read it by hand, ~100x faster than
// reflection (TestSegCodecMatchesBinary holds them to binary.Append).

type segW struct{ b []byte }

func (w *segW) u8(v uint8)   { w.b = append(w.b, v) }
func (w *segW) u32(v uint32) { w.b = binary.LittleEndian.AppendUint32(w.b, v) }
func (w *segW) i32(v int32)  { w.u32(uint32(v)) }
func (w *segW) u64(v uint64) { w.b = binary.LittleEndian.AppendUint64(w.b, v) }
func (w *segW) i64(v int64)  { w.u64(uint64(v)) }
func (w *segW) bl(v bool) {
	if v {
		w.u8(1)
	} else {
		w.u8(0)
	}
}

type segR struct {
	b   []byte
	bad bool
}

func (r *segR) take(n int) []byte {
	if len(r.b) < n {
		r.bad = true
		return make([]byte, n)
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}
func (r *segR) u8() uint8   { return r.take(1)[0] }
func (r *segR) u32() uint32 { return binary.LittleEndian.Uint32(r.take(4)) }
func (r *segR) i32() int32  { return int32(r.u32()) }
func (r *segR) u64() uint64 { return binary.LittleEndian.Uint64(r.take(8)) }
func (r *segR) i64() int64  { return int64(r.u64()) }
func (r *segR) bl() bool {
	v := r.u8()
	if v > 1 {
		r.bad = true
	}
	return v == 1
}

func appendSeg(b []byte, s *seg) []byte {
	w := segW{b}
	w.u64(s.FirstSeq)
	w.u64(s.LastSeq)
	w.u8(s.Dev)
	w.u32(s.N)
	for _, x := range [...]*sample{&s.F1, &s.F2, &s.L1, &s.L2} {
		w.u32(x.T)
		w.i32(x.SpeedC)
		w.u8(x.Bits)
		w.u8(x.Harsh[0])
		w.u8(x.Harsh[1])
		w.u8(x.Harsh[2])
	}
	w.u32(s.DrivingMs)
	w.u32(s.NightMs)
	w.bl(s.Speed.All)
	w.u32(s.Speed.Head)
	w.u32(s.Speed.Tail)
	w.u32(s.Speed.Mid)
	for i := range s.Harsh {
		h := &s.Harsh[i]
		w.bl(h.AllH)
		w.bl(h.HNon)
		w.bl(h.FStarted)
		w.bl(h.TailActive)
		w.u32(h.HHold)
		w.u32(h.FHold)
		w.u32(h.TailHold)
		w.u32(h.Mid)
	}
	st := &s.Stretch
	w.bl(st.Has)
	w.bl(st.All)
	w.u32(st.HFirst)
	w.u32(st.HLast)
	w.u32(st.TFirst)
	w.u32(st.TLast)
	w.u32(st.Mid)
	w.u32(s.Triples)
	w.u32(s.ExactT)
	w.u32(s.ExactV)
	w.u8(s.Fix.N)
	for _, f := range [...]*fix{&s.Fix.First, &s.Fix.Second, &s.Fix.Last} {
		putFix(&w, f)
	}
	p := &s.Steps
	w.i64(p.PaidMM)
	w.i64(p.GapMM)
	w.i64(p.GapUnpaidOdoM)
	w.u32(p.Jumps)
	w.u32(p.Gaps)
	w.u32(p.GapsPaid)
	w.u32(p.JudgedP)
	w.u32(p.ExactP)
	w.bl(p.Runs.Any)
	w.bl(p.Runs.AllJ)
	w.u32(p.Runs.Head)
	w.u32(p.Runs.Tail)
	w.u32(p.Runs.Mid)
	w.bl(s.Odo.Has)
	w.i64(s.Odo.First)
	w.i64(s.Odo.Last)
	w.i64(s.Odo.M)
	w.u32(s.Odo.Rollbacks)
	w.u32(s.HDOPRj)
	w.bl(s.HasCand)
	putFix(&w, &s.Cand)
	return w.b
}

// readSeg reads one seg; ok is false when b is too short or a bool byte is
// not 0 or 1.
func readSeg(b []byte, s *seg) (rest []byte, ok bool) {
	r := segR{b: b}
	s.FirstSeq = r.u64()
	s.LastSeq = r.u64()
	s.Dev = r.u8()
	s.N = r.u32()
	for _, x := range [...]*sample{&s.F1, &s.F2, &s.L1, &s.L2} {
		x.T = r.u32()
		x.SpeedC = r.i32()
		x.Bits = r.u8()
		x.Harsh[0] = r.u8()
		x.Harsh[1] = r.u8()
		x.Harsh[2] = r.u8()
	}
	s.DrivingMs = r.u32()
	s.NightMs = r.u32()
	s.Speed.All = r.bl()
	s.Speed.Head = r.u32()
	s.Speed.Tail = r.u32()
	s.Speed.Mid = r.u32()
	for i := range s.Harsh {
		h := &s.Harsh[i]
		h.AllH = r.bl()
		h.HNon = r.bl()
		h.FStarted = r.bl()
		h.TailActive = r.bl()
		h.HHold = r.u32()
		h.FHold = r.u32()
		h.TailHold = r.u32()
		h.Mid = r.u32()
	}
	st := &s.Stretch
	st.Has = r.bl()
	st.All = r.bl()
	st.HFirst = r.u32()
	st.HLast = r.u32()
	st.TFirst = r.u32()
	st.TLast = r.u32()
	st.Mid = r.u32()
	s.Triples = r.u32()
	s.ExactT = r.u32()
	s.ExactV = r.u32()
	s.Fix.N = r.u8()
	for _, f := range [...]*fix{&s.Fix.First, &s.Fix.Second, &s.Fix.Last} {
		getFix(&r, f)
	}
	p := &s.Steps
	p.PaidMM = r.i64()
	p.GapMM = r.i64()
	p.GapUnpaidOdoM = r.i64()
	p.Jumps = r.u32()
	p.Gaps = r.u32()
	p.GapsPaid = r.u32()
	p.JudgedP = r.u32()
	p.ExactP = r.u32()
	p.Runs.Any = r.bl()
	p.Runs.AllJ = r.bl()
	p.Runs.Head = r.u32()
	p.Runs.Tail = r.u32()
	p.Runs.Mid = r.u32()
	s.Odo.Has = r.bl()
	s.Odo.First = r.i64()
	s.Odo.Last = r.i64()
	s.Odo.M = r.i64()
	s.Odo.Rollbacks = r.u32()
	s.HDOPRj = r.u32()
	s.HasCand = r.bl()
	getFix(&r, &s.Cand)
	return r.b, !r.bad
}

func putFix(w *segW, f *fix) {
	w.u32(f.T)
	w.i32(f.Lat)
	w.i32(f.Lon)
	w.i32(f.SpeedC)
	w.u32(f.Drive)
	w.i64(f.OdoM)
}

func getFix(r *segR, f *fix) {
	f.T = r.u32()
	f.Lat = r.i32()
	f.Lon = r.i32()
	f.SpeedC = r.i32()
	f.Drive = r.u32()
	f.OdoM = r.i64()
}
