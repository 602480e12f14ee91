package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/minecart/minecart/loadtest/fleet"
	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/services/scoring/replay"
)

// A dump (-dump) holds what replay detection judges in a run: every
// vehicle-day's trip fingerprints in close order, their origins anchored
// (Index.Anchor ran), so that Rejudge can judge them again under another
// replay.Config or Judge without simulating the fleet again:
//
//	"mcfp1\n"
//	uvarint vehicles, per vehicle uvarint len + id
//	uvarint days, per day uvarint len + date
//	records to the end: uvarint vehicle, uvarint day, uvarint task,
//	  byte case, varint other, varint source day, uvarint trips,
//	  per trip uvarint len + replay.AppendBinary
const dumpMagic = "mcfp1\n"

type dumpWriter struct {
	w   *bufio.Writer
	buf []byte
	err error
}

func newDumpWriter(w io.Writer, vehicles []fleet.Vehicle, wins []window) *dumpWriter {
	d := &dumpWriter{w: bufio.NewWriterSize(w, 1<<20)}
	b := []byte(dumpMagic)
	b = binary.AppendUvarint(b, uint64(len(vehicles)))
	for i := range vehicles {
		b = binary.AppendUvarint(b, uint64(len(vehicles[i].VehicleID)))
		b = append(b, vehicles[i].VehicleID...)
	}
	b = binary.AppendUvarint(b, uint64(len(wins)))
	for i := range wins {
		b = binary.AppendUvarint(b, uint64(len(wins[i].date)))
		b = append(b, wins[i].date...)
	}
	_, d.err = d.w.Write(b)
	return d
}

func (d *dumpWriter) day(i, day, task int, r *dayRec) {
	if d.err != nil {
		return
	}
	b := d.buf[:0]
	b = binary.AppendUvarint(b, uint64(i))
	b = binary.AppendUvarint(b, uint64(day))
	b = binary.AppendUvarint(b, uint64(task))
	b = append(b, byte(r.c))
	b = binary.AppendVarint(b, int64(r.other))
	b = binary.AppendVarint(b, int64(r.src))
	b = binary.AppendUvarint(b, uint64(len(r.fps)))
	for k := range r.fps {
		rec := replay.AppendBinary(nil, &r.fps[k])
		b = binary.AppendUvarint(b, uint64(len(rec)))
		b = append(b, rec...)
	}
	d.buf = b
	_, d.err = d.w.Write(b)
}

func (d *dumpWriter) flush() error {
	if d.err != nil {
		return fmt.Errorf("dump: %w", d.err)
	}
	if err := d.w.Flush(); err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	return nil
}

// rjDay is one vehicle-day of a dump as Rejudge sees it.
type rjDay struct {
	c          fleet.Case
	other, src int
	fps        []replay.Fingerprint
	// replayed by the task's index at the close (task) or a verdict (global)
	replayed, task, global bool
}

// RjPair is a match that flagged an honest day: the copy and the
// original, the check that found it, the classes of their days.
type RjPair struct {
	Cp, Orig         replay.Fingerprint
	By               string // "task" or "global"
	CpCase, OrigCase fleet.Case
	OrigOther        int
}

// Rejudged is a dump judged again.
type Rejudged struct {
	Cfg      replay.Config
	Vehicles []string
	Dates    []string
	Days     [][]rjDay // [vehicle][day]
	Verdicts int
	Honest   []RjPair // the pair that flagged each honest day
	// All is every matching pair whose copy's day is honest or a replay
	// (every Index match, every verdict, flagged already or not).
	All []RjPair
}

// Rejudge reads a dump and runs replay detection on it as Run does (each
// task's Index at the close, then the global check's Postings, verdicts
// applied to days kept 7 days) under cfg.
func Rejudge(r *bufio.Reader, cfg replay.Config) (*Rejudged, error) {
	magic := make([]byte, len(dumpMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != dumpMagic {
		return nil, errors.New("rejudge: not a dump")
	}
	uv := func() (uint64, error) { return binary.ReadUvarint(r) }
	str := func() (string, error) {
		n, err := uv()
		if err != nil {
			return "", err
		}
		b := make([]byte, n)
		_, err = io.ReadFull(r, b)
		return string(b), err
	}
	out := &Rejudged{Cfg: cfg}
	nv, err := uv()
	if err != nil {
		return nil, fmt.Errorf("rejudge: %w", err)
	}
	out.Vehicles = make([]string, nv)
	for i := range out.Vehicles {
		if out.Vehicles[i], err = str(); err != nil {
			return nil, fmt.Errorf("rejudge: %w", err)
		}
	}
	nd, err := uv()
	if err != nil {
		return nil, fmt.Errorf("rejudge: %w", err)
	}
	out.Dates = make([]string, nd)
	for i := range out.Dates {
		if out.Dates[i], err = str(); err != nil {
			return nil, fmt.Errorf("rejudge: %w", err)
		}
	}
	byID := make(map[string]int, nv)
	for i, v := range out.Vehicles {
		byID[v] = i
	}
	byDate := make(map[string]int, nd)
	for i, d := range out.Dates {
		byDate[d] = i
	}
	out.Days = make([][]rjDay, nv)
	for i := range out.Days {
		out.Days[i] = make([]rjDay, nd)
	}
	idx := make([]*replay.Index, pipelines.TelemetryPartitions)
	glob := make([]*replay.Postings, pipelines.TelemetryPartitions)
	for t := range idx {
		if idx[t], err = replay.NewIndex(cfg, 30, 200_000); err != nil {
			return nil, err
		}
		if glob[t], err = replay.NewPostings(cfg, 30, 200_000); err != nil {
			return nil, err
		}
	}
	find := func(veh, date string, trip uint16) *replay.Fingerprint {
		d := &out.Days[byID[veh]][byDate[date]]
		for k := range d.fps {
			if d.fps[k].Trip == trip {
				return &d.fps[k]
			}
		}
		return nil
	}
	const keptDays = 7
	apply := func(v replay.Verdict, now int) {
		out.Verdicts++
		i, ok := byID[v.Vehicle]
		d, ok2 := byDate[v.Date]
		if !ok || !ok2 || now-d >= keptDays {
			return
		}
		x := &out.Days[i][d]
		if !x.c.Fraud() || x.c == fleet.CaseReplayOwn || x.c == fleet.CaseReplayOther {
			o := &out.Days[byID[v.OfVehicle]][byDate[v.OfDate]]
			cp, orig := find(v.Vehicle, v.Date, v.Trip), find(v.OfVehicle, v.OfDate, v.OfTrip)
			if cp != nil && orig != nil {
				out.All = append(out.All, RjPair{*cp, *orig, "global", x.c, o.c, o.other})
			}
		}
		if x.replayed {
			return
		}
		x.replayed, x.global = true, true
		if !x.c.Fraud() {
			o := &out.Days[byID[v.OfVehicle]][byDate[v.OfDate]]
			cp, orig := find(v.Vehicle, v.Date, v.Trip), find(v.OfVehicle, v.OfDate, v.OfTrip)
			if cp != nil && orig != nil {
				out.Honest = append(out.Honest, RjPair{*cp, *orig, "global", x.c, o.c, o.other})
			}
		}
	}
	curDay := -1
	var key [8]byte
	for {
		i, err := uv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("rejudge: %w", err)
		}
		d, _ := uv()
		task, _ := uv()
		c, _ := r.ReadByte()
		other, _ := binary.ReadVarint(r)
		src, _ := binary.ReadVarint(r)
		n, err := uv()
		if err != nil || i >= nv || d >= nd || task >= uint64(len(idx)) {
			return nil, fmt.Errorf("rejudge: bad record (%v)", err)
		}
		x := &out.Days[i][d]
		x.c, x.other, x.src = fleet.Case(c), int(other), int(src)
		x.fps = make([]replay.Fingerprint, n)
		for k := range x.fps {
			rec, err := str()
			if err != nil {
				return nil, fmt.Errorf("rejudge: %w", err)
			}
			if x.fps[k], err = replay.Decode([]byte(rec)); err != nil {
				return nil, fmt.Errorf("rejudge: %w", err)
			}
		}
		if int(d) != curDay {
			curDay = int(d)
			if t, err := time.Parse(time.DateOnly, out.Dates[d]); err == nil {
				for _, ix := range idx {
					ix.Expire(t.AddDate(0, 0, -(ix.Retention() - 1)).Format(time.DateOnly))
				}
			}
		}
		ix := idx[task]
		for k := range x.fps {
			ms := ix.Check(&x.fps[k])
			if !x.c.Fraud() || x.c == fleet.CaseReplayOwn || x.c == fleet.CaseReplayOther {
				for _, m := range ms {
					o := &out.Days[byID[m.Of.Vehicle]][byDate[m.Of.Date]]
					out.All = append(out.All, RjPair{x.fps[k], m.Of, "task", x.c, o.c, o.other})
				}
			}
			if len(ms) > 0 {
				if !x.replayed && !x.c.Fraud() {
					o := &out.Days[byID[ms[0].Of.Vehicle]][byDate[ms[0].Of.Date]]
					out.Honest = append(out.Honest, RjPair{x.fps[k], ms[0].Of, "task", x.c, o.c, o.other})
				}
				x.replayed, x.task = true, true
			}
			ix.Add(&x.fps[k])
		}
		for k := range x.fps {
			for b := range replay.Bands {
				binary.BigEndian.PutUint64(key[:], replay.BandKey(&x.fps[k], b))
				part := int(murmur2(key[:])&0x7fffffff) % len(glob)
				for _, v := range glob[part].Offer(&x.fps[k], b) {
					apply(v, int(d))
				}
			}
		}
	}
	return out, nil
}

// sharedBands counts the LSH bands at which a and b hold equal values.
func sharedBands(a, b *replay.Fingerprint) int {
	n := 0
	for k := 0; k < replay.K; k += replay.Rows {
		if a.Sig[k] == b.Sig[k] && a.Sig[k+1] == b.Sig[k+1] {
			n++
		}
	}
	return n
}

// PairLine describes a pair of trips: sizes, Jaccard, containment, time
// offsets, shared bands, cells and origins.
func PairLine(cfg *replay.Config, cp, orig *replay.Fingerprint) string {
	j, c := replay.Similarity(orig, cp)
	return fmt.Sprintf("%s/%s/%d (n=%d %s-%s o%d from %v to %v) of %s/%s/%d (n=%d %s-%s o%d from %v to %v): J=%.3f (%d) C=%.3f dStart=%+.0fs dEnd=%+.0fs bands=%d lowest=%d simult=%v refusal=%q",
		cp.Vehicle, cp.Date, cp.Trip, cp.N, hm(cp.StartMs), hm(cp.EndMs), cp.Origin, cp.From, cp.To,
		orig.Vehicle, orig.Date, orig.Trip, orig.N, hm(orig.StartMs), hm(orig.EndMs), orig.Origin, orig.From, orig.To,
		j, int(j*replay.K+0.5), c, float64(cp.StartMs-orig.StartMs)/1000, float64(cp.EndMs-orig.EndMs)/1000,
		sharedBands(cp, orig), replay.LowestSharedBand(orig, cp), replay.Simultaneous(cfg, cp, orig), replay.Refusal(cfg, orig, cp))
}

func hm(ms int64) string { return time.UnixMilli(ms).UTC().Format("01-02T15:04") }

// Write prints the replay table per class (days, replayed_trace by the
// task's index and by a verdict), the caught replay days, and with pairs
// every pair flagging an honest day.
func (r *Rejudged) Write(w io.Writer, pairs bool) {
	fmt.Fprintf(w, "rejudge: MinContain %.3f, MinJaccard %.3f; %d verdicts\n\n", r.Cfg.MinContain, r.Cfg.MinJaccard, r.Verdicts)
	var days, rep, byTask, byGlob [fleet.NumCases]int
	var caught []string
	for i := range r.Days {
		for d := range r.Days[i] {
			x := &r.Days[i][d]
			days[x.c]++
			if x.replayed {
				rep[x.c]++
				if x.task {
					byTask[x.c]++
				}
				if x.global {
					byGlob[x.c]++
				}
				if x.c == fleet.CaseReplayOwn || x.c == fleet.CaseReplayOther {
					caught = append(caught, fmt.Sprintf("caught %s/%s", r.Vehicles[i], r.Dates[d]))
				}
			}
		}
	}
	fmt.Fprintln(w, "| class | days | replayed_trace (rate) | by the task's index at close | by a global verdict |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	honest, honestDays := 0, 0
	for c := range fleet.NumCases {
		if !c.Fraud() {
			honest += rep[c]
			honestDays += days[c]
		}
		if rep[c] == 0 && c != fleet.CaseReplayOwn && c != fleet.CaseReplayOther {
			continue
		}
		fmt.Fprintf(w, "| %s | %d | %d (%s) | %d | %d |\n", c, days[c], rep[c], share(rep[c], days[c]), byTask[c], byGlob[c])
	}
	fmt.Fprintf(w, "\nhonest days flagged replayed_trace: %d of %d\n", honest, honestDays)
	if pairs {
		slices.SortFunc(r.Honest, func(a, b RjPair) int { return strings.Compare(replay.Key(&a.Cp), replay.Key(&b.Cp)) })
		for _, p := range r.Honest {
			fmt.Fprintf(w, "honest %s (%s day; original's %s, copying %d): %s\n", p.By, p.CpCase, p.OrigCase, p.OrigOther,
				PairLine(&r.Cfg, &p.Cp, &p.Orig))
		}
		slices.Sort(caught)
		for _, c := range caught {
			fmt.Fprintln(w, c)
		}
		// one line per matching pair, for offline floors:
		// pair day class by J eq C Ncp Norig dFrom dTo overlap cpInside simult
		for _, p := range r.All {
			j, c := replay.Similarity(&p.Orig, &p.Cp)
			cheb := func(a, b [2]int32) int32 { return max(abs32(a[0]-b[0]), abs32(a[1]-b[1])) }
			overlap := p.Cp.Vehicle != p.Orig.Vehicle && p.Cp.StartMs <= p.Orig.EndMs && p.Orig.StartMs <= p.Cp.EndMs
			inside := overlap && p.Cp.EndMs <= p.Orig.EndMs
			fmt.Fprintf(w, "pair\t%s/%s\t%s\t%s\t%.4f\t%d\t%.4f\t%d\t%d\t%d\t%d\t%v\t%v\t%v\t%d\t%d\t%s\n",
				p.Cp.Vehicle, p.Cp.Date, strings.ReplaceAll(p.CpCase.String(), " ", "_"), p.By, j, int(j*replay.K+0.5), c, p.Cp.N, p.Orig.N,
				cheb(p.Cp.From, p.Orig.From), cheb(p.Cp.To, p.Orig.To), overlap, inside, replay.Simultaneous(&r.Cfg, &p.Cp, &p.Orig),
				(p.Cp.StartMs-p.Orig.StartMs)/1000, sharedBands(&p.Cp, &p.Orig), strings.ReplaceAll(p.OrigCase.String(), " ", "_"))
		}
	}
}

func abs32(x int32) int32 {
	if x < 0 {
		return -x
	}
	return x
}
