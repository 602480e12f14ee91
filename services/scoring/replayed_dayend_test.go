package scoring

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minecart/minecart/services/scoring/scoringtest"
	"github.com/minecart/minecart/services/telemetry"
)

// TestWindowsReplayDayEnd: the victim's box goes silent on its last drive
// of day 0 (8 km unobserved, as in three replay-other days of the month
// run) and then reports its parked position every 30 min; on day 1 it
// drives on from there, and "zcopy" re-sends that drive at the same times.
// The anchor of the victim's day-1 first trip is day 0's last fix with a
// position (near), not its last fingerprinted trip's end (8 km away), so
// the copy (away from its own day 0) is flagged and the victim is not;
// the same after a restart between the two days, where the anchor comes
// back from its "#end/victim" record. A changelog without the end records
// (as written before them) restores the fingerprints' ends only: both
// trips start away and the pair gets no verdict (docs/scoring.md, "Replay
// detection", Origin).
func TestWindowsReplayDayEnd(t *testing.T) {
	r := DefaultRules()
	vic := newTrip("victim", morning(), 1)
	traffic(vic, 1)
	vic.Coast(6*time.Minute, 80) // the box is silent on the way home: 8 km
	for range 8 {                // parked: a fix every 30 min
		vic.Drive(1, 0).Stop(30 * time.Minute)
	}
	n0 := len(vic.Evs)
	vic.Stop(time.Duration(morning().AddDate(0, 0, 1).UnixMilli()-vic.T) * time.Millisecond)
	traffic(vic, 2)
	cop := newTrip("zcopy", morning(), 3)
	cop.Lat += 0.1 // its own day 0, 11 km further north
	traffic(cop, 3)
	copied := slices.Clone(vic.Evs[n0:])
	for i := range copied {
		copied[i].VehicleID, copied[i].DeviceID = "zcopy", "dev-zcopy"
		copied[i].EventID = "dev-zcopy-c" + copied[i].EventID
	}
	day0 := slices.Concat(vic.Evs[:n0], cop.Evs)
	day1 := slices.Concat(vic.Evs[n0:], copied, []telemetry.Event{*scoringtest.Event("closer", morning().AddDate(0, 0, 3))})

	run := func(restart string) map[string]Result {
		newW := func() *Windows { return replayWindows(t, &r, 30) }
		log := &closedLog{byID: map[string]Result{}}
		changelog := memChangelog{}
		closed := func(c Closed) { // the stage writes a closed day's tombstone
			log.add(c)
			delete(changelog, c.ID)
		}
		w := newW()
		feed := func(evs []telemetry.Event) {
			for i := range evs {
				if _, err := w.Add(&evs[i], closed); err != nil {
					t.Fatal(err)
				}
			}
			w.Flush(changelog.put)
		}
		feed(day0)
		feed([]telemetry.Event{*scoringtest.Event("closer", morning().AddDate(0, 0, 1).Add(-4*time.Hour))}) // 04:00: closes day 0
		if _, ok := log.byID["victim/2026-11-24"]; !ok {
			t.Fatal("day 0 not closed")
		}
		if restart != "" {
			ends := 0
			w = newW()
			for _, k := range slices.Sorted(maps.Keys(changelog)) {
				if strings.HasPrefix(k, endKeyPrefix) {
					ends++
					if restart == "without ends" {
						continue
					}
				}
				if err := w.Restore(k, changelog[k]); err != nil {
					t.Fatalf("restore %s: %v", k, err)
				}
			}
			if ends != 2 { // victim, zcopy
				t.Errorf("%d end records on the changelog, want 2", ends)
			}
		}
		feed(day1)
		return log.byID
	}
	for _, c := range []struct {
		restart string
		caught  bool
	}{{"", true}, {"from the changelog", true}, {"without ends", false}} {
		got := run(c.restart)
		want := map[string]bool{"victim/2026-11-24": false, "zcopy/2026-11-24": false, "victim/2026-11-25": false, "zcopy/2026-11-25": c.caught}
		for id, replayed := range want {
			res, ok := got[id]
			if !ok {
				t.Fatalf("%q: %s: no result", c.restart, id)
			}
			if slices.Contains(res.Flags, FlagReplay) != replayed {
				t.Errorf("restart %q, %s: flags %v %v, want replayed %v", c.restart, id, res.Flags, res.Reasons, replayed)
			}
		}
	}
}
