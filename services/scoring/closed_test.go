package scoring

import (
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/minecart/minecart/services/scoring/scoringtest"
	"github.com/minecart/minecart/services/telemetry"
)

// lateDay is one vehicle-day of two upload batches (a morning and an
// evening drive) and the result of the whole day scored in order.
func lateDay(t *testing.T, vehicle string) (first, second []telemetry.Event, want Result, day time.Time) {
	t.Helper()
	day = time.Date(2026, 12, 1, 0, 0, 0, 0, shanghai)
	tr := scoringtest.NewTrip(vehicle, day.Add(8*time.Hour), 3).Drive(1200, 60).Stop(time.Minute)
	n := len(tr.Evs)
	tr.T = day.Add(23 * time.Hour).UnixMilli() // a drive up to midnight; the box goes offline
	tr.Drive(1500, 50)
	evs := tr.Evs
	first, second = evs[:n], evs[n:]
	r := DefaultRules()
	d := NewDay(day.UnixMilli(), day.Add(24*time.Hour).UnixMilli(), 5*3600*1000)
	var buf []byte
	for i := range evs {
		buf = d.Add(&r, &evs[i], buf)
	}
	return first, second, d.Result(&r), day
}

type revs struct{ got []*Revision }

func (r *revs) emit(v *Revision) {
	c := *v
	res := v.Result
	c.Result = res
	r.got = append(r.got, &c)
}

// TestClosedDaysLateUploadSamePoints: the second batch of a day arrives
// after the grace (the box was offline across midnight); the revision
// equals the day scored with every event in order.
func TestClosedDaysLateUploadSamePoints(t *testing.T) {
	for _, frozen := range []bool{false, true} {
		t.Run(fmt.Sprintf("frozen=%v", frozen), func(t *testing.T) {
			first, second, want, day := lateDay(t, "v1")
			w := newTestWindows(t)
			w.SetLogClock(true)
			r := DefaultRules()
			cd := NewClosedDays(&r, 7*24*time.Hour)
			var base []Result
			drain := func() {
				w.Drain(-1, func(c Closed) { base = append(base, c.Result); cd.Keep(&c) })
			}
			for i := range first {
				if l, err := w.Add(&first[i], nil); err != nil || l != nil {
					t.Fatal(l, err)
				}
			}
			w.Advance(day.Add(26*time.Hour+time.Second).UnixMilli(), nil) // log time passes midnight + grace
			if !frozen {
				drain()
			}
			for i := range second {
				l, err := w.Add(&second[i], nil)
				if err != nil || l == nil {
					t.Fatalf("event %d not late: %v", i, err)
				}
				if !cd.Add(&second[i], l, w.Frozen(second[i].VehicleID, l.WindowStart)) {
					t.Fatal("late event refused")
				}
			}
			drain()
			if len(base) != 1 || base[0].Points >= want.Points || base[0].EventsHash == want.EventsHash {
				t.Fatalf("base %+v, want fewer points than %d", base, want.Points)
			}
			var rv revs
			cd.Revise(w.ClosedThrough(), rv.emit)
			cd.Revise(w.ClosedThrough(), rv.emit) // nothing new: nothing emitted
			if len(rv.got) != 1 {
				t.Fatalf("%d revisions, want 1", len(rv.got))
			}
			g := rv.got[0]
			if g.Revision != 1 || g.LateAdded != int64(len(second)) || g.ID != "v1/2026-12-01" || g.ReleaseMs <= w.ClosedThrough() || g.ReleaseMs%metaStep != 0 {
				t.Errorf("revision %d late %d id %s release %d", g.Revision, g.LateAdded, g.ID, g.ReleaseMs)
			}
			if g.Result.Points != want.Points || g.Result.EventsHash != want.EventsHash || g.Result.DistanceKm != want.DistanceKm {
				t.Errorf("revised %d points %.3f km, in order %d %.3f km", g.Result.Points, g.Result.DistanceKm, want.Points, want.DistanceKm)
			}
			t.Logf("base %d points, revised %d (in order %d); %d days kept, %d bytes", base[0].Points, g.Result.Points, want.Points, cd.Len(), cd.Bytes())
		})
	}
}

// TestClosedDaysRevisionsRestoreExpire: two late events between marks make
// one revision, a later one a second; a restore from the flushed records
// continues the numbering; a day with no event before its close starts at
// revision 0; events past the lateness are refused and the day is
// forgotten (a tombstone).
func TestClosedDaysRevisionsRestoreExpire(t *testing.T) {
	r := DefaultRules()
	cd := NewClosedDays(&r, 7*24*time.Hour)
	day := time.Date(2026, 12, 1, 0, 0, 0, 0, shanghai)
	start, end := day.UnixMilli(), day.Add(24*time.Hour).UnixMilli()
	d := NewDay(start, end, 5*3600*1000)
	tr := scoringtest.NewTrip("v1", day.Add(9*time.Hour), 5).Drive(600, 40)
	var buf []byte
	for i := range tr.Evs[:300] {
		buf = d.Add(&r, &tr.Evs[i], buf)
	}
	cd.Keep(&Closed{ID: "v1/2026-12-01", Vehicle: "v1", Date: "2026-12-01", TZ: "Asia/Shanghai", Day: &d})
	closed := end + 3*3600*1000
	late := &Late{WindowEnd: end, ClosedThrough: closed, Date: "2026-12-01", WindowStart: start, NightEnd: 5 * 3600 * 1000, TZ: "Asia/Shanghai"}
	for i := 300; i < 400; i++ {
		cd.Add(&tr.Evs[i], late, nil)
	}
	var rv revs
	cd.Revise(closed, rv.emit)
	for i := 400; i < 600; i++ {
		cd.Add(&tr.Evs[i], late, nil)
	}
	// A vehicle whose whole day arrives late.
	tr2 := scoringtest.NewTrip("v2", day.Add(10*time.Hour), 6).Drive(100, 40)
	for i := range tr2.Evs {
		cd.Add(&tr2.Evs[i], late, nil)
	}
	log := map[string][]byte{}
	put := func(k string, v []byte) { log[k] = v }
	cd.Flush(put)
	// Restart: a new ClosedDays from the changelog revises the same.
	cd2 := NewClosedDays(&r, 7*24*time.Hour)
	for k, v := range maps.All(log) {
		if err := cd2.Restore(k, v); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []*ClosedDays{cd, cd2} {
		n := 0
		for _, d := range c.days {
			n += len(d.state)
		}
		if c.Bytes() != n || n == 0 {
			t.Errorf("Bytes %d, kept states %d", c.Bytes(), n)
		}
	}
	var rv2 revs
	cd.Revise(closed, rv.emit)
	cd2.Revise(closed, rv2.emit)
	if len(rv.got) != 3 || len(rv2.got) != 2 {
		t.Fatalf("%d and %d revisions, want 3 and 2", len(rv.got), len(rv2.got))
	}
	for i, g := range rv.got[1:] {
		h := rv2.got[i]
		if g.ID != h.ID || g.Revision != h.Revision || g.Result.Points != h.Result.Points || g.Result.EventsHash != h.Result.EventsHash {
			t.Errorf("restored revision %s/%d %d, live %s/%d %d", h.ID, h.Revision, h.Result.Points, g.ID, g.Revision, g.Result.Points)
		}
	}
	eq(t, "v1 revisions", fmt.Sprint(rv.got[0].Revision, rv.got[1].Revision, rv.got[0].LateAdded, rv.got[1].LateAdded), "1 2 100 300")
	eq(t, "v2 revision", fmt.Sprint(rv.got[2].ID, " ", rv.got[2].Revision, " ", rv.got[2].Result.Events), "v2/2026-12-01 0 100")
	full := NewDay(start, end, 5*3600*1000)
	for i := range tr.Evs {
		buf = full.Add(&r, &tr.Evs[i], buf)
	}
	if want := full.Result(&r); rv.got[1].Result.Points != want.Points || rv.got[1].Result.EventsHash != want.EventsHash {
		t.Errorf("revision 2: %d points, in order %d", rv.got[1].Result.Points, want.Points)
	}
	// Past the lateness: refused, and the days expire with tombstones.
	later := *late
	later.ClosedThrough = end + 7*24*3600*1000
	if cd.Add(&tr.Evs[0], &later, nil) {
		t.Error("an event 7 days after its day's end was taken")
	}
	cd.Flush(put)
	cd.Expire(later.ClosedThrough)
	clear(log)
	cd.Flush(put)
	if cd.Len() != 0 || cd.Bytes() != 0 || len(log) != 2 || log[ClosedKeyPrefix+"v1/2026-12-01"] != nil {
		t.Errorf("after expiry %d days kept, flushed %v", cd.Len(), log)
	}
	for _, bad := range [][]byte{{}, {9}, {closedVersion}, {closedVersion, 1, 2}, append([]byte{closedVersion, 1, 0, 0, 0, 3, 'U', 'T', 'C'}, 1, 2, 3)} {
		if err := cd2.Restore(ClosedKeyPrefix+"v3/2026-12-01", bad); err == nil {
			t.Errorf("restore of %x accepted", bad)
		}
	}
}

// TestClosedDaysKeepReplayFlag: a day flagged replayed_trace at its close
// keeps the flag, its reason and its factor in every revision, across a
// restore: a late event cannot wash a replayed day clean.
func TestClosedDaysKeepReplayFlag(t *testing.T) {
	r := DefaultRules()
	first, second, _, day := lateDay(t, "v9")
	end := day.Add(24 * time.Hour).UnixMilli()
	d := NewDay(day.UnixMilli(), end, 5*3600*1000)
	var buf []byte
	for i := range first {
		buf = d.Add(&r, &first[i], buf)
	}
	res := d.Result(&r)
	res.Flags, res.Reasons = append(res.Flags, FlagReplay), append(res.Reasons, "trip 1 repeats v1/2026-11-30 trip 1 (97% of its shingles)")
	cd := NewClosedDays(&r, 7*24*time.Hour)
	cd.Keep(&Closed{ID: "v9/2026-12-01", Vehicle: "v9", Date: "2026-12-01", TZ: "Asia/Shanghai", Day: &d, Result: res})
	late := &Late{WindowEnd: end, ClosedThrough: end + 3*3600*1000, Date: "2026-12-01", WindowStart: day.UnixMilli(), NightEnd: 5 * 3600 * 1000, TZ: "Asia/Shanghai"}
	for i := range second {
		cd.Add(&second[i], late, nil)
	}
	log := map[string][]byte{}
	cd.Flush(func(k string, v []byte) { log[k] = v })
	cd2 := NewClosedDays(&r, 7*24*time.Hour)
	for k, v := range log {
		if err := cd2.Restore(k, v); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []*ClosedDays{cd, cd2} {
		var rv revs
		c.Revise(late.ClosedThrough, rv.emit)
		if len(rv.got) != 1 {
			t.Fatalf("%d revisions", len(rv.got))
		}
		g := rv.got[0].Result
		if g.Points != 0 || len(g.Flags) == 0 || g.Flags[len(g.Flags)-1] != FlagReplay || g.Reasons[len(g.Reasons)-1] != res.Reasons[len(res.Reasons)-1] {
			t.Errorf("revision of a replayed day: %d points, flags %v", g.Points, g.Flags)
		}
	}
}
