package fleet

import (
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/minecart/minecart/services/telemetry"
)

// Case is what happens to one vehicle-day beyond ordinary driving: an
// honest edge case of real boxes (the box is not lying; a fair scorer pays
// the distance really driven and flags nothing), or a fraud class (the box
// lies; a fair scorer raises one of Want). Cases are applied per
// vehicle-day to the days of honest vehicles by VehicleDays when
// Config.Cases has shares; with no shares nothing changes (the streams of
// Chunks, Deliveries and Vehicle never carry cases).
type Case uint8

// The cases. Honest edge cases first, then fraud classes.
const (
	CaseNone Case = iota
	// CasePowerLoss: the box loses power for 10 minutes while driving: no
	// events; the car drives on and its odometer (read from the car) counts.
	CasePowerLoss
	// CaseBoxSwap: the box is replaced mid-day, while parked, by a new
	// device registered to the vehicle (its own device id, seq from 1).
	CaseBoxSwap
	// CaseRepeat20Hz: a 20 Hz box: while the engine runs it sends 19
	// events between two 1 Hz GPS fixes, repeating the last fix (position,
	// HDOP, odometer, heading) with speed and accelerations interpolated.
	CaseRepeat20Hz
	// CaseTunnel: no GPS fix for 2-5 minutes while driving: the receiver
	// repeats its last fix with HDOP TunnelHDOP; speed and odometer go on.
	CaseTunnel
	// CaseOutOfOrder: the box buffers 1-5 upload batches (10-minute
	// windows) while offline and uploads them, newest first, after the
	// next batch, all within the grace.
	CaseOutOfOrder
	// CaseLate: the box goes offline during the day's last trip and is
	// back only after midnight plus the grace: the events from then on
	// (Late) arrive after the day closed.
	CaseLate

	// CaseRollback: the odometer is wound back by 300-5,000 km before a
	// trip (the second of the day when there are two).
	CaseRollback
	// CaseInflated: odometer increments and reported speed are 40-100 %
	// above the truth (the GPS track shows the real distance).
	CaseInflated
	// CaseTeleport: the reported position jumps 3-30 km during one or two
	// trips and stays there until the trip ends.
	CaseTeleport
	// CaseClone: a second box with the same identity (device and vehicle
	// id, its own sequence numbers) in another car: its events, another
	// vehicle's day, are interleaved with the real box's.
	CaseClone
	// CaseSynthetic: a generated trace: exact whole-second times, speed
	// piecewise linear through the real speed every 20 s, positions and
	// odometer integrated from that speed along the real track, HDOP 1,
	// no sensor noise.
	CaseSynthetic
	// CaseReplayOwn: the vehicle's own drive of 1-7 days earlier re-sent
	// instead of the day's, times shifted by whole days, odometer shifted
	// to continue the real one.
	CaseReplayOwn
	// CaseReplayOther: another vehicle's drive (of the same day or up to 7
	// days earlier) re-sent under this vehicle's identity, times shifted,
	// odometer shifted to continue this vehicle's.
	CaseReplayOther

	NumCases
)

var caseNames = [...]string{"in-order", "power loss", "box swap", "20 Hz repeats", "tunnel", "out-of-order",
	"late upload", "rollback", "inflated", "teleport", "cloned box", "synthetic", "replay own", "replay other"}

func (c Case) String() string {
	if int(c) < len(caseNames) {
		return caseNames[c]
	}
	return fmt.Sprintf("case(%d)", c)
}

// Fraud reports a fraud class.
func (c Case) Fraud() bool { return c >= CaseRollback && c < NumCases }

// The flag codes of scoring (services/scoring, result.go) that fraud days
// must raise. FlagReplay is the replay detector's (issue 15 item 3, raised by
// scoring's Windows at day close on the rollback branch, not by Day.Result).
const (
	FlagTeleport    = "teleport"
	FlagRollback    = "odometer_rollback"
	FlagMismatch    = "distance_mismatch"
	FlagMultiDevice = "multi_device"
	FlagTooRegular  = "too_regular"
	FlagReplay      = "replayed_trace"
)

// Want is the flags of which at least one must fire on a day of this
// fraud class; nil for honest cases.
func (c Case) Want() []string {
	switch c {
	case CaseRollback:
		return []string{FlagRollback}
	case CaseInflated:
		return []string{FlagMismatch}
	case CaseTeleport:
		return []string{FlagTeleport}
	case CaseClone:
		// same device id: the interleaved tracks jump between two cars and
		// the interleaved odometers of two cars go backwards
		return []string{FlagTeleport, FlagRollback, FlagMultiDevice}
	case CaseSynthetic:
		return []string{FlagTooRegular}
	case CaseReplayOwn, CaseReplayOther:
		return []string{FlagReplay}
	}
	return nil
}

// CaseMix is the share of vehicle-days of each case among honest
// vehicles' days, indexed by Case (index 0 is ignored: the rest is
// CaseNone). A case that does not apply to a day (a power loss needs
// driving; a fraud class a day of at least FraudMinKm) leaves it CaseNone.
type CaseMix [NumCases]float64

// FraudMinKm is the least true distance of a day a fraud case is applied
// to (and of the day a replay copies): scoring's odometer cross-check
// starts at 5 km (OdoCheckMinKm), and a fraud on a shorter day earns little.
const FraudMinKm = 5

// SyntheticMinMoving is the least number of moving events of a day the
// synthetic case is applied to: scoring's too_regular judges a day from
// RegularMinSamples (600) moving samples, and a shorter synthetic day (a
// real drive of under ~10 minutes re-generated) earns what the real drive
// earns (the month's one such day: 54 points against 55), so it is not a
// fraud the rule must catch (docs/scoring.md, Fairness).
const SyntheticMinMoving = 600

// TunnelHDOP is the HDOP of a tunnel's fixes: far above scoring's MaxHDOP (5),
// within ingest's 0..100.
const TunnelHDOP = 99.9

// CaseDay is one vehicle-day with its case applied and its ground truth.
type CaseDay struct {
	Truth DayTruth // the real day: DistanceKm is the distance really driven
	Case  Case
	// Clean is the day as an ordinary box uploads it, in time order (the
	// in-order reference of CaseOutOfOrder and CaseLate, the honest
	// reference of the others).
	Clean []telemetry.Event
	// Events is what reaches the scorer before the day closes, in arrival
	// order; Late what arrives after it closed (CaseLate).
	Events, Late []telemetry.Event
	// Other is the vehicle index a clone or replay copied, else -1;
	// SourceDay the day a replay copied.
	Other, SourceDay int
}

// CaseOf is the case drawn for vehicle i's day d (before applicability):
// CaseNone for fraudulent vehicles and when Config.Cases is zero.
func (s *Sim) CaseOf(i, d int) Case {
	if s.cfg.Cases == (CaseMix{}) || s.vehicles[i].Profile == Fraudulent {
		return CaseNone
	}
	u := newRNG(s.cfg.Seed, tagCase, uint64(i), uint64(d)).Float64()
	for c := Case(1); c < NumCases; c++ {
		if u < s.cfg.Cases[c] {
			return c
		}
		u -= s.cfg.Cases[c]
	}
	return CaseNone
}

// VehicleDays simulates vehicle i over the whole period and returns each of
// its local days with the case of Config.Cases applied. It is
// deterministic; a clone or a replay of another vehicle simulates that
// vehicle too.
func (s *Sim) VehicleDays(i int) []CaseDay {
	days, _ := s.VehicleDaysBuf(i, nil)
	return days
}

// VehicleDaysBuf is VehicleDays with the events of vehicle i in buf
// (reused from its capacity) and returned: a caller scoring vehicle after
// vehicle passes the returned buffer back, and the days it got before are
// then overwritten.
func (s *Sim) VehicleDaysBuf(i int, buf []telemetry.Event) ([]CaseDay, []telemetry.Event) {
	v := newVehicle(s.w, &s.vehicles[i])
	evs := buf[:0]
	var truths []DayTruth
	v.advance(s.w.dayStart[s.w.days], &evs, &truths)
	days := s.splitDays(evs)
	others := map[int][][]telemetry.Event{}
	otherTruths := map[int][]DayTruth{}
	other := func(j int) ([][]telemetry.Event, []DayTruth) {
		if _, ok := others[j]; !ok {
			e, t := s.Vehicle(j)
			others[j], otherTruths[j] = s.splitDays(e), t
		}
		return others[j], otherTruths[j]
	}
	out := make([]CaseDay, len(truths))
	for d := range truths {
		cd := CaseDay{Truth: truths[d], Clean: days[d], Events: days[d], Other: -1, SourceDay: -1}
		c := s.CaseOf(i, d)
		if c != CaseNone {
			r := newRNG(s.cfg.Seed, tagCase, uint64(i), uint64(d), 1)
			if s.applyCase(&cd, c, r, i, d, days, truths, other) {
				cd.Case = c
			} else {
				cd.Events, cd.Late, cd.Other, cd.SourceDay = days[d], nil, -1, -1
			}
		}
		out[d] = cd
	}
	return out, evs
}

// CaseDayOf simulates vehicle i and returns its day d with case c applied
// (whatever Config.Cases says); false when c does not apply to that day.
func (s *Sim) CaseDayOf(i, d int, c Case) (CaseDay, bool) {
	evs, truths := s.Vehicle(i)
	days := s.splitDays(evs)
	cd := CaseDay{Truth: truths[d], Clean: days[d], Events: days[d], Other: -1, SourceDay: -1}
	if c == CaseNone {
		return cd, true
	}
	other := func(j int) ([][]telemetry.Event, []DayTruth) {
		e, t := s.Vehicle(j)
		return s.splitDays(e), t
	}
	if !s.applyCase(&cd, c, newRNG(s.cfg.Seed, tagCase, uint64(i), uint64(d), 1), i, d, days, truths, other) {
		return CaseDay{}, false
	}
	cd.Case = c
	return cd, true
}

// splitDays cuts a vehicle's time-ordered events at its local midnights.
func (s *Sim) splitDays(evs []telemetry.Event) [][]telemetry.Event {
	out := make([][]telemetry.Event, s.w.days)
	k := 0
	for d := range out {
		j := k
		for j < len(evs) && evs[j].TimeMs < s.w.dayStart[d+1] {
			j++
		}
		out[d] = evs[k:j:j]
		k = j
	}
	return out
}

// applyCase sets cd.Events (and Late) for case c; false when c does not
// apply to the day.
func (s *Sim) applyCase(cd *CaseDay, c Case, r *rng, i, d int, days [][]telemetry.Event, truths []DayTruth,
	other func(int) ([][]telemetry.Event, []DayTruth)) bool {
	day := days[d]
	moving := movingIdx(day)
	if len(moving) < 60 || c.Fraud() && cd.Truth.DistanceKm < FraudMinKm || c == CaseSynthetic && len(moving) < SyntheticMinMoving {
		return false
	}
	dev := s.vehicles[i].DeviceID
	ev := slices.Clone(day)
	pick := func(lo, hi float64) int { // a moving event between the lo and hi shares of the day's moving events
		a, b := int(lo*float64(len(moving))), int(hi*float64(len(moving)))
		return moving[a+r.IntN(max(1, b-a))]
	}
	switch c {
	case CasePowerLoss:
		t0 := ev[pick(0.1, 0.9)].TimeMs
		ev = slices.DeleteFunc(ev, func(e telemetry.Event) bool { return e.TimeMs >= t0 && e.TimeMs < t0+600_000 })
		renumber(ev, dev, day[0].Seq)
	case CaseBoxSwap:
		// at a parked heartbeat between trips, else mid-day
		k := -1
		for j := moving[0]; j < moving[len(moving)-1]; j++ {
			if !ev[j].EngineOn && ev[j+1].TimeMs-ev[j].TimeMs > 60_000 {
				k = j + 1
				break
			}
		}
		if k < 0 {
			return false
		}
		nd := "box-" + strconv.FormatUint(mix(s.cfg.Seed, tagCase, uint64(i), uint64(d), 2), 16)
		renumber(ev[k:], nd, 1)
	case CaseRepeat20Hz:
		out := make([]telemetry.Event, 0, len(ev)*8)
		for j := range ev {
			out = append(out, ev[j])
			if !ev[j].EngineOn || j+1 == len(ev) || ev[j+1].TimeMs-ev[j].TimeMs > 1100 {
				continue
			}
			a, b := &ev[j], &ev[j+1]
			for k := int64(1); k < 20 && a.TimeMs+50*k < b.TimeMs; k++ {
				f := float64(k) / 20
				e := *a
				e.TimeMs = a.TimeMs + 50*k
				e.SpeedKmh = round(a.SpeedKmh+f*(b.SpeedKmh-a.SpeedKmh), 10)
				e.AccelLonMS2 = round(a.AccelLonMS2+f*(b.AccelLonMS2-a.AccelLonMS2), 100)
				e.AccelLatMS2 = round(a.AccelLatMS2+f*(b.AccelLatMS2-a.AccelLatMS2), 100)
				out = append(out, e)
			}
		}
		ev = out
		renumber(ev, dev, day[0].Seq)
	case CaseTunnel:
		k := pick(0.1, 0.9)
		t1 := ev[k].TimeMs + int64(r.Range(120, 300)*1000)
		// the receiver holds its last fix and reports it as bad (HDOP 99.9):
		// a (0, 0) position would be dead-lettered by ingest (position_zero)
		lat, lon := ev[k].Lat, ev[k].Lon
		for j := k; j < len(ev) && ev[j].TimeMs < t1 && ev[j].EngineOn; j++ {
			ev[j].Lat, ev[j].Lon, ev[j].HDOP = lat, lon, TunnelHDOP
		}
	case CaseOutOfOrder:
		const win = 600_000
		start := s.w.dayStart[d]
		b0 := (ev[pick(0.1, 0.8)].TimeMs - start) / win
		b1 := b0 + 1 + int64(r.IntN(5)) // batches [b0, b1) are held back
		batch := func(e *telemetry.Event) int64 { return (e.TimeMs - start) / win }
		var before, held, next, rest []telemetry.Event
		for j := range ev {
			switch b := batch(&ev[j]); {
			case b < b0:
				before = append(before, ev[j])
			case b < b1:
				held = append(held, ev[j])
			case b == b1:
				next = append(next, ev[j])
			default:
				rest = append(rest, ev[j])
			}
		}
		// held back batches arrive after the next one, newest first
		out := append(before, next...)
		for b := b1 - 1; b >= b0; b-- {
			for j := range held {
				if batch(&held[j]) == b {
					out = append(out, held[j])
				}
			}
		}
		ev = append(out, rest...)
	case CaseLate:
		// offline from a moving event of the last third until after midnight + grace
		k := pick(2.0/3, 1)
		cd.Late = ev[k:]
		ev = ev[:k]
	case CaseRollback:
		k := moving[0] // the first event of the second trip, else the first moving one
		for j := moving[0] + 1; j < len(ev); j++ {
			if ev[j].EngineOn && !ev[j-1].EngineOn {
				k = j
				break
			}
		}
		back := math.Min(r.Range(300, 5000), ev[k].OdometerKm/2)
		for j := k; j < len(ev); j++ {
			ev[j].OdometerKm = round(ev[j].OdometerKm-back, 1000)
		}
	case CaseInflated:
		f := r.Range(1.4, 2.0)
		o0 := ev[0].OdometerKm
		for j := range ev {
			ev[j].OdometerKm = round(o0+(ev[j].OdometerKm-o0)*f, 1000)
			ev[j].SpeedKmh = round(ev[j].SpeedKmh*f, 10)
		}
	case CaseTeleport:
		for n := 0; n < 2; n++ {
			k := pick(0.1+0.5*float64(n), 0.4+0.5*float64(n))
			off := polar(r.Range(3000, 30000), r.Range(0, 360))
			for j := k; j < len(ev) && ev[j].EngineOn; j++ {
				ev[j].Lat = round(ev[j].Lat+off.y/mPerDeg, 1e6)
				ev[j].Lon = round(ev[j].Lon+off.x/(mPerDeg*math.Cos(ev[j].Lat*math.Pi/180)), 1e6)
			}
		}
	case CaseClone:
		j := (i + 1 + r.IntN(len(s.vehicles)-1+boolInt(len(s.vehicles) == 1))) % len(s.vehicles)
		if j == i || s.vehicles[j].Profile == Fraudulent {
			return false
		}
		od, _ := other(j)
		veh := s.vehicles[i]
		for _, e := range od[d] {
			e.DeviceID, e.VehicleID, e.TZ = veh.DeviceID, veh.VehicleID, veh.TZ
			e.EventID = veh.DeviceID + "-" + strconv.FormatUint(e.Seq, 10)
			ev = append(ev, e)
		}
		slices.SortStableFunc(ev, func(a, b telemetry.Event) int { return cmpInt(a.TimeMs, b.TimeMs) })
		cd.Other = j
	case CaseSynthetic:
		ev = synthetic(ev, s.w.dayStart[d])
	case CaseReplayOwn, CaseReplayOther:
		j := i
		if c == CaseReplayOther {
			j = (i + 1 + r.IntN(max(1, len(s.vehicles)-1))) % len(s.vehicles)
			if j == i || s.vehicles[j].Profile == Fraudulent {
				return false
			}
		}
		srcDays, srcTruths := days, truths
		if j != i {
			srcDays, srcTruths = other(j)
		}
		lo := 1
		if j != i {
			lo = 0
		}
		sd := -1
		for k := lo + r.IntN(7); k >= lo; k-- { // the latest eligible of a few days back
			if d-k >= 0 && srcTruths[d-k].DistanceKm >= FraudMinKm && uploadedAsDriven(s.CaseOf(j, d-k)) {
				sd = d - k
				break
			}
		}
		if sd < 0 {
			return false
		}
		shift := s.w.dayStart[d] - s.w.dayStart[sd]
		dOdo := ev[0].OdometerKm - srcDays[sd][0].OdometerKm
		veh := s.vehicles[i]
		ev = slices.Clone(srcDays[sd])
		for k := range ev {
			ev[k].TimeMs += shift
			ev[k].DeviceID, ev[k].VehicleID, ev[k].TZ = veh.DeviceID, veh.VehicleID, veh.TZ
			ev[k].OdometerKm = round(ev[k].OdometerKm+dOdo, 1000)
		}
		// a shifted time falling outside the day (a trip across midnight)
		ev = slices.DeleteFunc(ev, func(e telemetry.Event) bool {
			return e.TimeMs < s.w.dayStart[d] || e.TimeMs >= s.w.dayStart[d+1]
		})
		renumber(ev, dev, day[0].Seq)
		cd.Other, cd.SourceDay = j, sd
	default:
		return false
	}
	cd.Events = ev
	return true
}

// uploadedAsDriven reports whether a day of case c reached the platform
// with the positions the car drove. A replay's source day must have: a
// copy of a drive that was never uploaded (its day sent as a replay, a
// clone's mix, a synthetic or teleported trace) copies nothing the
// platform holds, so it is no replay any trace check could find.
func uploadedAsDriven(c Case) bool {
	switch c {
	case CaseTeleport, CaseClone, CaseSynthetic, CaseReplayOwn, CaseReplayOther:
		return false
	}
	return true
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// movingIdx lists the indexes of events with the engine on and speed >= 5 km/h.
func movingIdx(ev []telemetry.Event) []int {
	var out []int
	for j := range ev {
		if ev[j].EngineOn && ev[j].SpeedKmh >= 5 {
			out = append(out, j)
		}
	}
	return out
}

// renumber gives ev the device dev and consecutive sequence numbers from
// first, with event ids "<device>-<seq>" as the simulator's.
func renumber(ev []telemetry.Event, dev string, first uint64) {
	for j := range ev {
		ev[j].DeviceID = dev
		ev[j].Seq = first + uint64(j)
		ev[j].EventID = dev + "-" + strconv.FormatUint(ev[j].Seq, 10)
	}
}

// synthetic generates a noiseless trace from a real day: every time on its
// whole second, and within each run of engine-on events the speed piecewise
// linear through the real speed every 20 samples, positions integrated
// from it along the real track's directions, the odometer from the same
// distance (later readings keep the difference), HDOP 1, accelerations the
// speed's slope, no lateral acceleration.
func synthetic(ev []telemetry.Event, dayStart int64) []telemetry.Event {
	for j := range ev {
		ev[j].TimeMs -= (ev[j].TimeMs - dayStart) % 1000
		ev[j].HDOP = 1
	}
	odoShift := 0.0
	for a := 0; a < len(ev); {
		if !ev[a].EngineOn {
			ev[a].OdometerKm = round(ev[a].OdometerKm+odoShift, 1000)
			ev[a].AccelLonMS2, ev[a].AccelLatMS2 = 0, 0
			a++
			continue
		}
		b := a
		for b+1 < len(ev) && ev[b+1].EngineOn && ev[b+1].TimeMs-ev[b].TimeMs <= 2000 {
			b++
		}
		// real positions in metres around the first fix
		lat0, lon0 := ev[a].Lat, ev[a].Lon
		cos := math.Cos(lat0 * math.Pi / 180)
		toXY := func(e *telemetry.Event) xy {
			return xy{(e.Lon - lon0) * mPerDeg * cos, (e.Lat - lat0) * mPerDeg}
		}
		realPos := make([]xy, b-a+1)
		speeds := make([]float64, b-a+1)
		for k := range realPos {
			realPos[k] = toXY(&ev[a+k])
			speeds[k] = ev[a+k].SpeedKmh
		}
		v := make([]float64, len(speeds))
		for k := range v {
			k0 := k - k%20
			k1 := min(k0+20, len(v)-1)
			if k1 == k0 {
				v[k] = speeds[k0]
			} else {
				v[k] = speeds[k0] + float64(k-k0)/float64(k1-k0)*(speeds[k1]-speeds[k0])
			}
		}
		pos := realPos[0]
		dir := xy{0, 1}
		odo := ev[a].OdometerKm + odoShift
		realLast := ev[b].OdometerKm
		for k := a; k <= b; k++ {
			e := &ev[k]
			if k > a {
				dt := float64(e.TimeMs-ev[k-1].TimeMs) / 1000
				if step := realPos[k-a].sub(realPos[k-a-1]); step.norm() > 0.5 {
					dir = step.scale(1 / step.norm())
				}
				ds := (v[k-a-1] + v[k-a]) / 2 / 3.6 * dt
				pos = pos.add(dir.scale(ds))
				odo += ds / 1000
				e.AccelLonMS2 = round((v[k-a]-v[k-a-1])/3.6/dt, 100)
			}
			e.SpeedKmh = round(v[k-a], 100)
			e.AccelLatMS2 = 0
			e.Lat = lat0 + pos.y/mPerDeg
			e.Lon = lon0 + pos.x/(mPerDeg*cos)
			e.HeadingDeg = roundHeading(headingOf(dir))
			e.OdometerKm = round(odo, 1000)
		}
		odoShift = odo - realLast
		a = b + 1
	}
	return ev
}
