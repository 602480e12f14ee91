package telemetry

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unsafe"
)

// TestDecodeAvroInterned: the interning decoder gives DecodeAvro's events
// and errors byte for byte, on good and bad encodings.
func TestDecodeAvroInterned(t *testing.T) {
	good := sample(4)
	noCodes := sample(5)
	noCodes.FaultCodes = nil
	empty := Event{}
	long := sample(6)
	long.VehicleID = strings.Repeat("V", 64) // exactly MaxInternLen: stored
	longTZ := sample(7)
	longTZ.TZ = strings.Repeat("z", 70) // over MaxInternLen: allocated, never stored
	enc := func(e Event) []byte { return AppendAvro(nil, &e) }
	cases := []struct {
		name string
		b    []byte
		lim  Limits
	}{
		{"event", enc(good), Limits{}},
		{"no fault codes", enc(noCodes), Limits{}},
		{"zero event", enc(empty), Limits{}},
		{"64-byte vehicle id", enc(long), Limits{}},
		{"tz longer than MaxInternLen", enc(longTZ), Limits{MaxTZLen: 100}},
		{"tz over the limit", enc(longTZ), Limits{}},
		{"id over a small limit", enc(good), Limits{MaxIDLen: 3}},
		{"truncated", enc(good)[:20], Limits{}},
		{"trailing byte", append(enc(good), 0), Limits{}},
		{"empty input", nil, Limits{}},
		{"negative string length", []byte{0x01}, Limits{}},
		{"string longer than the input", []byte{0x7e, 'a'}, Limits{}},
	}
	in := NewInterner(2) // rotates while the cases run
	for _, c := range cases {
		for round := range 2 { // the second round hits the table
			want, werr := DecodeAvro(c.b, c.lim)
			got, gerr := DecodeAvroInterned(c.b, c.lim, in)
			if fmt.Sprint(werr) != fmt.Sprint(gerr) {
				t.Fatalf("%s (round %d): error %v, DecodeAvro %v", c.name, round, gerr, werr)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s (round %d): %+v, DecodeAvro %+v", c.name, round, got, want)
			}
			if in.Len() > 2*2 {
				t.Fatalf("%s: %d strings held, cap 2 per generation", c.name, in.Len())
			}
		}
	}
}

// TestDecodeAvroInternedShares: repeated ids and zones come back as the
// same string (no new allocation), the event id points into the input, and
// decoding an event whose strings are all known allocates nothing.
func TestDecodeAvroInternedShares(t *testing.T) {
	in := NewInterner(0)
	a, b := sample(1), sample(2)
	a.FaultCodes, b.FaultCodes = nil, nil
	ba, bb := AppendAvro(nil, &a), AppendAvro(nil, &b)
	ea, err := DecodeAvroInterned(ba, Limits{}, in)
	if err != nil {
		t.Fatal(err)
	}
	eb, err := DecodeAvroInterned(bb, Limits{}, in)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct{ name, x, y string }{{"device", ea.DeviceID, eb.DeviceID}, {"vehicle", ea.VehicleID, eb.VehicleID}, {"tz", ea.TZ, eb.TZ}} {
		if f.x != f.y || unsafe.StringData(f.x) != unsafe.StringData(f.y) {
			t.Errorf("%s: %q and %q are not one string", f.name, f.x, f.y)
		}
	}
	p := uintptr(unsafe.Pointer(unsafe.StringData(eb.EventID)))
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(bb)))
	if eb.EventID != b.EventID || p < lo || p >= lo+uintptr(len(bb)) {
		t.Errorf("event id %q is not an alias of the input", eb.EventID)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := DecodeAvroInterned(bb, Limits{}, in); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per decode of known strings, want 0", allocs)
	}
	if allocs := testing.AllocsPerRun(100, func() { DecodeAvro(bb, Limits{}) }); allocs < 4 {
		t.Errorf("DecodeAvro: %v allocations, expected the 4 strings (is the test measuring anything?)", allocs)
	}
}

// TestInternerBounded: hostile input, every event from a new device and
// vehicle, never grows the table past two generations, every event still
// decodes to its own strings, and the ids seen in every generation stay
// shared (no allocation) whatever passes through.
func TestInternerBounded(t *testing.T) {
	const capN = 64
	in := NewInterner(capN)
	hot := sample(1)
	hot.FaultCodes = nil
	hotB := AppendAvro(nil, &hot)
	first, err := DecodeAvroInterned(hotB, Limits{}, in)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100_000 {
		e := sample(uint64(i))
		e.DeviceID = fmt.Sprintf("dev-%06d", i)
		e.VehicleID = fmt.Sprintf("VIN%014d", i)
		e.TZ = []string{"UTC", "Europe/Paris", "Asia/Shanghai"}[i%3]
		got, err := DecodeAvroInterned(AppendAvro(nil, &e), Limits{}, in)
		if err != nil {
			t.Fatal(err)
		}
		if got.DeviceID != e.DeviceID || got.VehicleID != e.VehicleID || got.TZ != e.TZ || got.EventID != e.EventID {
			t.Fatalf("event %d decoded as %+v", i, got)
		}
		if in.Len() > 2*capN {
			t.Fatalf("after %d distinct ids the table holds %d strings, cap %d per generation", i+1, in.Len(), capN)
		}
		if i%(capN/4) == 0 { // the hot vehicle sends at least once per generation
			h, err := DecodeAvroInterned(hotB, Limits{}, in)
			if err != nil {
				t.Fatal(err)
			}
			if unsafe.StringData(h.VehicleID) != unsafe.StringData(first.VehicleID) {
				t.Fatalf("after %d distinct ids the hot vehicle's id was evicted", i+1)
			}
		}
	}
	if in.Rotations() < 100_000*2/capN-1 {
		t.Errorf("%d rotations for 200,000 distinct ids at cap %d", in.Rotations(), capN)
	}
}

// TestInternerLongStrings: a string over MaxInternLen is returned but never
// stored.
func TestInternerLongStrings(t *testing.T) {
	in := NewInterner(4)
	long := []byte(strings.Repeat("x", MaxInternLen+1))
	if s := in.Bytes(long); s != string(long) || in.Len() != 0 {
		t.Fatalf("%q, %d stored", s, in.Len())
	}
	short := []byte(strings.Repeat("x", MaxInternLen))
	if s := in.Bytes(short); s != string(short) || in.Len() != 1 {
		t.Fatalf("%q, %d stored", s, in.Len())
	}
}

// FuzzDecodeAvroInterned: for any input the interning decoder gives what
// DecodeAvro gives (event and error), with a small table shared across
// inputs so that rotations, promotions and hits are all exercised, and the
// table never holds more than its bound.
func FuzzDecodeAvroInterned(f *testing.F) {
	e := sample(3)
	f.Add(AppendAvro(nil, &e), uint8(0))
	e.FaultCodes = nil
	e.TZ = strings.Repeat("Z", 65)
	f.Add(AppendAvro(nil, &e), uint8(100))
	f.Add([]byte{}, uint8(1))
	f.Add([]byte{0x02, 'a', 0x02, 'a', 0x02, 'a'}, uint8(0))
	const capN = 3
	in := NewInterner(capN)
	f.Fuzz(func(t *testing.T, b []byte, maxLen uint8) {
		lim := Limits{MaxIDLen: int(maxLen), MaxTZLen: int(maxLen)}
		want, werr := DecodeAvro(b, lim)
		for range 2 {
			got, gerr := DecodeAvroInterned(b, lim, in)
			if fmt.Sprint(werr) != fmt.Sprint(gerr) {
				t.Fatalf("error %v, DecodeAvro %v", gerr, werr)
			}
			// Compared by their encodings: NaN != NaN for reflect.DeepEqual.
			if !bytes.Equal(AppendAvro(nil, &got), AppendAvro(nil, &want)) || (got.FaultCodes == nil) != (want.FaultCodes == nil) {
				t.Fatalf("%+v, DecodeAvro %+v", got, want)
			}
		}
		if in.Len() > 2*capN {
			t.Fatalf("%d strings held, cap %d per generation", in.Len(), capN)
		}
	})
}

// TestInternerFront: the direct-mapped front holds only strings of the
// current generation (so the bound and eviction are the maps'), and a
// string found there is the one the maps hold.
func TestInternerFront(t *testing.T) {
	in := NewInterner(100)
	for i := range 20_000 {
		b := []byte(fmt.Sprintf("veh-%04d", (i*7919)%450)) // 450 ids through generations of 100
		s := in.field(internVehicle, b)
		if s != string(b) {
			t.Fatalf("%q interned as %q", b, s)
		}
		if m, ok := in.cur[s]; !ok || unsafe.StringData(m) != unsafe.StringData(s) {
			t.Fatalf("%q returned but not the current generation's string", s)
		}
		for _, f := range in.front {
			if f == "" {
				continue
			}
			if m, ok := in.cur[f]; !ok || unsafe.StringData(m) != unsafe.StringData(f) {
				t.Fatalf("after %d lookups the front holds %q, not in the current generation", i+1, f)
			}
		}
	}
	if in.Rotations() == 0 {
		t.Fatal("no rotation: the test exercises nothing")
	}
}
