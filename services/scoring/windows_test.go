package scoring

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/minecart/minecart/services/scoring/scoringtest"
	"github.com/minecart/minecart/services/telemetry"
)

// run feeds evs through w and collects closed days and late events.
type collector struct {
	closed []string // "id points hash"
	late   []string
	ids    []string
}

func (c *collector) onClose(cl Closed) {
	c.ids = append(c.ids, cl.ID)
	c.closed = append(c.closed, fmt.Sprintf("%s %d %.3f %x", cl.ID, cl.Result.Points, cl.Result.GPSKm, cl.Result.EventsHash[:6]))
}

func (c *collector) add(t *testing.T, w *Windows, ev *telemetry.Event) {
	t.Helper()
	late, err := w.Add(ev, c.onClose)
	if err != nil {
		t.Fatal(err)
	}
	if late != nil {
		c.late = append(c.late, fmt.Sprintf("%s %s", ev.EventID, late.Date))
	}
}

func newTestWindows(t *testing.T) *Windows {
	t.Helper()
	r := DefaultRules()
	w, err := NewWindows(&r, "Asia/Shanghai", 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

var ev = scoringtest.Event

func TestWindowsCloseByStreamTime(t *testing.T) {
	w := newTestWindows(t)
	var c collector
	day := time.Date(2026, 11, 24, 0, 0, 0, 0, shanghai)
	c.add(t, w, ev("a", day.Add(10*time.Hour)))
	c.add(t, w, ev("b", day.Add(23*time.Hour)))
	c.add(t, w, ev("a", day.Add(25*time.Hour))) // next day 01:00: day 24 still in grace
	eq(t, "open", w.Open(), 3)
	eq(t, "closed", len(c.closed), 0)
	c.add(t, w, ev("b", day.Add(24*time.Hour+30*time.Minute))) // behind stream time, within grace
	eq(t, "late", len(c.late), 0)

	c.add(t, w, ev("c", day.Add(26*time.Hour))) // stream time = end + grace: closes day 24
	if !slices.Equal(c.ids, []string{"a/2026-11-24", "b/2026-11-24"}) {
		t.Fatalf("closed %v", c.ids)
	}
	eq(t, "closed through", w.ClosedThrough(), day.Add(24*time.Hour).UnixMilli())
	eq(t, "open", w.Open(), 3) // a, b, c of the 25th

	c.add(t, w, ev("a", day.Add(23*time.Hour+59*time.Minute)))
	if !slices.Equal(c.late, []string{"a-235900 2026-11-24"}) {
		t.Fatalf("late %v", c.late)
	}
	eq(t, "open after late", w.Open(), 3)
}

func TestWindowsIdleAdvanceAndZones(t *testing.T) {
	w := newTestWindows(t)
	var c collector
	day := time.Date(2026, 11, 24, 0, 0, 0, 0, shanghai)
	e := ev("sh", day.Add(22*time.Hour))
	e.TZ = "" // default zone
	c.add(t, w, e)
	ld := ev("ld", time.Date(2026, 11, 24, 13, 0, 0, 0, time.UTC))
	ld.TZ = "Europe/London"
	c.add(t, w, ld)

	w.Advance(day.Add(25*time.Hour).UnixMilli(), c.onClose) // quiet night: the wall clock moves on
	eq(t, "closed", len(c.closed), 0)
	w.Advance(day.Add(26*time.Hour).UnixMilli(), c.onClose)
	if !slices.Equal(c.ids, []string{"sh/2026-11-24"}) {
		t.Fatalf("closed %v", c.ids)
	}
	w.Advance(time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC).UnixMilli(), c.onClose) // London midnight + 2 h
	if !slices.Equal(c.ids, []string{"sh/2026-11-24", "ld/2026-11-24"}) {
		t.Fatalf("closed %v", c.ids)
	}
	w.Advance(0, c.onClose) // never backwards
	eq(t, "closed through", w.ClosedThrough(), time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC).UnixMilli())

	bad := ev("x", day.Add(30*time.Hour))
	bad.TZ = "Mars/Olympus"
	if _, err := w.Add(bad, c.onClose); err == nil {
		t.Fatal("unknown zone accepted")
	}
	eq(t, "stream time unmoved by bad input", w.StreamTime(), time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC).UnixMilli())
}

// changelog is a compacted topic partition as the runtime would replay it.
type changelog map[string][]byte

func (cl changelog) put(key string, value []byte) { cl[key] = value }

// TestWindowsRestoreAnywhere kills the task after every few events (state
// is what the last Flush persisted plus tombstones of closed windows; the
// input resumes after the last flushed event) and checks the closed days
// are exactly those of an uninterrupted run.
func TestWindowsRestoreAnywhere(t *testing.T) {
	evs := mixedTraffic(6, 3)

	want := func() []string {
		w := newTestWindows(t)
		var c collector
		for i := range evs {
			c.add(t, w, &evs[i])
		}
		w.Advance(evs[len(evs)-1].TimeMs+3*24*3600*1000, c.onClose)
		return append(c.closed, c.late...)
	}()
	if len(want) < 6 {
		t.Fatalf("only %d closes", len(want))
	}

	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		cl := changelog{}
		var c collector
		w := newTestWindows(t)
		next := 0
		for next < len(evs) {
			batch := 1 + rng.IntN(400)
			end := min(next+batch, len(evs))
			var pending []string // tombstones emitted with the batch
			onClose := func(x Closed) { c.onClose(x); pending = append(pending, x.ID) }
			for i := next; i < end; i++ {
				late, err := w.Add(&evs[i], onClose)
				if err != nil {
					t.Fatal(err)
				}
				if late != nil {
					c.late = append(c.late, fmt.Sprintf("%s %s", evs[i].EventID, late.Date))
				}
			}
			if rng.IntN(4) == 0 { // killed before the transaction committed: redo the batch
				w = restore(t, cl)
				// outputs of the aborted transaction are discarded too
				c.closed = c.closed[:len(c.closed)-len(pending)]
				c.ids = c.ids[:len(c.ids)-len(pending)]
				c.late = dropLate(c.late, evs[next:end])
				continue
			}
			for _, id := range pending {
				cl[id] = nil
			}
			w.Flush(cl.put)
			next = end
			if rng.IntN(3) == 0 { // killed after commit: restore from the changelog
				w = restore(t, cl)
			}
		}
		w.Advance(evs[len(evs)-1].TimeMs+3*24*3600*1000, c.onClose)
		got := append(c.closed, c.late...)
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: restored run differs:\n got %v\nwant %v", round, got, want)
		}
	}
}

func dropLate(late []string, evs []telemetry.Event) []string {
	ids := map[string]bool{}
	for _, e := range evs {
		ids[e.EventID] = true
	}
	return slices.DeleteFunc(late, func(s string) bool {
		var id, date string
		fmt.Sscan(s, &id, &date)
		return ids[id]
	})
}

func restore(t *testing.T, cl changelog) *Windows {
	t.Helper()
	w := newTestWindows(t)
	for _, k := range slices.Sorted(maps.Keys(cl)) {
		if err := w.Restore(k, cl[k]); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// mixedTraffic is n vehicles driving over days days, interleaved in time
// order with some disorder, plus a few events that arrive after the grace.
func mixedTraffic(n, days int) []telemetry.Event {
	var all []telemetry.Event
	start := time.Date(2026, 11, 24, 20, 0, 0, 0, shanghai)
	for v := range n {
		tr := newTrip(fmt.Sprintf("v%02d", v), start.Add(time.Duration(v)*7*time.Minute), uint64(v+1))
		tr.PeriodMs = 30000
		for range days {
			tr.Drive(360, 50+float64(v)).Stop(20 * time.Hour)
		}
		all = append(all, tr.Evs...)
	}
	slices.SortStableFunc(all, func(a, b telemetry.Event) int { return int(a.TimeMs - b.TimeMs) })
	rng := rand.New(rand.NewPCG(9, 9))
	for i := 1; i < len(all); i++ { // local disorder
		if rng.IntN(10) == 0 {
			all[i], all[i-1] = all[i-1], all[i]
		}
	}
	// Late arrivals: re-sent old events with new ids, after their day closed.
	for k := range 3 {
		old := all[k*50]
		old.EventID = fmt.Sprintf("late-%d", k)
		all = append(all, old)
	}
	return all
}

func TestWindowsRestoreKeepsClosedThrough(t *testing.T) {
	w := newTestWindows(t)
	cl := changelog{}
	var c collector
	day := time.Date(2026, 11, 24, 0, 0, 0, 0, shanghai)
	c.add(t, w, ev("a", day.Add(10*time.Hour)))
	c.add(t, w, ev("a", day.Add(27*time.Hour)))
	for _, id := range c.ids {
		cl[id] = nil
	}
	w.Flush(cl.put)
	eq(t, "changelog keys", len(cl), 3) // tombstone of the 24th, window of the 25th, meta

	w2 := restore(t, cl)
	eq(t, "open", w2.Open(), 1)
	eq(t, "closed through", w2.ClosedThrough(), w.ClosedThrough())
	eq(t, "stream time", w2.StreamTime(), w.StreamTime())
	late, err := w2.Add(ev("a", day.Add(11*time.Hour)), c.onClose)
	if err != nil || late == nil {
		t.Fatalf("event of a closed day after restore: late %v, err %v", late, err)
	}
	// The restored window carries on where it was.
	c2 := collector{}
	w.Advance(day.Add(60*time.Hour).UnixMilli(), c.onClose)
	w2.Advance(day.Add(60*time.Hour).UnixMilli(), c2.onClose)
	eq(t, "closed day", c2.closed[0], c.closed[len(c.closed)-1])
}

func TestWindowsDeferredDrain(t *testing.T) {
	w := newTestWindows(t)
	cl := changelog{}
	day := time.Date(2026, 11, 24, 0, 0, 0, 0, shanghai)
	for _, v := range []string{"e", "b", "d", "a", "c"} {
		if _, err := w.Add(ev(v, day.Add(10*time.Hour)), nil); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush(cl.put)
	if _, err := w.Add(ev("z", day.Add(27*time.Hour)), nil); err != nil { // closes the 24th, emits nothing yet
		t.Fatal(err)
	}
	eq(t, "pending", w.Pending(), 5)
	end := day.Add(24 * time.Hour).UnixMilli()
	eq(t, "closed through", w.ClosedThrough(), end+time.Hour.Milliseconds())
	eq(t, "emitted through", w.EmittedThrough(), end-1)
	late, _ := w.Add(ev("a", day.Add(11*time.Hour)), nil) // frozen: late even before it is emitted
	if late == nil {
		t.Fatal("event for a closed, undrained day accepted")
	}

	var c collector
	eq(t, "drained", w.Drain(2, c.onClose), 2)
	for _, id := range c.ids {
		cl[id] = nil
	}
	w.Flush(cl.put)
	eq(t, "emitted through", w.EmittedThrough(), end-1)

	w2 := restore(t, cl) // crash: the 3 undrained days come back closed
	eq(t, "pending after restore", w2.Pending(), 3)
	eq(t, "drained", w2.Drain(-1, c.onClose), 3)
	if !slices.Equal(c.ids, []string{"a/2026-11-24", "b/2026-11-24", "c/2026-11-24", "d/2026-11-24", "e/2026-11-24"}) {
		t.Fatalf("drain order %v", c.ids)
	}
	eq(t, "emitted through", w2.EmittedThrough(), w2.ClosedThrough())
	eq(t, "open", w2.Open(), 1)
}

func TestWindowsDSTDay(t *testing.T) {
	w := newTestWindows(t)
	london, _ := time.LoadLocation("Europe/London")
	// 2026-03-29: clocks go forward at 01:00 UTC, the local day is 23 h long.
	e := ev("uk", time.Date(2026, 3, 29, 12, 0, 0, 0, london))
	e.TZ = "Europe/London"
	var got *Day
	if _, err := w.Add(e, nil); err != nil {
		t.Fatal(err)
	}
	w.Advance(time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC).UnixMilli(), func(c Closed) {
		d := *c.Day
		got = &d
		eq(t, "id", c.ID, "uk/2026-03-29")
	})
	if got == nil {
		t.Fatal("not closed")
	}
	eq(t, "start", got.Start, time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC).UnixMilli())
	eq(t, "length", got.End-got.Start, 23*time.Hour.Milliseconds())
	eq(t, "night end (05:00 BST = 04:00 UTC)", int64(got.NightEnd), 4*time.Hour.Milliseconds())
}

// TestWindowsRestoreOddWindow: a restored window whose end is not the one
// its zone gives the day now (a time zone rule changed between runs)
// keeps the changelog's bounds: it gets its own entry in the day table,
// next to the zone's window of the same start, and closes by its own end.
func TestWindowsRestoreOddWindow(t *testing.T) {
	r := DefaultRules()
	day := time.Date(2026, 11, 24, 0, 0, 0, 0, shanghai)
	start := day.UnixMilli()
	odd := NewDay(start, day.Add(23*time.Hour).UnixMilli(), 5*3600*1000)
	odd.Add(&r, ev("a", day.Add(10*time.Hour)), nil)
	v := append([]byte{stateVersion}, odd.AppendBinary(nil)...) // as encodeSlot writes it: state, zone, vehicle
	for _, s := range []string{"Asia/Shanghai", "a"} {
		v = append(append(v, byte(len(s))), s...)
	}
	w := newTestWindows(t)
	if err := w.Restore("a/2026-11-24", v); err != nil {
		t.Fatal(err)
	}
	var c collector
	var ends []int64
	onClose := func(cl Closed) { c.onClose(cl); ends = append(ends, cl.Day.End-cl.Day.Start) }
	if late, err := w.Add(ev("b", day.Add(11*time.Hour)), onClose); err != nil || late != nil {
		t.Fatal(late, err)
	}
	if late, err := w.Add(ev("a", day.Add(12*time.Hour)), onClose); err != nil || late != nil {
		t.Fatal(late, err)
	}
	eq(t, "open", w.Open(), 2)
	eq(t, "day table entries", len(w.days), 2)
	w.Advance(day.Add(25*time.Hour).UnixMilli(), onClose) // a's end + grace
	eq(t, "closed", fmt.Sprint(c.ids, ends), fmt.Sprint([]string{"a/2026-11-24"}, []int64{23 * 3600 * 1000}))
	w.Advance(day.Add(26*time.Hour).UnixMilli(), onClose)
	eq(t, "closed", fmt.Sprint(c.ids, ends), fmt.Sprint([]string{"a/2026-11-24", "b/2026-11-24"}, []int64{23 * 3600 * 1000, 24 * 3600 * 1000}))
}
