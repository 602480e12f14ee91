package scoring

import (
	"slices"
	"testing"
	"time"

	"github.com/minecart/minecart/services/scoring/scoringtest"
	"github.com/minecart/minecart/services/telemetry"
)

// TestWindowsReplaySameTime: another vehicle re-sends a victim's drive of
// the same day at the very same times (a same-day copy). The copy's trip
// starts 11 km from where its own vehicle's previous day ended, the
// victim's where its own ended: the task's index flags the copy when it is
// drained after the victim, and never the victim, in either drain order
// (docs/scoring.md, "Matching", simultaneous trips).
func TestWindowsReplaySameTime(t *testing.T) {
	r := DefaultRules()
	for _, copier := range []string{"acopy", "zcopy"} { // drained before / after "victim"
		w := replayWindows(t, &r, 30)
		log := &closedLog{byID: map[string]Result{}}
		feed := func(evs []telemetry.Event) {
			for i := range evs {
				if _, err := w.Add(&evs[i], log.add); err != nil {
					t.Fatal(err)
				}
			}
		}
		// the victim drives on day 0, parks, and drives on from there on day 1
		vic := newTrip("victim", morning(), 1)
		traffic(vic, 1)
		n0 := len(vic.Evs)
		vic.Stop(time.Duration(morning().AddDate(0, 0, 1).UnixMilli()-vic.T) * time.Millisecond)
		traffic(vic, 2)
		// the copier drives its own day 0, 11 km further north
		cop := newTrip(copier, morning(), 3)
		cop.Lat += 0.1
		traffic(cop, 3)
		copy := slices.Clone(vic.Evs[n0:])
		for i := range copy {
			copy[i].VehicleID, copy[i].DeviceID = copier, "dev-"+copier
			copy[i].EventID = "dev-" + copier + "-c" + copy[i].EventID
		}
		feed(vic.Evs[:n0])
		feed(cop.Evs)
		feed(vic.Evs[n0:])
		feed(copy)
		feed([]telemetry.Event{*scoringtest.Event("closer", morning().AddDate(0, 0, 3))}) // closes days 0 and 1
		want := map[string]bool{"victim/2026-11-24": false, copier + "/2026-11-24": false, "victim/2026-11-25": false,
			copier + "/2026-11-25": copier == "zcopy"} // "acopy" is drained first: the global check's to catch
		for id, replayed := range want {
			res, ok := log.byID[id]
			if !ok {
				t.Fatalf("%s: no result", id)
			}
			if slices.Contains(res.Flags, FlagReplay) != replayed {
				t.Errorf("copier %s, %s: flags %v %v, want replayed %v", copier, id, res.Flags, res.Reasons, replayed)
			}
		}
	}
}
