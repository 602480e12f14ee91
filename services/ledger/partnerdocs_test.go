package ledger

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/ledger/merkle"
)

// crc64Avro is the algorithm as docs/partners.md writes it.
func crc64Avro(b []byte) uint64 {
	const empty = 0xc15d213aa4d7a795
	var table [256]uint64
	for i := range table {
		fp := uint64(i)
		for range 8 {
			fp = (fp >> 1) ^ (empty & -(fp & 1))
		}
		table[i] = fp
	}
	fp := uint64(empty)
	for _, c := range b {
		fp = (fp >> 8) ^ table[(fp^uint64(c))&0xff]
	}
	return fp
}

// TestPartnerDocsExamples checks every worked example of docs/partners.md,
// "Implementing a partner node: the exact answers", against the code.
func TestPartnerDocsExamples(t *testing.T) {
	b, err := os.ReadFile("../../docs/partners.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	has := func(what, s string) {
		t.Helper()
		if !strings.Contains(doc, s) {
			t.Errorf("docs/partners.md lacks %s: %s", what, s)
		}
	}

	// Fingerprints: the algorithm on "int", and on CreditSettled's
	// canonical form (fingerprints.json) equal to what the Serde frames.
	has("the fingerprint of \"int\"", fmt.Sprintf("0x%016x", crc64Avro([]byte(`"int"`))))
	fpj, err := os.ReadFile("../../schemas/testdata/fingerprints.json")
	if err != nil {
		t.Fatal(err)
	}
	var fps map[string]struct{ Canonical string }
	if err := json.Unmarshal(fpj, &fps); err != nil {
		t.Fatal(err)
	}
	fp := crc64Avro([]byte(fps[schemas.CreditSettled].Canonical))
	if want, _ := schemas.Fingerprint(schemas.CreditSettled); fp != want {
		t.Fatalf("the documented algorithm gives %016x, the Serde %016x", fp, want)
	}
	has("CreditSettled's fingerprint", fmt.Sprintf("0x%016x", fp))
	hdr := append([]byte{0xc3, 0x01}, binary.LittleEndian.AppendUint64(nil, fp)...)
	var spaced []string
	for _, c := range hdr {
		spaced = append(spaced, fmt.Sprintf("%02x", c))
	}
	has("the single-object header", strings.Join(spaced, " "))

	// The redemption id that binds a pseudonymous debit to its owner.
	rid := sha256.Sum256([]byte("owner-00000\x00order-1"))
	has("the redemption id example", "`order-1`: `"+hex.EncodeToString(rid[:16])+"`")

	// The checkpoint, its signed message and the keys.
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	s, err := NewSigner("minecart/ledger", priv)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := hex.DecodeString("0108" + "00000020" + hex.EncodeToString([]byte("erasure/000102030405060708090a0b")) + "00000000" +
		"00000023" + hex.EncodeToString([]byte("p1:57fab9b22d6e0a9dd925d3142f46189d")) +
		"0000001e" + hex.EncodeToString([]byte("erasure requested by the owner")) + "0000019adc5be000")
	if _, err := DecodeEntry(leaf); err != nil {
		t.Fatal(err)
	}
	h := Header{TreeSize: 1, Root: merkle.HashLeaf(leaf), TimestampMs: 1764633600000, Clock: ClockWall}
	sig, cp, err := s.Sign(&h)
	if err != nil {
		t.Fatal(err)
	}
	has("the public key", base64.StdEncoding.EncodeToString(pub))
	has("the verifier key", s.VerifierKey())
	has("the root", h.Root.String())
	has("the checkpoint", strings.ReplaceAll(cp, "\n", `\n`))
	body, _, _ := strings.Cut(cp, "\n\n")
	body += "\n"
	has("the signed message", strings.ReplaceAll(body, "\n", `\n`))
	msgSig := ed25519.Sign(priv, []byte(body))
	has("the note signature", hex.EncodeToString(msgSig))
	if !ed25519.Verify(pub, []byte(body), msgSig) || ed25519.Verify(pub, []byte(strings.TrimSuffix(body, "\n")), msgSig) {
		t.Fatal("the signed message is not the body with its final newline")
	}
	kid := sha256.Sum256(append([]byte("minecart/ledger\n\x01"), pub...))
	if line := cp[strings.Index(cp, "— minecart/ledger ")+len("— minecart/ledger "):]; true {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(line, "\n"))
		if err != nil || !strings.HasPrefix(string(raw), string(kid[:4])) || string(raw[4:]) != string(msgSig) {
			t.Fatalf("signature line %q: key id %x || signature expected", line, kid[:4])
		}
	}
	if _, err := VerifyCheckpoint(cp, pub); err != nil {
		t.Fatal(err)
	}
	// The header: widths, signedness, bytes, signature.
	m := h.Marshal()
	want := "6d636c6564676572" + "01" + "0000000000000000" + strings.Repeat("00", 32) + "0000000000000001" + h.Root.String() +
		"0000000000000000" + "0000000000000000" + "0000019adc5be000" + "01"
	if hex.EncodeToString(m) != want || len(m) != 114 {
		t.Fatalf("header %x, want %s", m, want)
	}
	has("the header's root line", h.Root.String())
	has("the header's last line", "0000000000000000 0000000000000000 0000019adc5be000 01")
	has("the header signature", hex.EncodeToString(sig))
	if !ed25519.Verify(pub, m, sig) {
		t.Fatal("header signature")
	}
	neg := h
	neg.TimestampMs = -1
	if got := hex.EncodeToString(neg.Marshal()[105:113]); got != "ffffffffffffffff" {
		t.Fatalf("timestamp -1 encodes as %s, want two's complement", got)
	}
}

// TestPartnerSchemasHaveNoPositions: no record a partner may read has a
// field that could hold a position (docs/partners.md, "No locations").
func TestPartnerSchemasHaveNoPositions(t *testing.T) {
	bad := []string{"lat", "lon", "lng", "latitude", "longitude", "position", "location", "geo", "gps", "coord"}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			if name, ok := x["name"].(string); ok {
				l := strings.ToLower(name)
				for _, b := range bad {
					if l == b || strings.HasPrefix(l, b) || strings.HasSuffix(l, "_"+b) {
						t.Errorf("%s: field %q looks like a position", path, name)
					}
				}
			}
			for k, e := range x {
				walk(path+"."+k, e)
			}
		case []any:
			for _, e := range x {
				walk(path, e)
			}
		}
	}
	for _, name := range []string{schemas.CreditSettled, schemas.Redemption, schemas.PartnerAck, schemas.LedgerEntry, schemas.LedgerBlock} {
		text, err := schemas.Schema(name)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal([]byte(text), &v); err != nil {
			t.Fatal(err)
		}
		if m, ok := v.(map[string]any); ok {
			walk(name, m["fields"])
		}
	}
}
