package replay

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

func sampleFP() Fingerprint {
	fp := Fingerprint{Version: 1, Vehicle: "LSVAU2180N2183294", Date: "2026-11-24", Trip: 2, StartMs: 1763942400123, EndMs: 1763945000456, N: 97,
		From: [2]int32{39250, 17811}, To: [2]int32{39310, 17790}, Origin: OriginAway}
	for i := range fp.Sig {
		fp.Sig[i] = uint16(i * 1031)
	}
	return fp
}

func TestCodec(t *testing.T) {
	fp := sampleFP()
	b := AppendBinary(nil, &fp)
	if len(b) != 180 {
		t.Fatalf("record %d bytes, documented 180", len(b))
	}
	got, err := Decode(b)
	if err != nil || got != fp {
		t.Fatalf("round trip: %v\n%+v\n%+v", err, got, fp)
	}
	// version 1: the same fields up to the signature, no origin or cells
	v1 := append([]byte{1}, b[1:171]...)
	want := fp
	want.From, want.To, want.Origin = [2]int32{}, [2]int32{}, OriginUnknown
	if got, err := Decode(v1); err != nil || got != want {
		t.Fatalf("version 1: %v\n%+v\n%+v", err, got, want)
	}
	// version 3: a short trip's fingerprint, version 2's layout and Exact
	short := fp
	short.N, short.Exact = 9, 0x0123456789abcdef
	b3 := AppendBinary(nil, &short)
	if b3[0] != 3 || len(b3) != 188 {
		t.Fatalf("short record: version %d, %d bytes, want 3 and 188 (version 2's fields, then Exact)", b3[0], len(b3))
	}
	if got, err := Decode(b3); err != nil || got != short {
		t.Fatalf("version 3 round trip: %v\n%+v\n%+v", err, got, short)
	}
	if b[0] != 2 {
		t.Fatalf("a fingerprint without Exact is record version %d, want 2", b[0])
	}
	for _, c := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"version 4", append([]byte{4}, b3[1:]...)},
		{"version 3 without Exact", append([]byte{3}, b[1:]...)},
		{"version 3 with Exact 0", append(append([]byte{3}, b[1:]...), 0, 0, 0, 0, 0, 0, 0, 0)},
		{"version 3 truncated", b3[:len(b3)-1]},
		{"version 3 trailing byte", append(bytes.Clone(b3), 0)},
		{"version 2 with Exact", append([]byte{2}, b3[1:]...)},
		{"version 1 with cells", append([]byte{1}, b[1:]...)},
		{"origin 3", append(append(bytes.Clone(b[:171]), 3), b[172:]...)},
		{"no origin", b[:171]},
		{"truncated", b[:len(b)-1]},
		{"trailing byte", append(bytes.Clone(b), 0)},
		{"vehicle over 64 bytes", append([]byte{1, 1, 65}, bytes.Repeat([]byte{'v'}, 65)...)},
		{"vehicle length past the end", []byte{1, 1, 10, 'v'}},
		{"trip over 65535", []byte{1, 1, 1, 'v', 1, 'd', 0x80, 0x80, 0x04, 0, 0, 0}},
	} {
		if _, err := Decode(c.b); !errors.Is(err, ErrRecord) {
			t.Errorf("%s: %v, want ErrRecord", c.name, err)
		}
	}
}

// FuzzDecode: Decode never panics, and refuses with ErrRecord or returns a
// fingerprint whose encoding decodes to itself.
func FuzzDecode(f *testing.F) {
	fp := sampleFP()
	f.Add(AppendBinary(nil, &fp))
	fp.N, fp.Exact = 9, 42
	f.Add(AppendBinary(nil, &fp))
	f.Add([]byte{1, 1, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		fp, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrRecord) {
				t.Fatalf("%x: %v", b, err)
			}
			return
		}
		again, err := Decode(AppendBinary(nil, &fp))
		if err != nil || again != fp {
			t.Fatalf("%x: re-encoded %+v decodes to %+v, %v", b, fp, again, err)
		}
	})
}

// FuzzDecodeBuilder: DecodeBuilder never panics, refuses with ErrRecord
// or returns a Builder whose encoding decodes to the same encoding (the
// changelog's round trip), and what follows the Builder is returned intact.
func FuzzDecodeBuilder(f *testing.F) {
	cfg := DefaultConfig()
	b := NewBuilder(1_000_000)
	rt := newRoute(3, 4)
	for _, fx := range rt.drive(1_000_000, 1000, func(int) float64 { return 50 }, func(int) float64 { return 0 }) {
		b.Add(&cfg, fx)
	}
	f.Add(append(b.AppendBinary(nil), 7, 7))
	f.Add([]byte{1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		b, rest, err := DecodeBuilder(in)
		if err != nil {
			if !errors.Is(err, ErrRecord) {
				t.Fatalf("%x: %v", in, err)
			}
			return
		}
		enc := b.AppendBinary(nil)
		b2, rest2, err := DecodeBuilder(append(slices.Clone(enc), rest...))
		if err != nil || !bytes.Equal(b2.AppendBinary(nil), enc) || !bytes.Equal(rest2, rest) {
			t.Fatalf("%x: round trip: %v", in, err)
		}
		b.Fingerprints(&cfg, "v", "d") // must not panic on any decoded state
	})
}

func TestBuilderCodec(t *testing.T) {
	cfg := DefaultConfig()
	rt := newRoute(4, 20)
	fs := rt.drive(5_000, 1000, func(i int) float64 { return 30 + float64(i%5)*10 }, func(i int) float64 { return float64(i%3) * 20 })
	b := NewBuilder(0)
	// Uploaded as 10 batches in reverse order: several runs, joined.
	for k := 9; k >= 0; k-- {
		for _, f := range fs[k*len(fs)/10 : (k+1)*len(fs)/10] {
			b.Add(&cfg, f)
		}
	}
	enc := b.AppendBinary(nil)
	got, rest, err := DecodeBuilder(append(slices.Clone(enc), 9))
	if err != nil || len(rest) != 1 || !bytes.Equal(got.AppendBinary(nil), enc) {
		t.Fatalf("round trip: %v", err)
	}
	want := Trips(cfg, "v", "d", slices.Clone(fs))
	fps := got.Fingerprints(&cfg, "v", "d")
	if len(fps) != 1 || len(want) != 1 {
		t.Fatalf("%d and %d trips", len(fps), len(want))
	}
	// Reverse-order uploads give (nearly) the in-order fingerprint: it matches.
	if _, c := Similarity(&want[0], &fps[0]); c < 0.9 {
		t.Fatalf("reverse-order upload: containment %.2f of the in-order fingerprint", c)
	}
	t.Logf("builder: %d entries, %d bytes encoded (%.1f per entry)", len(got.entries(&cfg)), len(enc), float64(len(enc))/float64(len(got.entries(&cfg))))
}
