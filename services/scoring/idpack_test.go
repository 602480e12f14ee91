package scoring

import (
	"bytes"
	"cmp"
	"strings"
	"testing"
)

func TestIDPacking(t *testing.T) {
	ids := []string{"", "-", "_", "z", "0", "AB", "AB-", "ABC", "ABC-", "ABC--", "ABCD", "LSVAU2180N2000001", "LSVAU2180N2777777",
		"dev-00000001", "veh-000001", "a b", "é", "v/1", "UPPER_lower-123", strings.Repeat("Z", 100), strings.Repeat("Z", 99) + "!"}
	for _, id := range ids {
		enc := appendID(nil, id)
		if got := idText(enc); got != id {
			t.Errorf("%q: decodes to %q", id, got)
		}
		n, packed, _, rest, ok := splitID(append(enc, 7))
		if !ok || n != len(id) || packed != packable(id) || !bytes.Equal(rest, []byte{7}) {
			t.Errorf("%q: split %d %v %x %v", id, n, packed, rest, ok)
		}
		if packable(id) && len(enc) != 1+packedLen(len(id)) && len(id) < 64 {
			t.Errorf("%q: %d bytes packed", id, len(enc))
		}
		if _, _, _, _, ok := splitID(enc[:len(enc)-1]); ok && len(id) > 0 {
			t.Errorf("%q: a cut encoding splits", id)
		}
	}
	if n := len(appendID(nil, "LSVAU2180N2000001")); n != 14 {
		t.Errorf("a VIN takes %d bytes, want 14", n)
	}
	for _, a := range ids {
		for _, b := range ids {
			ea, eb := appendID(nil, a), appendID(nil, b)
			if got, want := compareIDs(ea, eb), cmp.Compare(a, b); got != want {
				t.Errorf("compare(%q, %q) = %d, want %d", a, b, got, want)
			}
			if bytes.Equal(ea, eb) != (a == b) {
				t.Errorf("%q and %q: encodings equal %v", a, b, bytes.Equal(ea, eb))
			}
		}
	}
}

func FuzzIDPacking(f *testing.F) {
	f.Add("LSVAU2180N2000001", "LSVAU2180N2000001-")
	f.Add("ab", "a")
	f.Fuzz(func(t *testing.T, a, b string) {
		ea, eb := appendID(nil, a), appendID(nil, b)
		if idText(ea) != a || idText(eb) != b {
			t.Fatalf("round trip: %q %q", idText(ea), idText(eb))
		}
		if got, want := compareIDs(ea, eb), cmp.Compare(a, b); got != want {
			t.Fatalf("compare(%q, %q) = %d, want %d", a, b, got, want)
		}
		if bytes.Equal(ea, eb) != (a == b) {
			t.Fatalf("%q and %q: encodings equal %v", a, b, bytes.Equal(ea, eb))
		}
		splitID([]byte(a)) // any bytes: no panic
	})
}
