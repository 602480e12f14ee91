// Command fairness measures the fairness of the daily score (issue 15,
// "Must hold"): it simulates a fleet (loadtest/fleet) with shares of every
// honest edge case and fraud class applied per vehicle-day, scores every
// vehicle-day with the pure scoring code (services/scoring: Day and Result,
// no Kafka) and prints, per class, the days, the flagged rate, the
// honest false-flag rate, the paid distance against the ground truth and
// the points against the same day delivered in order by an ordinary box.
//
//	go run ./loadtest/fairness -vehicles 10000 -days 30     # make fairness
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minecart/minecart/loadtest/fleet"
	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/services/scoring"
	"github.com/minecart/minecart/services/scoring/replay"
	"github.com/minecart/minecart/services/telemetry"
)

// RealisticMix is the share of vehicle-days of each case in the month run:
// honest edge cases as often as a fleet of cheap boxes shows them, fraud
// classes rare but with hundreds of days each in 300,000 vehicle-days.
var RealisticMix = fleet.CaseMix{
	fleet.CasePowerLoss:   0.02,
	fleet.CaseBoxSwap:     0.003,
	fleet.CaseRepeat20Hz:  0.005,
	fleet.CaseTunnel:      0.03,
	fleet.CaseOutOfOrder:  0.05,
	fleet.CaseLate:        0.01,
	fleet.CaseRollback:    0.003,
	fleet.CaseInflated:    0.003,
	fleet.CaseTeleport:    0.003,
	fleet.CaseClone:       0.002,
	fleet.CaseSynthetic:   0.003,
	fleet.CaseReplayOwn:   0.002,
	fleet.CaseReplayOther: 0.002,
}

// Config is one measurement.
type Config struct {
	Seed     uint64
	Vehicles int
	Days     int
	Start    time.Time
	Mix      fleet.CaseMix
	Workers  int
	Rules    scoring.Rules
	// NoParked: the replay indexes start empty. Otherwise each task's index
	// knows, before the first day, where each of its vehicles was parked
	// (replay.Index.Parked: the first fix of the vehicle's untampered first
	// day, as if its previous trip had ended there the day before), as a
	// running index knows every vehicle's previous day.
	NoParked bool
	// Progress, when set, is called after every 500th vehicle scored.
	Progress func(done, total int, elapsed time.Duration)
	// Dump, when set, receives every day's trip fingerprints in close
	// order, their origins anchored (WriteDump's format), for Rejudge.
	Dump io.Writer
	// FpOnly builds the days' fingerprints without scoring them (with
	// Dump: a faster dump; the table is then meaningless).
	FpOnly bool
}

// Row is one class's figures. Late is split in two rows: at close and
// re-scored with the late events.
type Row struct {
	Name                string
	Fraud               bool
	Days, DrivingDays   int
	Flagged             int // fraud: days raising a wanted flag; honest: days with any flag
	FlagCounts          map[string]int
	PaidKm, TruthKm     float64 // distance_km (before flag factors) and the distance really driven
	Points, CleanPoints int64   // points of the day as delivered, of the same day in order from an ordinary box
	SamePoints          int     // days whose points equal the clean day's
}

// Report is the table of one run.
type Report struct {
	Config  Config
	Rows    []*Row // in Case order; the late row is followed by "late upload, re-scored"
	Elapsed time.Duration
	Events  int64
	// SameTask counts the replay-other days whose copied vehicle is on the
	// copier's scoring task (the detector's scope); SameTaskFlagged, of
	// them, the flagged ones.
	SameTask, SameTaskFlagged int
	// The global replay check: verdicts emitted, and of them applied (by
	// the copy day's class), to a day flagged already, to a day not kept.
	GlobalVerdicts, GlobalAlready, GlobalNotKept int
	GlobalApplied                                [fleet.NumCases]int
	// ReplayedBy counts, per class, the days flagged replayed_trace: [0]
	// all, [1] by the task's own index at the close, [2] by a verdict.
	ReplayedBy [fleet.NumCases][3]int
	// HonestVerdicts are the verdicts applied to an honest day (its ID,
	// the classes of the two days).
	HonestVerdicts []HonestVerdict
	// ReplayMisses explains each replay day (own or other) left unflagged:
	// every pair of its trips with the source day's, and the rule that
	// refused the pair (replayDiag).
	ReplayMisses []string
}

// HonestVerdict is a global check verdict applied to an honest day: the
// classes of the copy's (honest) and the original's days, and the vehicle
// the original's day copied (-1: none).
type HonestVerdict struct {
	replay.Verdict
	Copy, Orig fleet.Case
	OrigOther  int
}

func (h HonestVerdict) String() string {
	return fmt.Sprintf("%s (%d per mille): the copy's day %s, the original's %s (copying vehicle %d)",
		h.ID(), h.ContainPermille, h.Copy, h.Orig, h.OrigOther)
}

const lateRescored = fleet.NumCases // the index of the re-scored late row

// Run simulates and scores cfg's fleet.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Workers < 1 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	sim, err := fleet.New(fleet.Config{Seed: cfg.Seed, Vehicles: cfg.Vehicles, Days: cfg.Days, Start: cfg.Start,
		Mix: fleet.Mix{Calm: 0.30, Average: 0.45, Aggressive: 0.25}, Cases: cfg.Mix})
	if err != nil {
		return nil, err
	}
	wins := windows(sim, cfg.Days, &cfg.Rules)
	sc := &scorer{rules: cfg.Rules, rcfg: replay.DefaultConfig(), wins: wins, vehicles: sim.Vehicles(), fpOnly: cfg.FpOnly}
	rcfg, vehicles := sc.rcfg, sc.vehicles
	began := time.Now()
	var done atomic.Int64
	recs := make([][]dayRec, cfg.Vehicles) // [vehicle][day], each written by one worker
	next := make(chan int)
	var wg sync.WaitGroup
	for range cfg.Workers {
		wg.Go(func() {
			var evBuf []telemetry.Event
			for i := range next {
				var days []fleet.CaseDay
				days, evBuf = sim.VehicleDaysBuf(i, evBuf)
				recs[i] = sc.vehicle(i, days)
				if d := done.Add(1); d%500 == 0 && cfg.Progress != nil {
					cfg.Progress(int(d), cfg.Vehicles, time.Since(began))
				}
			}
		})
	}
	go func() {
		defer close(next)
		for i := range cfg.Vehicles {
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Replay detection judges each day when it closes, against the days
	// closed before: Windows closes the days of one window end in vehicle
	// id order (Windows.freeze), and judgeReplay expires, checks and adds
	// each day's trips in that order. The same, over the whole fleet.
	// Each scoring task keeps its own index (docs/scoring.md, "Replay
	// detection", Scope): a task per partition of the clean topic, which
	// ingest keys by vehicle id with Kafka's murmur2.
	idx := make([]*replay.Index, pipelines.TelemetryPartitions)
	for t := range idx {
		var err error
		if idx[t], err = replay.NewIndex(rcfg, 30, 200_000); err != nil { // the stage's defaults (ReplayDays, ReplayBudget)
			return nil, err
		}
	}
	task := make([]int, cfg.Vehicles)
	order := make([]int, cfg.Vehicles)
	for i := range order {
		order[i] = i
		task[i] = int(murmur2([]byte(vehicles[i].VehicleID))&0x7fffffff) % pipelines.TelemetryPartitions
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(vehicles[a].VehicleID, vehicles[b].VehicleID) })
	// The global replay check (docs/scoring.md, "Global replay check"), as
	// the replaycheck stage runs it: each trip fingerprint of a closed day,
	// once per LSH band, to the partition murmur2(BandKey as 8 bytes BE) of
	// the fingerprints topic, whose Postings judge it; each verdict is
	// applied to the copy's kept closed day (ClosedDays.Replayed: a day not
	// yet flagged takes replayed_trace, points 0; one flagged already is
	// unchanged; one past the lateness is not kept).
	glob := make([]*replay.Postings, pipelines.TelemetryPartitions)
	for t := range glob {
		var err error
		if glob[t], err = replay.NewPostings(rcfg, 30, 200_000); err != nil { // replaycheck's defaults (Days, Budget)
			return nil, err
		}
	}
	byID := make(map[string]int, cfg.Vehicles)
	for i := range vehicles {
		byID[vehicles[i].VehicleID] = i
	}
	byDate := make(map[string]int, cfg.Days)
	for d := range wins {
		byDate[wins[d].date] = d
	}
	if !cfg.NoParked && cfg.Days > 0 {
		before := cfg.Start.AddDate(0, 0, -1).Format(time.DateOnly)
		for i := range recs {
			if len(recs[i]) > 0 && recs[i][0].parked != nil {
				idx[task[i]].Parked(vehicles[i].VehicleID, before, *recs[i][0].parked)
			}
		}
	}
	const keptDays = 7 // the stage's lateness, 7 x 24 h
	total := newReport(cfg)
	apply := func(v replay.Verdict, now int) {
		total.GlobalVerdicts++
		i, ok := byID[v.Vehicle]
		d, ok2 := byDate[v.Date]
		if !ok || !ok2 || d >= len(recs[i]) || now-d >= keptDays {
			total.GlobalNotKept++
			return
		}
		r := &recs[i][d]
		if r.replayed {
			total.GlobalAlready++
			return
		}
		total.GlobalApplied[r.c]++
		if !r.c.Fraud() {
			o := &recs[byID[v.OfVehicle]][byDate[v.OfDate]]
			total.HonestVerdicts = append(total.HonestVerdicts, HonestVerdict{v, r.c, o.c, o.other})
		}
		r.replayed, r.global = true, true
		r.res.replayed()
		if r.late != nil {
			r.late.replayed()
		}
	}
	// The replay days and the days they copy keep their fingerprints for
	// the diagnostics of a miss.
	keepFps := map[[2]int]bool{}
	for i := range recs {
		for d := range recs[i] {
			if r := &recs[i][d]; r.c == fleet.CaseReplayOwn || r.c == fleet.CaseReplayOther {
				keepFps[[2]int{i, d}] = true
				keepFps[[2]int{r.other, r.src}] = true
			}
		}
	}
	var key [8]byte
	var dump *dumpWriter
	if cfg.Dump != nil {
		dump = newDumpWriter(cfg.Dump, vehicles, wins)
	}
	for d := range cfg.Days {
		if t, err := time.Parse(time.DateOnly, wins[d].date); err == nil {
			for _, x := range idx {
				x.Expire(t.AddDate(0, 0, -(x.Retention() - 1)).Format(time.DateOnly))
			}
		}
		for _, i := range order {
			if d >= len(recs[i]) {
				continue
			}
			idx := idx[task[i]]
			r := &recs[i][d]
			replayed := false
			for k := range r.fps {
				idx.Anchor(&r.fps[k]) // judgeReplay
			}
			if dump != nil {
				dump.day(i, d, task[i], r)
			}
			for k := range r.fps {
				if len(idx.Check(&r.fps[k])) > 0 {
					replayed = true
				}
				idx.Add(&r.fps[k])
			}
			if r.end != nil {
				idx.SetEnd(vehicles[i].VehicleID, *r.end) // judgeReplay
			}
			if replayed {
				r.replayed, r.task = true, true
				r.res.replayed()
				if r.late != nil {
					r.late.replayed() // ClosedDays keeps the close's replay flag in every revision
				}
			}
			// publishTrips, then replaycheck: the day's fingerprints in
			// trip order, each band in order.
			for k := range r.fps {
				for b := range replay.Bands {
					binary.BigEndian.PutUint64(key[:], replay.BandKey(&r.fps[k], b))
					part := int(murmur2(key[:])&0x7fffffff) % len(glob)
					for _, v := range glob[part].Offer(&r.fps[k], b) {
						apply(v, d)
					}
				}
			}
			if !keepFps[[2]int{i, d}] {
				r.fps = nil
			}
		}
	}
	// The rows, once every verdict is in (a verdict can flag a day closed
	// earlier than the fingerprint that settles it).
	for d := range cfg.Days {
		for _, i := range order {
			if d >= len(recs[i]) {
				continue
			}
			r := &recs[i][d]
			total.Rows[r.c].add(r, &r.res)
			if r.c == fleet.CaseReplayOther && r.other >= 0 && task[r.other] == task[i] {
				total.SameTask++
				if r.task {
					total.SameTaskFlagged++
				}
			}
			if r.replayed {
				total.ReplayedBy[r.c][0]++
				if r.task {
					total.ReplayedBy[r.c][1]++
				}
				if r.global {
					total.ReplayedBy[r.c][2]++
				}
			}
			if r.late != nil {
				total.Rows[lateRescored].add(r, r.late)
			}
			if (r.c == fleet.CaseReplayOwn || r.c == fleet.CaseReplayOther) && !r.replayed {
				total.ReplayMisses = append(total.ReplayMisses,
					replayDiag(rcfg, vehicles, i, d, r, &recs[r.other][r.src]))
			}
		}
	}
	total.Events = sc.events.Load()
	total.Elapsed = time.Since(began)
	if dump != nil {
		if err := dump.flush(); err != nil {
			return nil, err
		}
	}
	return total, nil
}

// window is one local day of the run.
type window struct {
	start, end int64
	night      uint32
	date, tz   string
}

// windows are the run's local days.
func windows(sim *fleet.Sim, days int, rules *scoring.Rules) []window {
	loc := sim.Start().Location()
	y, m, d0 := sim.Start().Date()
	wins := make([]window, days)
	for d := range wins {
		s := time.Date(y, m, d0+d, 0, 0, 0, 0, loc)
		wins[d] = window{s.UnixMilli(), s.AddDate(0, 0, 1).UnixMilli(),
			uint32(time.Date(y, m, d0+d, rules.NightEndHour, 0, 0, 0, loc).UnixMilli() - s.UnixMilli()),
			s.Format(time.DateOnly), loc.String()}
	}
	return wins
}

// scorer scores one vehicle's days as the stage would: the clean topic's
// events with ingest's odometer marks, the replay trace of each day, the
// late tail through ClosedDays.
type scorer struct {
	rules    scoring.Rules
	rcfg     replay.Config
	wins     []window
	vehicles []fleet.Vehicle
	events   atomic.Int64
	// only, when set, limits scoring to the days of the cases it accepts
	// (the others only pass ingest's odometer check): a search's speed-up.
	only func(fleet.Case) bool
	// fpOnly: only the replay traces are built (Config.FpOnly).
	fpOnly bool
}

func (sc *scorer) vehicle(i int, days []fleet.CaseDay) []dayRec {
	rcfg := sc.rcfg
	var buf []byte
	var n int64
	vid := sc.vehicles[i].VehicleID
	// ingest's odometer check across the vehicle's days (ingest.HeaderOdometer),
	// which knew the box before the run: its reading at the run's start
	// is the first real reading of the first day.
	var odo odoMark
	if len(days) > 0 {
		for _, ev := range days[0].Clean {
			if ev.OdometerKm > 0 {
				odo = odoMark{sc.wins[days[0].Truth.Day].start - 1, ev.OdometerKm}
				break
			}
		}
	}
	out := make([]dayRec, 0, len(days))
	for _, cd := range days {
		w := sc.wins[cd.Truth.Day]
		if sc.only != nil && !sc.only(cd.Case) {
			for k := range cd.Events {
				odo.check(&cd.Events[k])
			}
			for k := range cd.Late {
				odo.check(&cd.Late[k])
			}
			out = append(out, dayRec{c: cd.Case})
			continue
		}
		if sc.fpOnly {
			trace := replay.NewBuilder(w.start)
			for k := range cd.Events {
				ev := &cd.Events[k] // Windows.trace: every fix with a position
				trace.Add(&rcfg, replay.Fix{TimeMs: ev.TimeMs, Lat: ev.Lat, Lon: ev.Lon, SpeedKmh: ev.SpeedKmh})
			}
			n += int64(len(cd.Events))
			r := dayRec{c: cd.Case, other: cd.Other, src: cd.SourceDay, truthKm: cd.Truth.DistanceKm,
				fps: trace.Fingerprints(&rcfg, vid, w.date), end: dayEnd(trace, w.date)}
			if len(out) == 0 {
				r.parked = parkedAt(&cd, w.start)
			}
			out = append(out, r)
			continue
		}
		day := scoring.NewDay(w.start, w.end, w.night)
		trace := replay.NewBuilder(w.start)
		for k := range cd.Events {
			ev := &cd.Events[k]
			buf = day.AddRef(&sc.rules, ev, odo.check(ev), buf)
			// Windows.trace: every fix with a position
			trace.Add(&rcfg, replay.Fix{TimeMs: ev.TimeMs, Lat: ev.Lat, Lon: ev.Lon, SpeedKmh: ev.SpeedKmh})
		}
		n += int64(len(cd.Events))
		res := day.Result(&sc.rules)
		r := dayRec{c: cd.Case, other: cd.Other, src: cd.SourceDay, truthKm: cd.Truth.DistanceKm, res: summary(&res),
			fps: trace.Fingerprints(&rcfg, vid, w.date), end: dayEnd(trace, w.date)}
		r.clean = r.res.points
		if len(out) == 0 {
			r.parked = parkedAt(&cd, w.start)
		}
		if cd.Case != fleet.CaseNone {
			clean := scoring.NewDay(w.start, w.end, w.night)
			for k := range cd.Clean {
				buf = clean.Add(&sc.rules, &cd.Clean[k], buf)
			}
			n += int64(len(cd.Clean))
			r.clean = clean.Result(&sc.rules).Points
		}
		if cd.Case == fleet.CaseLate {
			// The late tail re-scores the closed day through
			// ClosedDays, as the stage does: the revision is what
			// the ledger books as a rescore.
			kept := scoring.NewClosedDays(&sc.rules, 7*24*time.Hour)
			kept.Keep(&scoring.Closed{ID: vid + "/" + w.date, Vehicle: vid, Date: w.date, TZ: w.tz, Day: &day, Result: res})
			closedThrough := w.end + 2*time.Hour.Milliseconds()
			l := scoring.Late{WindowEnd: w.end, ClosedThrough: closedThrough, Date: w.date, WindowStart: w.start, NightEnd: w.night, TZ: w.tz}
			for k := range cd.Late {
				ev := &cd.Late[k]
				odo.check(ev)
				kept.Add(ev, &l, nil)
			}
			n += int64(len(cd.Late))
			kept.Revise(closedThrough, func(rv *scoring.Revision) { s := summary(&rv.Result); r.late = &s })
		}
		if cd.Case.Fraud() {
			// The simulator tampers one day at a time and the next day's
			// readings are the real odometer again, where a real box would
			// continue from the tampered reading: ingest continues from the
			// day's real last reading, so its check does not blame that
			// splice on the honest next day.
			odo = odoMark{}
			for k := len(cd.Clean) - 1; k >= 0; k-- {
				if cd.Clean[k].OdometerKm > 0 {
					odo = odoMark{cd.Clean[k].TimeMs, cd.Clean[k].OdometerKm}
					break
				}
			}
		}
		out = append(out, r)
	}
	sc.events.Add(n)
	return out
}

// dayEnd is the day's last fix with a position (Builder.End), the
// vehicle's end that judgeReplay records after the day's trips.
func dayEnd(b *replay.Builder, date string) *replay.End {
	t, c, ok := b.End()
	if !ok {
		return nil
	}
	return &replay.End{Date: date, TimeMs: t, Cell: c}
}

// parkedAt is where the vehicle was parked before its first day (Config.NoParked):
// the first fix with a position of the untampered day, at start - 1 ms.
func parkedAt(cd *fleet.CaseDay, start int64) *replay.Fix {
	evs := cd.Clean
	if len(evs) == 0 {
		evs = cd.Events
	}
	for k := range evs {
		if evs[k].Lat != 0 || evs[k].Lon != 0 {
			return &replay.Fix{TimeMs: start - 1, Lat: evs[k].Lat, Lon: evs[k].Lon}
		}
	}
	return nil
}

// dayRec is a scored vehicle-day waiting for replay detection.
type dayRec struct {
	c       fleet.Case
	other   int // CaseReplayOwn, CaseReplayOther: the vehicle copied
	src     int // the day copied
	truthKm float64
	res     scored
	late    *scored // CaseLate: the revision with the late events
	clean   int64   // points of the same day in order from an ordinary box
	fps     []replay.Fingerprint
	end     *replay.End // the day's last fix with a position (dayEnd)
	// parked: the vehicle's first day only, its first fix with a position
	// of the untampered day at the window's start - 1 ms (Config.NoParked).
	parked *replay.Fix
	// replayed: the day is flagged replayed_trace, by its task's index at
	// the close (task) or by a global check verdict (global).
	replayed, task, global bool
}

// scored is what the table needs of a Result.
type scored struct {
	flags  []string
	km     float64
	points int64
}

func summary(r *scoring.Result) scored {
	return scored{flags: slices.Clone(r.Flags), km: r.DistanceKm, points: r.Points}
}

func (s *scored) replayed() {
	s.flags = append(s.flags, scoring.FlagReplay)
	s.points = int64(float64(s.points) * scoring.FactorReplay)
}

// odoMark is ingest's odometer check of one vehicle (telemetry.Dedup.Check
// and Add, docs/ingest.md "Odometer marks"): the newest reading in event
// time; an event contradicting it is marked with it.
type odoMark struct {
	ms int64
	km float64
}

func (o *odoMark) check(ev *telemetry.Event) *scoring.OdoRef {
	const tol = 0.001 // km, telemetry's odoTolerance
	var ref *scoring.OdoRef
	if ev.OdometerKm > 0 && o.km > 0 &&
		((ev.TimeMs >= o.ms && ev.OdometerKm < o.km-tol) || (ev.TimeMs < o.ms && ev.OdometerKm > o.km+tol)) {
		ref = &scoring.OdoRef{TimeMs: o.ms, Km: o.km}
	}
	if ev.OdometerKm > 0 && ev.TimeMs >= o.ms {
		o.ms, o.km = ev.TimeMs, ev.OdometerKm
	}
	return ref
}

func newReport(cfg Config) *Report {
	r := &Report{Config: cfg, Rows: make([]*Row, fleet.NumCases+1)}
	for c := range fleet.NumCases {
		r.Rows[c] = &Row{Name: c.String(), Fraud: c.Fraud(), FlagCounts: map[string]int{}}
	}
	r.Rows[fleet.CaseLate].Name = "late upload, at close"
	r.Rows[lateRescored] = &Row{Name: "late upload, re-scored", FlagCounts: map[string]int{}}
	return r
}

func (r *Row) add(d *dayRec, res *scored) {
	r.Days++
	if d.truthKm >= 0.5 {
		r.DrivingDays++
	}
	for _, f := range res.flags {
		r.FlagCounts[f]++
	}
	if d.c.Fraud() {
		if slices.ContainsFunc(res.flags, func(f string) bool { return slices.Contains(d.c.Want(), f) }) {
			r.Flagged++
		}
	} else if len(res.flags) > 0 {
		r.Flagged++
	}
	r.PaidKm += res.km
	r.TruthKm += d.truthKm
	r.Points += res.points
	r.CleanPoints += d.clean
	if res.points == d.clean {
		r.SamePoints++
	}
}

func pct(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%+.2f %%", 100*(a/b-1))
}

func share(n, d int) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f %%", 100*float64(n)/float64(d))
}

// Honest sums the honest rows that reach scoring as delivered (the late
// row at close excluded, re-scored included).
func (r *Report) Honest() Row {
	t := Row{Name: "honest, all", FlagCounts: map[string]int{}}
	for i, x := range r.Rows {
		if x.Fraud || i == int(fleet.CaseLate) {
			continue
		}
		t.Days += x.Days
		t.DrivingDays += x.DrivingDays
		t.Flagged += x.Flagged
		t.PaidKm += x.PaidKm
		t.TruthKm += x.TruthKm
		t.Points += x.Points
		t.CleanPoints += x.CleanPoints
		t.SamePoints += x.SamePoints
		for f, n := range x.FlagCounts {
			t.FlagCounts[f] += n
		}
	}
	return t
}

// WriteTable writes the Markdown table and the "Must hold" verdicts.
func (r *Report) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "fleet: %d vehicles x %d days (seed %d), rules %s; %d vehicle-days, %d events scored in %v on %d workers\n\n",
		r.Config.Vehicles, r.Config.Days, r.Config.Seed, r.Config.Rules.Version, r.Config.Vehicles*r.Config.Days,
		r.Events, r.Elapsed.Round(time.Second), r.Config.Workers)
	fmt.Fprintln(w, "| class | days (driving) | flagged (fraud: a wanted flag) | false flags (honest) | paid km vs truth | points vs in-order | days with in-order points | flags raised |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	line := func(x *Row) {
		flagged, falseF := "", ""
		if x.Fraud {
			flagged = share(x.Flagged, x.Days)
		} else {
			falseF = share(x.Flagged, x.Days)
		}
		var fl []string
		for _, f := range slices.Sorted(func(yield func(string) bool) {
			for f := range x.FlagCounts {
				if !yield(f) {
					return
				}
			}
		}) {
			fl = append(fl, fmt.Sprintf("%s %d", f, x.FlagCounts[f]))
		}
		fmt.Fprintf(w, "| %s | %d (%d) | %s | %s | %s | %s | %s | %s |\n", x.Name, x.Days, x.DrivingDays, flagged, falseF,
			pct(x.PaidKm, x.TruthKm), pct(float64(x.Points), float64(x.CleanPoints)), share(x.SamePoints, x.Days), strings.Join(fl, ", "))
	}
	for _, x := range r.Rows {
		line(x)
	}
	h := r.Honest()
	line(&h)
	fmt.Fprintf(w, "\nreplay other within a task's scope (the copied vehicle on the same partition): %d of %d days flagged\n\n",
		r.SameTaskFlagged, r.SameTask)
	fmt.Fprintf(w, "global replay check: %d verdicts, %d applied, %d to a day flagged already, %d to a day not kept\n\n",
		r.GlobalVerdicts, sum(r.GlobalApplied[:]), r.GlobalAlready, r.GlobalNotKept)
	fmt.Fprintln(w, "| class | days | replayed_trace (rate) | by the task's index at close | by a global verdict |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for c := range fleet.NumCases {
		b, x := r.ReplayedBy[c], r.Rows[c]
		if b[0] == 0 && !(c == fleet.CaseReplayOwn || c == fleet.CaseReplayOther) {
			continue
		}
		fmt.Fprintf(w, "| %s | %d | %d (%s) | %d | %d |\n", x.Name, x.Days, b[0], share(b[0], x.Days), b[1], b[2])
	}
	for _, v := range r.HonestVerdicts {
		fmt.Fprintln(w, "\nverdict on an honest day:", v)
	}
	for _, m := range r.ReplayMisses {
		fmt.Fprintln(w, "\nreplay missed:", m)
	}
	fmt.Fprintln(w)
	for _, v := range r.Verdicts() {
		fmt.Fprintln(w, v)
	}
}

// replayDiag explains a replay day left unflagged: per pair of a copy trip
// and a trip of the day it copies, the shingle counts, start times, the
// estimated Jaccard and containment, the lowest shared LSH band, and the
// first rule of the checks (docs/scoring.md, "Replay detection" and
// "Global replay check") that refuses the pair.
func replayDiag(cfg replay.Config, vehicles []fleet.Vehicle, i, d int, r, src *dayRec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v vehicle %d (%s) day %d copies vehicle %d day %d (a %v day): %d copy trips, %d source trips",
		r.c, i, vehicles[i].VehicleID, d, r.other, r.src, src.c, len(r.fps), len(src.fps))
	switch src.c {
	case fleet.CaseReplayOwn, fleet.CaseReplayOther, fleet.CaseSynthetic:
		// the simulator copies the vehicle's real drive of that day, which
		// its box replaced: no trace of it was ever sent
		fmt.Fprintf(&b, "; the copied drive was never uploaded (its day was sent as %v)", src.c)
	}
	for a := range r.fps {
		cp := &r.fps[a]
		for o := range src.fps {
			orig := &src.fps[o]
			j, c := replay.Similarity(orig, cp)
			band := replay.LowestSharedBand(orig, cp)
			why := replay.Refusal(&cfg, orig, cp)
			fmt.Fprintf(&b, "\n  copy trip %d (n=%d, %s, origin %d) vs trip %d (n=%d, %s, %+.1fs, origin %d): J=%.3f C=%.3f band=%d: %s",
				cp.Trip, cp.N, time.UnixMilli(cp.StartMs).UTC().Format("01-02 15:04:05"), cp.Origin, orig.Trip, orig.N,
				time.UnixMilli(orig.StartMs).UTC().Format("01-02 15:04:05"), float64(cp.StartMs-orig.StartMs)/1000, orig.Origin, j, c, band, why)
		}
	}
	return b.String()
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

// Verdicts checks the "Must hold" lines of issue 15: a line per rule,
// starting with PASS or FAIL.
func (r *Report) Verdicts() []string {
	var out []string
	v := func(ok bool, format string, args ...any) {
		p := "PASS"
		if !ok {
			p = "FAIL"
		}
		out = append(out, p+" "+fmt.Sprintf(format, args...))
	}
	for c := fleet.CaseRollback; c < fleet.NumCases; c++ {
		x := r.Rows[c]
		v(x.Days > 0 && x.Flagged == x.Days, "%s: %d of %d days flagged %v", x.Name, x.Flagged, x.Days, c.Want())
	}
	for i, x := range r.Rows {
		if x.Fraud || i == int(fleet.CaseLate) || x.Days == 0 {
			continue
		}
		v(float64(x.Flagged) < 0.005*float64(x.Days), "%s: false flags %d of %d days (%s, must be < 0.5 %%)", x.Name, x.Flagged, x.Days, share(x.Flagged, x.Days))
		v(math.Abs(x.PaidKm/x.TruthKm-1) <= 0.01, "%s: paid %.1f km vs true %.1f km (%s, must be within 1 %%)", x.Name, x.PaidKm, x.TruthKm, pct(x.PaidKm, x.TruthKm))
	}
	h := r.Honest()
	v(float64(h.Flagged) < 0.005*float64(h.Days), "honest, all: false flags %d of %d days (%s)", h.Flagged, h.Days, share(h.Flagged, h.Days))
	v(math.Abs(h.PaidKm/h.TruthKm-1) <= 0.01, "honest, all: paid %.1f km vs true %.1f km (%s)", h.PaidKm, h.TruthKm, pct(h.PaidKm, h.TruthKm))
	for _, i := range []int{int(fleet.CaseOutOfOrder), int(lateRescored)} {
		x := r.Rows[i]
		v(x.SamePoints == x.Days, "%s: %d of %d days with the in-order points", x.Name, x.SamePoints, x.Days)
	}
	return out
}

func main() {
	var cfg Config
	flag.Uint64Var(&cfg.Seed, "seed", 1, "simulation seed")
	flag.IntVar(&cfg.Vehicles, "vehicles", 10000, "fleet size")
	flag.IntVar(&cfg.Days, "days", 30, "days simulated")
	flag.IntVar(&cfg.Workers, "workers", 0, "goroutines (0: GOMAXPROCS)")
	start := flag.String("start", "2026-11-02", "first local day (Asia/Shanghai)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to this file")
	flag.BoolVar(&cfg.NoParked, "no-parked", false, "replay indexes start empty (no vehicle's position before the first day)")
	dumpTo := flag.String("dump", "", "write every day's trip fingerprints (close order, origins anchored) to this file, for -rejudge")
	flag.BoolVar(&cfg.FpOnly, "fponly", false, "with -dump: build the fingerprints only, score nothing (the table is meaningless)")
	rejudge := flag.String("rejudge", "", "judge the fingerprints of a -dump file again (no simulation) and print the replay table")
	pairs := flag.Bool("pairs", false, "with -rejudge: print every pair flagging an honest day")
	minJ := flag.Float64("minjaccard", -1, "with -rejudge: replay.Config.MinJaccard (-1: the default)")
	minC := flag.Float64("mincontain", -1, "with -rejudge: replay.Config.MinContain (-1: the default)")
	flag.Parse()
	if *rejudge != "" {
		rc := replay.DefaultConfig()
		if *minJ >= 0 {
			rc.MinJaccard = *minJ
		}
		if *minC >= 0 {
			rc.MinContain = *minC
		}
		f, err := os.Open(*rejudge)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fairness:", err)
			os.Exit(1)
		}
		defer f.Close()
		rj, err := Rejudge(bufio.NewReaderSize(f, 1<<20), rc)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fairness:", err)
			os.Exit(1)
		}
		rj.Write(os.Stdout, *pairs)
		return
	}
	if *dumpTo != "" {
		f, err := os.Create(*dumpTo)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fairness:", err)
			os.Exit(1)
		}
		defer f.Close()
		cfg.Dump = f
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fairness:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "fairness:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	t, err := time.Parse(time.DateOnly, *start)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fairness: -start:", err)
		os.Exit(2)
	}
	cfg.Start, cfg.Mix, cfg.Rules = t, RealisticMix, scoring.DefaultRules()
	debug.SetGCPercent(400) // a few workers' months of events live at a time; less GC
	cfg.Progress = func(done, total int, elapsed time.Duration) {
		fmt.Fprintf(os.Stderr, "fairness: %d of %d vehicles in %v\n", done, total, elapsed.Round(time.Second))
	}
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fairness:", err)
		return
	}
	rep.WriteTable(os.Stdout)
}

// murmur2 is Kafka's key hash (the Java client's Utils.murmur2, which
// franz-go's and kafka-go's murmur2 partitioners reproduce): a key's
// partition is (murmur2(key) & 0x7fffffff) mod partitions.
func murmur2(b []byte) uint32 {
	const seed, m, r = uint32(0x9747b28c), uint32(0x5bd1e995), 24
	h := seed ^ uint32(len(b))
	for ; len(b) >= 4; b = b[4:] {
		k := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch len(b) {
	case 3:
		h ^= uint32(b[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(b[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(b[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}
