package scoring

import (
	"reflect"
	"testing"
	"time"
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

// FuzzWindowsRestore restores arbitrary changelog records. Invariants: no
// panic, and the windows keep working afterwards.
func FuzzWindowsRestore(f *testing.F) {
	r := DefaultRules()
	w, _ := NewWindows(&r, "Asia/Shanghai", 2*time.Hour)
	day := time.Date(2026, 11, 24, 0, 0, 0, 0, shanghai)
	w.Add(ev("a", day.Add(9*time.Hour)), func(Closed) {})
	w.Flush(func(key string, value []byte) { f.Add(key, value) })
	f.Add("task", []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		w, err := NewWindows(&r, "Asia/Shanghai", 2*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
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
