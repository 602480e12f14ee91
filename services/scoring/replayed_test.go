package scoring

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minecart/minecart/services/scoring/replay"
	"github.com/minecart/minecart/services/telemetry"
)

// drive is an honest-looking drive: 30-60 min east in stretches of varying
// speed (traffic), from the given day at 08:00 Shanghai.
func drive(vehicle string, day int, seed uint64) []telemetry.Event {
	r := rand.New(rand.NewPCG(seed, 11))
	tr := newTrip(vehicle, morning().AddDate(0, 0, day), seed)
	for range 30 + r.IntN(30) {
		tr.Drive(60, 20+80*r.Float64())
	}
	return tr.Evs
}

// replayOf re-sends evs as vehicle's, shifted by days and hours, with +-4 m
// of GPS noise and every other sample (2 s instead of 1 s).
func replayOf(evs []telemetry.Event, vehicle string, days, hours int) []telemetry.Event {
	r := rand.New(rand.NewPCG(uint64(days), 12))
	var out []telemetry.Event
	for i, e := range evs {
		if i%2 == 1 {
			continue
		}
		e.VehicleID, e.DeviceID = vehicle, "dev-"+vehicle
		e.EventID = e.EventID + "-r"
		e.TimeMs += int64(days)*86400_000 + int64(hours)*3600_000
		e.Lat += (r.Float64()*2 - 1) * 4 / 111320
		e.Lon += (r.Float64()*2 - 1) * 4 / 95000
		out = append(out, e)
	}
	return out
}

type closedLog struct{ byID map[string]Result }

func (c *closedLog) add(x Closed) { c.byID[x.ID] = x.Result }

// memChangelog is a compacted changelog in memory: the last value of each
// key, a nil value deleting it.
type memChangelog map[string][]byte

func (c memChangelog) put(k string, v []byte) {
	if v == nil {
		delete(c, k)
	} else {
		c[k] = v
	}
}

// replayWindows is a task's Windows in Asia/Shanghai with a 2 h grace and
// replay detection on (fingerprints kept retentionDays, 1000 per cell).
func replayWindows(tb testing.TB, r *Rules, retentionDays int) *Windows {
	tb.Helper()
	w, err := NewWindows(r, "Asia/Shanghai", 2*time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	if err := w.EnableReplay(replay.DefaultConfig(), retentionDays, 1000); err != nil {
		tb.Fatal(err)
	}
	return w
}

// traffic drives tr 40 minutes in town: 40 one-minute legs at 20-100 km/h
// drawn from seed.
func traffic(tr *trip, seed uint64) {
	rr := rand.New(rand.NewPCG(seed, 13))
	for range 40 {
		tr.Drive(60, 20+80*rr.Float64())
	}
}

// TestWindowsReplay: a vehicle that re-sends another vehicle's drive of an
// earlier day, or its own, shifted and resampled with GPS noise, has that
// day flagged replayed_trace and paid 0; honest drives (the same vehicles
// on other days, the original itself) are not; the fingerprints survive a
// restart through the changelog and expire after the retention.
func TestWindowsReplay(t *testing.T) {
	r := DefaultRules()
	newW := func() *Windows { return replayWindows(t, &r, 4) }
	log := &closedLog{byID: map[string]Result{}}
	changelog := memChangelog{}
	feed := func(w *Windows, evs []telemetry.Event) {
		for i := range evs {
			if _, err := w.Add(&evs[i], log.add); err != nil {
				t.Fatal(err)
			}
		}
		w.Flush(changelog.put)
	}
	original := drive("alice", 0, 1)
	w := newW()
	feed(w, original)
	feed(w, drive("bob", 0, 2))
	feed(w, drive("alice", 1, 3))
	feed(w, replayOf(original, "bob", 1, 0))   // bob's day 1: alice's day 0
	feed(w, drive("alice", 2, 4))              // closes day 1 (stream time past its end + grace)
	feed(w, replayOf(original, "alice", 2, 3)) // alice's day 2 also has her day-0 drive again, at 11:00

	// Restart from the changelog: day 2 is still open, the index comes back.
	fps := 0
	for k := range changelog {
		if strings.HasPrefix(k, fpKeyPrefix) {
			fps++
		}
	}
	w2 := newW()
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range changelog {
			if !yield(k) {
				return
			}
		}
	}) {
		if err := w2.Restore(k, changelog[k]); err != nil {
			t.Fatalf("restore %s: %v", k, err)
		}
	}
	if w2.ReplayIndexLen() != fps || fps < 3 {
		t.Fatalf("restored %d fingerprints, changelog holds %d", w2.ReplayIndexLen(), fps)
	}
	feed(w2, replayOf(drive("bob", 0, 2), "carol", 3, 0)) // bob's day 0 replayed by carol on day 3 (retention 4: still held)
	feed(w2, drive("erin", 6, 5))                         // closes days 2 and 3
	feed(w2, drive("dave", 9, 6))                         // closes day 6 (2026-11-30): days before 11-27 expire

	want := map[string]bool{
		"alice/2026-11-24": false, "bob/2026-11-24": false, "alice/2026-11-25": false,
		"bob/2026-11-25": true, "alice/2026-11-26": true, "carol/2026-11-27": true,
	}
	for id, replayed := range want {
		res, ok := log.byID[id]
		if !ok {
			t.Fatalf("no result for %s (have %v)", id, slices.Collect(func(yield func(string) bool) {
				for k := range log.byID {
					yield(k)
				}
			}))
		}
		if slices.Contains(res.Flags, FlagReplay) != replayed {
			t.Errorf("%s: flags %v %v, replayed %v", id, res.Flags, res.Reasons, replayed)
		}
		if replayed && res.Points != 0 || !replayed && res.Points == 0 {
			t.Errorf("%s: %d points", id, res.Points)
		}
		if res.DistanceKm < 10 {
			t.Errorf("%s: %.1f km: the driving stays in the record", id, res.DistanceKm)
		}
	}
	kept := 0
	for k := range changelog {
		if parts := strings.Split(k, "/"); parts[0]+"/" == fpKeyPrefix {
			kept++
			if parts[2] < "2026-11-27" {
				t.Errorf("fingerprint %s not expired (retention 4 days, last closed day 2026-11-30)", k)
			}
		}
	}
	if kept != w2.ReplayIndexLen() || kept < 2 {
		t.Errorf("%d fingerprints on the changelog, %d in the index", kept, w2.ReplayIndexLen())
	}
}
