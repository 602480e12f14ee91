package scoring

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/minecart/minecart/services/scoring/replay"
)

// FuzzDayState feeds arbitrary bytes to the changelog decoder. Invariants:
// it never panics; whatever it accepts re-encodes to bytes that decode to
// the same Day.
func FuzzDayState(f *testing.F) {
	r := DefaultRules()
	d, _ := scoreDay(&r, newTrip("v", morning(), 1).Drive(200, 60, at(50, 51, lonAccel(-0.5))).Evs)
	f.Add(d.AppendBinary(nil))
	empty := NewDay(0, 86400000, 5*3600000)
	f.Add(empty.AppendBinary(nil))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var x Day
		if _, err := x.UnmarshalBinary(b); err != nil {
			return
		}
		var y Day
		rest, err := y.UnmarshalBinary(x.AppendBinary(nil))
		if err != nil || len(rest) != 0 || !reflect.DeepEqual(x, y) {
			t.Fatalf("re-encoding changed the day: %v", err)
		}
		_ = x.Result(&r) // must not panic on any accepted state
	})
}

// FuzzWindowsRestore restores arbitrary changelog records (replay
// detection on: window records with a builder, fingerprint and end
// records). Invariants: no panic, and the windows keep working afterwards.
func FuzzWindowsRestore(f *testing.F) {
	r := DefaultRules()
	newW := func(tb testing.TB) *Windows { return replayWindows(tb, &r, 30) }
	w := newW(f)
	day := time.Date(2026, 11, 24, 0, 0, 0, 0, shanghai)
	w.Add(ev("a", day.Add(9*time.Hour)), func(Closed) {})
	w.Flush(func(key string, value []byte) { f.Add(key, value) })
	f.Add("task", []byte{1, 2, 3})
	f.Add(endKeyPrefix+"a", replay.AppendEnd(nil, &replay.End{Date: "2026-11-24", TimeMs: day.UnixMilli(), Cell: [2]int32{46000, 13800}}))
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		w := newW(t)
		_ = w.Restore(key, value)
		_ = w.Restore(key, nil)
		_ = w.Restore(key, value)
		if _, err := w.Add(ev("b", day.Add(10*time.Hour)), func(Closed) {}); err != nil {
			t.Fatal(err)
		}
		w.Advance(day.Add(100*time.Hour).UnixMilli(), func(c Closed) { _ = c.Result })
		w.Flush(func(string, []byte) {})
	})
}

// FuzzClosedDaysRestore restores arbitrary kept-day records. Invariants:
// no panic; an accepted record re-encodes (Flush) to a record that
// restores to the same day; a late event, a revision and expiry still work
// on it.
func FuzzClosedDaysRestore(f *testing.F) {
	r := DefaultRules()
	cd := NewClosedDays(&r, 7*24*time.Hour)
	day := time.Date(2026, 11, 24, 0, 0, 0, 0, shanghai)
	d, _ := scoreDay(&r, newTrip("v", day.Add(9*time.Hour), 1).Drive(200, 60).Evs)
	cd.Keep(&Closed{ID: "v/2026-11-24", Vehicle: "v", Date: "2026-11-24", TZ: "Asia/Shanghai", Day: d})
	cd.Flush(func(key string, value []byte) { f.Add(key, value) })
	f.Add("closed/v/2026-11-24", []byte{closedVersion, 1, 1, 2, 0})
	f.Add("closed/x", []byte{})
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		c := NewClosedDays(&r, 7*24*time.Hour)
		if err := c.Restore(key, value); err != nil {
			return
		}
		again := map[string][]byte{}
		c.dirty[key[len(ClosedKeyPrefix):]] = struct{}{}
		c.Flush(func(k string, v []byte) { again[k] = v })
		c2 := NewClosedDays(&r, 7*24*time.Hour)
		for k, v := range again {
			if err := c2.Restore(k, v); err != nil {
				t.Fatalf("re-encoded record refused: %v", err)
			}
		}
		if c2.Len() != c.Len() || c2.Bytes() != c.Bytes() {
			t.Fatalf("re-encoded: %d days %d bytes, was %d %d", c2.Len(), c2.Bytes(), c.Len(), c.Bytes())
		}
		for id, k := range c.days {
			vehicle, date, _ := strings.Cut(id, "/")
			var x Day
			if _, err := x.UnmarshalBinary(c.unpack(k)); err != nil {
				t.Fatal(err)
			}
			e := ev(vehicle, time.UnixMilli(x.Start+(x.End-x.Start)/2))
			e.TZ = k.tz
			c.Add(e, &Late{WindowEnd: x.End, ClosedThrough: x.End, Date: date, WindowStart: x.Start, TZ: k.tz}, nil)
			c.Revise(x.End, func(v *Revision) { _ = v.Result.Points })
			c.Expire(x.End + 8*24*3600*1000)
		}
	})
}
