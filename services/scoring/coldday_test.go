package scoring

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/minecart/minecart/services/telemetry"
)

// TestColdDaysChangeNothing: flushing after every event (every open day
// packed and thawed again at its next event) gives the same closed days,
// results and state bytes as never flushing.
func TestColdDaysChangeNothing(t *testing.T) {
	t.Run("compact at every flush", func(t *testing.T) {
		compactMin = 0
		defer func() { compactMin = arenaChunk }()
		testColdDays(t)
	})
	testColdDays(t)
}

func testColdDays(t *testing.T) {
	evs := mixedTraffic(8, 3)
	compactions := 0
	run := func(flush bool) []string {
		w := newTestWindows(t)
		var out []string
		onClose := func(c Closed) {
			out = append(out, fmt.Sprintf("%s %s %+v %x", c.ID, c.TZ, c.Result, c.Day.AppendBinary(nil)))
		}
		cold := 0
		for i := range evs {
			if late, err := w.Add(&evs[i], onClose); err != nil || late != nil && late.Date == "" {
				t.Fatal(late, err)
			}
			if flush {
				w.Flush(func(string, []byte) {})
				for j := range w.n {
					if s := w.slot(j); s.flags()&slotUsed != 0 && s.flags()&slotHot == 0 {
						cold++
					}
				}
			}
		}
		w.Advance(evs[len(evs)-1].TimeMs+3*24*3600*1000, onClose)
		if flush && cold == 0 {
			t.Fatal("no day was ever cold")
		}
		compactions += w.compactions
		return out
	}
	want, got := run(false), run(true)
	if len(want) < 16 {
		t.Fatalf("only %d closed days", len(want))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("cold days changed the outcome:\n got %v\nwant %v", got, want)
	}
	if compactMin == 0 && compactions == 0 {
		t.Fatal("the arena was never compacted")
	}
}

func TestPackZeros(t *testing.T) {
	for _, src := range [][]byte{nil, {0}, {1}, make([]byte, 17), {0, 0, 0, 0, 0, 0, 0, 0, 9}, []byte("abcdefghijk\x00l")} {
		p := packZeros(nil, src)
		back, err := unpackZeros(nil, string(p))
		if err != nil || !bytes.Equal(back, src) {
			t.Fatalf("%x: got %x, %v", src, back, err)
		}
		if len(p) > 1 {
			if _, err := unpackZeros(nil, string(p[:len(p)-1])); err == nil && len(src) > 0 && src[len(src)-1] != 0 {
				t.Fatalf("%x: truncated packing accepted", src)
			}
		}
	}
}

func FuzzPackZeros(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0, 2})
	f.Fuzz(func(t *testing.T, src []byte) {
		back, err := unpackZeros(nil, string(packZeros(nil, src)))
		if err != nil || !bytes.Equal(back, src) {
			t.Fatalf("%x: got %x, %v", src, back, err)
		}
		unpackZeros(nil, string(src)) // arbitrary input: an error, never a panic
	})
}

// TestArenaBounded: days taking events in many transactions leave their
// old records dead; after every Flush the arena's dead bytes are at most
// 1/16 of its live ones (compaction moves records out of the deadest
// chunks and releases them), its counts match its chunks and its slots,
// and every day still thaws.
func TestArenaBounded(t *testing.T) {
	compactMin = 0
	defer func() { compactMin = arenaChunk }()
	r := DefaultRules()
	w, err := NewWindows(&r, "Asia/Shanghai", 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	const vehicles = 20000
	seq := make([]uint64, vehicles)
	t0 := time.Date(2026, 11, 24, 8, 0, 0, 0, shanghai).UnixMilli()
	for round := range 12 {
		for v := range vehicles {
			if round > 0 && rng.IntN(10) >= 3 { // 30% of the vehicles per transaction
				continue
			}
			for range 1 + rng.IntN(3) {
				seq[v]++
				ev := telemetry.Event{VehicleID: fmt.Sprintf("LSVAU2180N2%06d", v), DeviceID: fmt.Sprintf("dev-%08d", v), TZ: "Asia/Shanghai",
					Seq: seq[v], TimeMs: t0 + int64(seq[v])*1000, Lat: 31.2, Lon: 121.4 + float64(seq[v])*1e-4, SpeedKmh: 40, OdometerKm: 1000 + float64(seq[v])*0.01}
				if _, err := w.Add(&ev, func(Closed) {}); err != nil {
					t.Fatal(err)
				}
			}
		}
		w.Flush(func(string, []byte) {})
		a := &w.arena
		used, live := 0, 0
		for k, c := range a.chunks {
			used += len(c)
			live += a.chunkLive[k]
		}
		records := 0
		for i := range w.n {
			if s := w.slot(i); s.flags()&(slotUsed|slotHot) == slotUsed {
				n := len(a.get(s.ref))
				records += uvarintLen(uint64(n)) + n
			}
		}
		if live != a.live || records != a.live || used-live != a.dead {
			t.Fatalf("round %d: live %d, chunks' live %d, records %d; dead %d, chunks' dead %d", round, a.live, live, records, a.dead, used-live)
		}
		if a.dead > a.live/16 {
			t.Fatalf("round %d: %d dead bytes for %d live", round, a.dead, a.live)
		}
	}
	if w.compactions == 0 {
		t.Fatal("never compacted")
	}
	for i := range w.n {
		if w.slot(i).flags()&slotUsed != 0 {
			w.thaw(i)
		}
	}
}
