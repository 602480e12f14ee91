package scoring

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
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
