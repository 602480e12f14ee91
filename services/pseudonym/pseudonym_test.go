package pseudonym

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func seq(from byte) []byte {
	k := make([]byte, KeySize)
	for i := range k {
		k[i] = from + byte(i)
	}
	return k
}

// TestWorkedExample is docs/ledger.md's worked example ("Pseudonymous
// leaves"), recomputed with crypto/hmac as a verifier would.
func TestWorkedExample(t *testing.T) {
	for _, c := range []struct {
		key  []byte
		kind Kind
		id   string
		want string
	}{
		{seq(0x00), Vehicle, "WVWZZZ1JZXW000001", "p1:57fab9b22d6e0a9dd925d3142f46189d"},
		{seq(0x20), Account, "owner-00000", "p1:2269af71ded1419d3a589952cffa9945"},
	} {
		if got := Of(c.key, c.kind, c.id); got != c.want {
			t.Errorf("Of(%s %s) = %s, want %s", c.kind, c.id, got, c.want)
		}
		m := hmac.New(sha256.New, c.key)
		m.Write([]byte("minecart/" + string(c.kind) + "/v1\x00" + c.id))
		if got := "p1:" + hex.EncodeToString(m.Sum(nil)[:16]); got != c.want {
			t.Errorf("independent HMAC: %s, want %s", got, c.want)
		}
		if !Is(c.want) || (Opening{Pseudonym: c.want, Kind: c.kind, ID: c.id, Key: c.key}).Check() != nil {
			t.Errorf("%s does not check", c.want)
		}
	}
	// Another vehicle, another key, or the other kind: another pseudonym.
	if Of(seq(0), Vehicle, "WVWZZZ1JZXW000002") == Of(seq(0), Vehicle, "WVWZZZ1JZXW000001") ||
		Of(seq(1), Vehicle, "WVWZZZ1JZXW000001") == Of(seq(0), Vehicle, "WVWZZZ1JZXW000001") ||
		Of(seq(0), Account, "x") == Of(seq(0), Vehicle, "x") {
		t.Error("pseudonyms collide")
	}
	if err := (Opening{Pseudonym: Of(seq(0), Vehicle, "a"), Kind: Vehicle, ID: "b", Key: seq(0)}).Check(); !errors.Is(err, ErrOpening) {
		t.Errorf("a wrong opening checks: %v", err)
	}
	if k, _ := NewSealKey(make([]byte, SealKeySize)); k.ID() != "ecae27ff4649277f" {
		t.Errorf("sealing key id %s", k.ID())
	}
}

func TestIs(t *testing.T) {
	for s, want := range map[string]bool{
		"p1:57fab9b22d6e0a9dd925d3142f46189d":  true,
		"p1:57FAB9B22D6E0A9DD925D3142F46189D":  false,
		"p1:57fab9b22d6e0a9dd925d3142f46189":   false,
		"p2:57fab9b22d6e0a9dd925d3142f46189d":  false,
		"p1:57fab9b22d6e0a9dd925d3142f46189dx": false,
		"WVWZZZ1JZXW000001":                    false,
	} {
		if Is(s) != want {
			t.Errorf("Is(%q) = %v", s, !want)
		}
	}
}

// TestSeal: a sealed record opens under its key and pseudonym only, and
// the file key loads back.
func TestSeal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pseudonyms.key")
	k, err := LoadOrCreateSealKey(path)
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadSealKey(path)
	if err != nil || again.ID() != k.ID() {
		t.Fatalf("reloaded key %v %v", again, err)
	}
	o := Opening{Kind: Vehicle, ID: "WVWZZZ1JZXW000001", Key: seq(0)}
	o.Pseudonym = Of(o.Key, o.Kind, o.ID)
	r := k.Record(o, time.UnixMilli(1))
	if bytes.Contains(r.Sealed, []byte(o.ID)) || bytes.Contains(r.Sealed, o.Key) {
		t.Fatal("sealed value holds the id or the key in clear")
	}
	got, err := k.OpenRecord(o.Pseudonym, r)
	if err != nil || got.ID != o.ID || !bytes.Equal(got.Key, o.Key) {
		t.Fatalf("open: %+v %v", got, err)
	}
	other, _ := GenerateSealKey()
	if _, err := other.OpenRecord(o.Pseudonym, r); !errors.Is(err, ErrSealed) {
		t.Errorf("opened under another key: %v", err)
	}
	moved := Of(seq(9), Vehicle, "x")
	r2 := *r
	r2.Pseudonym = moved
	if _, err := k.OpenRecord(moved, &r2); !errors.Is(err, ErrSealed) {
		t.Errorf("a sealed value moved to another pseudonym opened: %v", err)
	}
	bad := *r
	bad.Sealed = append([]byte(nil), r.Sealed...)
	bad.Sealed[len(bad.Sealed)-1] ^= 1
	if _, err := k.OpenRecord(o.Pseudonym, &bad); !errors.Is(err, ErrSealed) {
		t.Errorf("a tampered value opened: %v", err)
	}
}

// TestDirectory: lookups both ways, and Delete forgets both.
func TestDirectory(t *testing.T) {
	d := NewDirectory()
	o := Opening{Kind: Vehicle, ID: "v1", Key: seq(0)}
	o.Pseudonym = Of(o.Key, o.Kind, o.ID)
	d.Put(o)
	if got, ok := d.Lookup(Vehicle, "v1"); !ok || got.Pseudonym != o.Pseudonym {
		t.Fatal("lookup")
	}
	if _, ok := d.Lookup(Account, "v1"); ok {
		t.Fatal("the account v1 found")
	}
	if _, ok := d.Delete(o.Pseudonym); !ok || d.Len() != 0 {
		t.Fatal("delete")
	}
	if _, err := (Static{d}).Open(t.Context(), o.Pseudonym); !errors.Is(err, ErrUnknown) {
		t.Fatalf("erased pseudonym opened: %v", err)
	}
	if !bytes.Equal(Derived("s").NewKey(Vehicle, "v1"), Derived("s").NewKey(Vehicle, "v1")) ||
		bytes.Equal(Random{}.NewKey(Vehicle, "v1"), Random{}.NewKey(Vehicle, "v1")) {
		t.Fatal("key sources")
	}
}

func FuzzOpen(f *testing.F) {
	k, _ := NewSealKey(make([]byte, SealKeySize))
	o := Opening{Kind: Vehicle, ID: "v", Key: seq(0)}
	o.Pseudonym = Of(o.Key, o.Kind, o.ID)
	f.Add(k.Seal(o))
	f.Add([]byte("MCP1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := k.Open(o.Pseudonym, Vehicle, b)
		if err == nil && got.Check() != nil {
			t.Fatal("opened to a wrong opening")
		}
	})
}
