package ledger

import (
	"encoding/hex"
	"regexp"
	"strings"
	"testing"

	"github.com/minecart/minecart/services/pseudonym"
)

func exampleKey(from byte) []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = from + byte(i)
	}
	return k
}

// TestPseudonymize: identity fields, credit ids, refs and reasons lose
// every clear identity (docs/ledger.md, "Pseudonymous leaves"); a
// lookup-only name leaves unknown identities alone; text that is not an
// identity token is kept.
func TestPseudonymize(t *testing.T) {
	keys := map[string][]byte{"WVWZZZ1JZXW000001": exampleKey(0), "owner-00000": exampleKey(0x20), "v2": exampleKey(0x40)}
	name := func(k pseudonym.Kind, id string) (string, bool) {
		key, ok := keys[id]
		if !ok {
			return "", false
		}
		return pseudonym.Of(key, k, id), true
	}
	const pv = "p1:57fab9b22d6e0a9dd925d3142f46189d"
	const pa = "p1:2269af71ded1419d3a589952cffa9945"
	pv2 := pseudonym.Of(keys["v2"], pseudonym.Vehicle, "v2")
	for _, c := range []struct {
		in, want Entry
	}{
		{Entry{Kind: KindCredit, ID: "WVWZZZ1JZXW000001/2026-12-01", VehicleID: "WVWZZZ1JZXW000001", Date: "2026-12-01"},
			Entry{Kind: KindCredit, ID: pv + "/2026-12-01", VehicleID: pv, Date: "2026-12-01"}},
		{Entry{Kind: KindAdjustment, ID: "late/WVWZZZ1JZXW000001/2026-12-01/0a", VehicleID: "WVWZZZ1JZXW000001", Ref: "WVWZZZ1JZXW000001/2026-12-01",
			Reason: "late data: WVWZZZ1JZXW000001/2026-12-01 rescored; WVWZZZ1JZXW0000012 untouched"},
			Entry{Kind: KindAdjustment, ID: "late/" + pv + "/2026-12-01/0a", VehicleID: pv, Ref: pv + "/2026-12-01",
				Reason: "late data: " + pv + "/2026-12-01 rescored; WVWZZZ1JZXW0000012 untouched"}},
		{Entry{Kind: KindAdjustment, ID: "fix-1", Account: "owner-00000", Ref: "v2/2026-12-01", Reason: "goodwill for owner-00000"},
			Entry{Kind: KindAdjustment, ID: "fix-1", Account: pa, Ref: pv2 + "/2026-12-01", Reason: "goodwill for " + pa}},
		{Entry{Kind: KindDebit, ID: "r-1", Account: "nobody", VehicleID: ""},
			Entry{Kind: KindDebit, ID: "r-1", Account: "nobody"}},
		{Entry{Kind: KindErasure, ID: "erasure/00", VehicleID: pv, Reason: "r"},
			Entry{Kind: KindErasure, ID: "erasure/00", VehicleID: pv, Reason: "r"}},
	} {
		got := c.in
		Pseudonymize(&got, name)
		if got.ID != c.want.ID || got.VehicleID != c.want.VehicleID || got.Account != c.want.Account || got.Ref != c.want.Ref || got.Reason != c.want.Reason {
			t.Errorf("Pseudonymize(%+v)\n got %+v\nwant %+v", c.in, got, c.want)
		}
	}
}

// TestErasureEncoding is the worked example of docs/ledger.md, "Kind 8:
// erasure", byte for byte, and its decoding.
func TestErasureEncoding(t *testing.T) {
	e := Entry{Kind: KindErasure, ID: "erasure/000102030405060708090a0b", VehicleID: "p1:57fab9b22d6e0a9dd925d3142f46189d",
		Reason: "erasure requested by the owner", RequestedAtMs: 1764633600000}
	b, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	const want = "0108" + "00000020" + "657261737572652f303030313032303330343035303630373038303930613062" +
		"00000000" + "00000023" + "70313a35376661623962323264366530613964643932356433313432663436313839" + "64" +
		"0000001e" + "657261737572652072657175657374656420627920746865206f776e6572" + "0000019adc5be000"
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("encoding\n got %s\nwant %s", got, want)
	}
	d, err := DecodeEntry(b)
	if err != nil || d.VehicleID != e.VehicleID || d.Delta() != 0 || d.Key() != e.VehicleID {
		t.Fatalf("decode: %+v %v", d, err)
	}
	for _, bad := range []Entry{
		{Kind: KindErasure, ID: "e", Reason: "r"},
		{Kind: KindErasure, ID: "e", Reason: "r", Account: "a", VehicleID: "v"},
		{Kind: KindErasure, ID: "e", VehicleID: "v"},
		{Kind: KindErasure, ID: "e", VehicleID: "v", Reason: "r", Amount: 1},
	} {
		if _, err := bad.Encode(); err == nil || !strings.Contains(err.Error(), "erasure") {
			t.Errorf("%+v encoded: %v", bad, err)
		}
	}
}

// BenchmarkPseudonymize is the choke point's cost per credit with its key
// known (a map lookup and the rewrite), next to the cost of encoding the
// same credit, which the ledger pays anyway.
func BenchmarkPseudonymize(b *testing.B) {
	key := exampleKey(0)
	p := pseudonym.Of(key, pseudonym.Vehicle, "WVWZZZ1JZXW000001")
	name := func(pseudonym.Kind, string) (string, bool) { return p, true }
	e := Entry{Kind: KindCredit, ID: "WVWZZZ1JZXW000001/2026-12-01", VehicleID: "WVWZZZ1JZXW000001", Date: "2026-12-01",
		TZ: "Europe/Berlin", ConfigVersion: "2026.12-1", Points: 412, Score: 87.5, EventsHash: make([]byte, 32)}
	b.Run("pseudonymize", func(b *testing.B) {
		for b.Loop() {
			c := e
			Pseudonymize(&c, name)
		}
	})
	b.Run("encode", func(b *testing.B) {
		buf := make([]byte, 0, 512)
		for b.Loop() {
			buf, _ = e.AppendEncode(buf[:0])
		}
	})
	b.Run("hmac", func(b *testing.B) {
		for b.Loop() {
			pseudonym.Of(key, pseudonym.Vehicle, "WVWZZZ1JZXW000001")
		}
	})
}

// pseudonymRE finds a whole pseudonym (not inside a longer run of id bytes).
var pseudonymRE = regexp.MustCompile(`(^|[^A-Za-z0-9._-])p1:[0-9a-f]{32}($|[^A-Za-z0-9._-])`)

// FuzzPseudonymize: whatever the text around it, no run of id bytes equal
// to the entry's vehicle id survives in id, ref or reason, and the
// vehicle field is its pseudonym.
func FuzzPseudonymize(f *testing.F) {
	f.Add("v1", "late/v1/2026-12-01/ab", "v1/2026-12-01", "late data: v1/2026-12-01 rescored; v10 untouched")
	f.Add("a.b", "a.b", "", "p1:57fab9b22d6e0a9dd925d3142f46189d a.b")
	f.Add("p1", "p1/x", "p1/2026-12-01", "p1:57fab9b22d6e0a9dd925d3142f46189d p1")
	f.Fuzz(func(t *testing.T, vid, id, ref, reason string) {
		if vid == "" || strings.ContainsFunc(vid, func(r rune) bool { return r > 127 || !idByte(byte(r)) }) || pseudonym.Is(vid) {
			return
		}
		p := pseudonym.Of(exampleKey(0), pseudonym.Vehicle, vid)
		e := Entry{Kind: KindAdjustment, ID: id, VehicleID: vid, Ref: ref, Reason: reason}
		Pseudonymize(&e, func(pseudonym.Kind, string) (string, bool) { return p, true })
		if e.VehicleID != p {
			t.Fatalf("vehicle %q", e.VehicleID)
		}
		for _, s := range []string{e.ID, e.Ref, e.Reason} {
			for again := ""; again != s; { // pseudonyms are kept whole (matches may overlap: repeat)
				again, s = s, pseudonymRE.ReplaceAllString(s, "$1 $2")
			}
			for _, tok := range strings.FieldsFunc(s, func(r rune) bool { return r > 127 || !idByte(byte(r)) }) {
				if tok == vid {
					t.Fatalf("%q survives in %q", vid, s)
				}
			}
		}
	})
}
