package replay

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestEndCodec(t *testing.T) {
	e := End{Date: "2026-11-24", TimeMs: 1763942400123, Cell: [2]int32{46083, -13961}}
	b := AppendEnd(nil, &e)
	if len(b) != 24 {
		t.Fatalf("record %d bytes, documented 24", len(b))
	}
	if got, err := DecodeEnd(b); err != nil || got != e {
		t.Fatalf("round trip: %v %+v", err, got)
	}
	for _, c := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"version 2", append([]byte{2}, b[1:]...)},
		{"empty date", []byte{1, 0, 0, 0, 0}},
		{"date over 64 bytes", append([]byte{1, 65}, bytes.Repeat([]byte{'d'}, 65)...)},
		{"date past the end", []byte{1, 10, 'd'}},
		{"time beyond 2^50", AppendEnd(nil, &End{Date: "d", TimeMs: 1<<50 + 1})},
		{"cell beyond int32", append(append([]byte{1, 1, 'd'}, 0, 0), 0x80, 0x80, 0x80, 0x80, 0x20)},
		{"truncated", b[:len(b)-1]},
		{"trailing byte", append(bytes.Clone(b), 0)},
	} {
		if _, err := DecodeEnd(c.b); !errors.Is(err, ErrRecord) {
			t.Errorf("%s: %v, want ErrRecord", c.name, err)
		}
	}
}

// FuzzDecodeEnd: DecodeEnd never panics, and refuses with ErrRecord or
// returns an End whose encoding decodes to itself.
func FuzzDecodeEnd(f *testing.F) {
	f.Add(AppendEnd(nil, &End{Date: "2026-11-24", TimeMs: 1763942400123, Cell: [2]int32{46083, 13961}}))
	f.Add([]byte{1, 1, 'd', 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEnd(b)
		if err != nil {
			if !errors.Is(err, ErrRecord) {
				t.Fatalf("%x: %v", b, err)
			}
			return
		}
		if again, err := DecodeEnd(AppendEnd(nil, &e)); err != nil || again != e {
			t.Fatalf("%x: re-encoded %+v decodes to %+v, %v", b, e, again, err)
		}
	})
}

// TestBuilderEnd: End is the day's last fix with a position, whatever its
// speed, in any arrival order (equal times: the greatest cell); it
// survives the builder's record, and a version 1 record (before End)
// decodes to the same runs without it.
func TestBuilderEnd(t *testing.T) {
	cfg := DefaultConfig()
	rt := newRoute(5, 10)
	fs := rt.drive(1_000_000, 1000, func(i int) float64 { return 40 + float64(i%7)*5 }, func(int) float64 { return 0 })
	last := fs[len(fs)-1]
	// parked afterwards: slow fixes 2 km north of the drive's end, then
	// fixes without a position, which are ignored
	park := Fix{TimeMs: last.TimeMs + 600_000, Lat: last.Lat + 2000/111320.0, Lon: last.Lon, SpeedKmh: 0}
	all := append(slices.Clone(fs), park, Fix{TimeMs: park.TimeMs + 1}, Fix{TimeMs: park.TimeMs + 2, SpeedKmh: 30})
	px, py := proj(park.Lat, park.Lon)
	want := [2]int32{int32(math.Floor(px / cfg.CellM)), int32(math.Floor(py / cfg.CellM))}
	inOrder := NewBuilder(1_000_000)
	if _, _, ok := inOrder.End(); ok {
		t.Fatal("an empty builder has an end")
	}
	for _, f := range all {
		inOrder.Add(&cfg, f)
	}
	if tm, c, ok := inOrder.End(); !ok || tm != park.TimeMs || c != want {
		t.Fatalf("end %d %v %v, want %d %v", tm, c, ok, park.TimeMs, want)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 5 {
		b := NewBuilder(1_000_000)
		for _, k := range r.Perm(len(all)) {
			b.Add(&cfg, all[k])
		}
		if tm, c, ok := b.End(); !ok || tm != park.TimeMs || c != want {
			t.Fatalf("shuffled: end %d %v %v, want %d %v", tm, c, ok, park.TimeMs, want)
		}
	}
	// two fixes at the last time: the greatest cell, whichever came first
	east := park
	east.Lon += 1000 / 95000.0
	for _, order := range [][2]Fix{{park, east}, {east, park}} {
		b := NewBuilder(1_000_000)
		b.Add(&cfg, order[0])
		b.Add(&cfg, order[1])
		if _, c, _ := b.End(); c[0] <= want[0] {
			t.Errorf("tie: cell %v, want the eastern one", c)
		}
	}
	enc := inOrder.AppendBinary(nil)
	got, rest, err := DecodeBuilder(append(slices.Clone(enc), 9))
	if err != nil || len(rest) != 1 || !bytes.Equal(got.AppendBinary(nil), enc) {
		t.Fatalf("round trip: %v", err)
	}
	if tm, c, ok := got.End(); !ok || tm != park.TimeMs || c != want {
		t.Fatalf("decoded end %d %v %v", tm, c, ok)
	}
	// version 1: the same runs, nothing after them
	tail := binary.AppendUvarint(nil, uint64(park.TimeMs-inOrder.Base)+1)
	tail = binary.AppendVarint(binary.AppendVarint(tail, int64(want[0])), int64(want[1]))
	if !bytes.HasSuffix(enc, tail) {
		t.Fatalf("record %x does not end with the last fix %x", enc, tail)
	}
	v1 := append([]byte{1}, enc[1:len(enc)-len(tail)]...)
	old, rest, err := DecodeBuilder(append(v1, 9))
	if err != nil || len(rest) != 1 {
		t.Fatalf("version 1: %v", err)
	}
	if _, _, ok := old.End(); ok {
		t.Error("a version 1 builder has an end")
	}
	a, b := old.Fingerprints(&cfg, "v", "d"), inOrder.Fingerprints(&cfg, "v", "d")
	if len(a) == 0 || !slices.Equal(a, b) {
		t.Errorf("version 1 fingerprints %d, version 2 %d: differ", len(a), len(b))
	}
}

// TestIndexEnds: a vehicle's end is its latest, a day's last fix
// (SetEnd) or a fingerprint's end (Add), a tie going to SetEnd; the
// same whatever order the changelog restores them in; Anchor uses it;
// Expire drops it with its date and names the vehicle.
func TestIndexEnds(t *testing.T) {
	cfg := DefaultConfig()
	fp := sampleFP()
	fp.Vehicle, fp.Date = "v", "2026-11-24"
	day := End{Date: "2026-11-24", TimeMs: fp.EndMs + 3_600_000, Cell: [2]int32{39250, 17811}} // parked where the trip began
	tie := End{Date: "2026-11-24", TimeMs: fp.EndMs, Cell: [2]int32{1, 1}}
	for _, c := range []struct {
		name string
		do   func(x *Index)
		want End
	}{
		{"trip, then the day's end", func(x *Index) { x.Add(&fp); x.SetEnd("v", day) }, day},
		{"the day's end, then the trip (restore)", func(x *Index) { x.SetEnd("v", day); x.Add(&fp) }, day},
		{"tie, end last", func(x *Index) { x.Add(&fp); x.SetEnd("v", tie) }, tie},
		{"tie, end first", func(x *Index) { x.SetEnd("v", tie); x.Add(&fp) }, tie},
		{"an earlier end", func(x *Index) {
			x.Add(&fp)
			x.SetEnd("v", End{Date: "2026-11-23", TimeMs: fp.StartMs, Cell: [2]int32{0, 0}})
		},
			End{fp.Date, fp.EndMs, fp.To}},
	} {
		x, err := NewIndex(cfg, 30, 100)
		if err != nil {
			t.Fatal(err)
		}
		c.do(x)
		if got, ok := x.EndOf("v"); !ok || got != c.want {
			t.Errorf("%s: end %+v %v, want %+v", c.name, got, ok, c.want)
		}
	}
	x, _ := NewIndex(cfg, 30, 100)
	x.Add(&fp)
	if !x.SetEnd("v", day) || x.SetEnd("v", day) {
		t.Error("SetEnd reports a change only when the end changes")
	}
	next := fp
	next.Date, next.Trip, next.StartMs, next.EndMs, next.Origin = "2026-11-25", 0, fp.EndMs+86_400_000, fp.EndMs+90_000_000, OriginUnknown
	next.From = [2]int32{39251, 17812}
	next.first = true
	x.Anchor(&next)
	if next.Origin != OriginNear {
		t.Errorf("origin %d after the day's end, want near (without it: away from the trip's end %v)", next.Origin, fp.To)
	}
	if gone, ends := x.Expire("2026-11-25"); len(gone) != 1 || !slices.Equal(ends, []string{"v"}) {
		t.Errorf("expire: %v %v", gone, ends)
	}
	if _, ok := x.EndOf("v"); ok {
		t.Error("end kept after its date expired")
	}
}
