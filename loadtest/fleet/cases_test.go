package fleet

import (
	"encoding/hex"
	"math"
	"slices"
	"testing"

	"github.com/minecart/minecart/services/telemetry"
)

// TestCasesOffChangeNothing: without Cases the simulation is the one it was
// (the stream hash below was computed before cases existed), and
// VehicleDays is Vehicle cut at midnights, every day CaseNone.
func TestCasesOffChangeNothing(t *testing.T) {
	s := mustNew(t, Config{Seed: 1, Vehicles: 20, Days: 1, Start: monday})
	whole, _, n := streamHash(t, s)
	const want = "44b6395a784d04a64ed42e1ccf5e5489148ae0052ccb570235af214029180748"
	if got := hex.EncodeToString(whole[:]); got != want {
		t.Errorf("stream hash of seed 1, 20 vehicles, 1 day: %s (%d events), want %s", got, n, want)
	}
	s = mustNew(t, Config{Seed: 3, Vehicles: 6, Days: 3, Start: monday})
	for i := range s.Vehicles() {
		evs, truths := s.Vehicle(i)
		days := s.VehicleDays(i)
		var cat []telemetry.Event
		for d, cd := range days {
			if cd.Case != CaseNone || cd.Late != nil || !slices.Equal(cd.Truth.FaultCodes, truths[d].FaultCodes) {
				t.Fatalf("vehicle %d day %d: case %v without Cases", i, d, cd.Case)
			}
			cat = append(cat, cd.Events...)
		}
		if len(cat) != len(evs) {
			t.Fatalf("vehicle %d: %d events in days, %d from Vehicle", i, len(cat), len(evs))
		}
		for k := range cat {
			if !eventsEqual(&cat[k], &evs[k]) {
				t.Fatalf("vehicle %d event %d differs", i, k)
			}
		}
	}
}

func eventsEqual(a, b *telemetry.Event) bool {
	return a.EventID == b.EventID && a.DeviceID == b.DeviceID && a.Seq == b.Seq && a.TimeMs == b.TimeMs &&
		a.Lat == b.Lat && a.Lon == b.Lon && a.SpeedKmh == b.SpeedKmh && a.OdometerKm == b.OdometerKm && a.HDOP == b.HDOP
}

// TestCasesDoWhatTheySay checks each case's transformation against the
// clean day it was made from.
func TestCasesDoWhatTheySay(t *testing.T) {
	var mix CaseMix
	for c := Case(1); c < NumCases; c++ {
		mix[c] = 0.9 / float64(NumCases-1)
	}
	s := mustNew(t, Config{Seed: 5, Vehicles: 40, Days: 4, Start: monday, Mix: Mix{Average: 1}, Cases: mix})
	seen := map[Case]int{}
	for i := range s.Vehicles() {
		for _, cd := range s.VehicleDays(i) {
			seen[cd.Case]++
			checkCase(t, s, &cd)
		}
	}
	for c := Case(0); c < NumCases; c++ {
		if seen[c] == 0 {
			t.Errorf("no day of case %v in the sample", c)
		}
	}
	t.Logf("days per case: %v", seen)
}

func checkCase(t *testing.T, s *Sim, cd *CaseDay) {
	t.Helper()
	cl, ev := cd.Clean, cd.Events
	where := func(f string, args ...any) {
		t.Helper()
		t.Errorf("%v day %s %s: "+f, append([]any{cd.Case, cd.Truth.VehicleID, cd.Truth.Date}, args...)...)
	}
	sorted := func(e []telemetry.Event) []telemetry.Event {
		e = slices.Clone(e)
		slices.SortStableFunc(e, func(a, b telemetry.Event) int { return cmpInt(a.TimeMs, b.TimeMs) })
		return e
	}
	lastOdo := func(e []telemetry.Event) float64 { return e[len(e)-1].OdometerKm }
	devs := map[string]bool{}
	for _, e := range ev {
		devs[e.DeviceID] = true
		if e.VehicleID != cd.Truth.VehicleID {
			where("event of vehicle %s", e.VehicleID)
		}
	}
	if cd.Case.Fraud() && cd.Truth.DistanceKm < FraudMinKm {
		where("fraud on a day of %.1f km", cd.Truth.DistanceKm)
	}
	if cd.Case != CaseLate && cd.Late != nil {
		where("late events")
	}
	switch cd.Case {
	case CaseNone:
		if len(ev) != len(cl) {
			where("events changed")
		}
	case CasePowerLoss:
		// one silence of at least 10 minutes that the clean day does not
		// have, the odometer counted through it
		k := 0
		for k < len(ev) && ev[k].TimeMs == cl[k].TimeMs {
			k++
		}
		t0, n := cl[k].TimeMs, 0
		for j := k; j < len(cl) && cl[j].TimeMs < t0+600_000; j++ {
			n++
		}
		if k == len(ev) || !cl[k].EngineOn || cl[k].SpeedKmh < 5 || len(ev) != len(cl)-n || ev[k].TimeMs < t0+600_000 ||
			lastOdo(ev) != lastOdo(cl) {
			where("not a 10-minute power loss while driving (%d of %d events)", len(ev), len(cl))
		}
	case CaseBoxSwap:
		if len(devs) != 2 || ev[0].DeviceID == ev[len(ev)-1].DeviceID || len(ev) != len(cl) {
			where("devices %v", devs)
		}
		for k := 1; k < len(ev); k++ {
			if ev[k].DeviceID != ev[k-1].DeviceID && (ev[k].Seq != 1 || ev[k-1].EngineOn) {
				where("the new box starts at seq %d, the old one's last event engine on %v", ev[k].Seq, ev[k-1].EngineOn)
			}
		}
	case CaseRepeat20Hz:
		fixes := map[[2]float64]bool{}
		for _, e := range cl {
			fixes[[2]float64{e.Lat, e.Lon}] = true
		}
		for _, e := range ev {
			if !fixes[[2]float64{e.Lat, e.Lon}] {
				where("a position the 1 Hz fixes do not have")
				break
			}
		}
		if len(ev) < 5*len(cl) {
			where("%d events for %d at 1 Hz", len(ev), len(cl))
		}
	case CaseTunnel:
		n := 0
		for k := range ev {
			if ev[k].HDOP == TunnelHDOP {
				n++
				if ev[k].OdometerKm != cl[k].OdometerKm || ev[k].SpeedKmh != cl[k].SpeedKmh {
					where("odometer or speed changed in the tunnel")
				}
			}
		}
		if n < 60 || n > 301 {
			where("%d events without a fix", n)
		}
	case CaseOutOfOrder:
		if slices.IsSortedFunc(ev, func(a, b telemetry.Event) int { return cmpInt(a.TimeMs, b.TimeMs) }) {
			where("arrives in order")
		}
		if got := sorted(ev); len(got) != len(cl) || !slices.EqualFunc(got, cl, func(a, b telemetry.Event) bool { return eventsEqual(&a, &b) }) {
			where("not the clean day's events")
		}
	case CaseLate:
		all := append(slices.Clone(ev), cd.Late...)
		if len(cd.Late) == 0 || len(all) != len(cl) || ev[len(ev)-1].TimeMs >= cd.Late[0].TimeMs {
			where("late split %d + %d of %d", len(ev), len(cd.Late), len(cl))
		}
	case CaseRollback:
		back := false
		for k := 1; k < len(ev); k++ {
			if ev[k-1].OdometerKm-ev[k].OdometerKm >= 100 {
				back = true
			}
		}
		if !back {
			where("no rollback")
		}
	case CaseInflated:
		if d, c := lastOdo(ev)-ev[0].OdometerKm, lastOdo(cl)-cl[0].OdometerKm; d < 1.39*c {
			where("odometer %.1f km for %.1f", d, c)
		}
	case CaseTeleport:
		jumps := 0
		for k := 1; k < len(ev); k++ {
			if ev[k].TimeMs-ev[k-1].TimeMs < 2000 && haversineKm(ev[k-1].Lat, ev[k-1].Lon, ev[k].Lat, ev[k].Lon) > 2.5 {
				jumps++
			}
		}
		if jumps < 2 {
			where("%d jumps", jumps)
		}
	case CaseClone:
		if len(devs) != 1 || len(ev) <= len(cl) || cd.Other < 0 {
			where("%d devices, %d events for %d", len(devs), len(ev), len(cl))
		}
	case CaseSynthetic:
		start := s.w.dayStart[cd.Truth.Day]
		for _, e := range ev {
			if (e.TimeMs-start)%1000 != 0 || e.HDOP != 1 || e.AccelLatMS2 != 0 {
				where("a noisy event")
				break
			}
		}
	case CaseReplayOwn, CaseReplayOther:
		if own := cd.Other == s.vehicleIndex(cd.Truth.VehicleID); own != (cd.Case == CaseReplayOwn) {
			where("copies vehicle %d", cd.Other)
		}
		if cd.Case == CaseReplayOwn && cd.SourceDay >= cd.Truth.Day {
			where("replays day %d", cd.SourceDay)
		}
		if len(devs) != 1 || math.Abs(ev[0].OdometerKm-cl[0].OdometerKm) > 1 {
			where("odometer %.3f does not continue %.3f", ev[0].OdometerKm, cl[0].OdometerKm)
		}
		src := s.splitDaysOf(cd.Other)[cd.SourceDay]
		if len(src) < len(ev) || src[len(src)-len(ev)].Lat != ev[0].Lat && src[0].Lat != ev[0].Lat {
			where("not the source day's track")
		}
	}
}

func (s *Sim) vehicleIndex(id string) int {
	return slices.IndexFunc(s.vehicles, func(v Vehicle) bool { return v.VehicleID == id })
}

func (s *Sim) splitDaysOf(i int) [][]telemetry.Event {
	evs, _ := s.Vehicle(i)
	return s.splitDays(evs)
}
