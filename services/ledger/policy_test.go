package ledger_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
)

// cosigVKey is a cosignature v1 verifier key for name (key from seed).
func cosigVKey(name string, seed byte) string {
	pub := ledgertest.Key(seed).Public().(ed25519.PublicKey)
	return fmt.Sprintf("%s+%s+%s", name, keyID(name, pub), base64.StdEncoding.EncodeToString(append([]byte{0x04}, pub...)))
}

// keyID is SHA-256(name || "\n" || 0x04 || pub)[:4] in hex (c2sp.org/tlog-cosignature).
func keyID(name string, pub ed25519.PublicKey) string {
	h := sha256.Sum256(append(append([]byte(name+"\n"), 0x04), pub...))
	return fmt.Sprintf("%08x", binary.BigEndian.Uint32(h[:4]))
}

// TestParsePolicy: the policies the ledger accepts and refuses, and what
// it keeps of them.
func TestParsePolicy(t *testing.T) {
	s, _ := ledger.NewSigner("minecart/ledger", ledgertest.Key(1))
	w1, w2, w3 := cosigVKey("w.test/1", 11), cosigVKey("w.test/2", 12), cosigVKey("w.test/3", 13)
	good := fmt.Sprintf("# comment\nlog %s\n\nwitness a %s http://a:1/\nwitness b %s https://b\nwitness c %s http://c:3 # trailing\ngroup g 2 a b c\nquorum g\n", s.VerifierKey(), w1, w2, w3)
	p, err := ledger.ParsePolicy([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if p.Threshold() != 2 || len(p.Witnesses) != 3 || p.Witnesses[0].URL != "http://a:1" || p.Witnesses[2].Name != "c" || p.Log != s.VerifierKey() {
		t.Errorf("parsed %+v", p)
	}
	if err := p.CheckLog(s.VerifierKey()); err != nil {
		t.Error(err)
	}
	other, _ := ledger.NewSigner("minecart/ledger", ledgertest.Key(2))
	if err := p.CheckLog(other.VerifierKey()); err == nil {
		t.Error("another log key accepted")
	}
	parts := strings.SplitN(w1, "+", 3)
	badID := parts[0] + "+00000000+" + parts[2]
	for _, c := range []struct{ name, text, want string }{
		{"no quorum", fmt.Sprintf("witness a %s http://a\n", w1), "quorum"},
		{"unknown keyword", "quorum none\nwitnesses a\n", "unknown keyword"},
		{"witness without URL", fmt.Sprintf("witness a %s\nquorum a\n", w1), "invalid witness"},
		{"bad URL", fmt.Sprintf("witness a %s ftp://a\nquorum a\n", w1), "want http(s)"},
		{"log key type", fmt.Sprintf("log %s\nwitness a %s http://a\nquorum a\n", w1[:len(w1)-2]+"xx", w1), "log key"},
		{"ed25519 key, not cosignature v1", fmt.Sprintf("witness a %s http://a\nquorum a\n", s.VerifierKey()), "type 0x04"},
		{"wrong key id", fmt.Sprintf("witness a %s http://a\nquorum a\n", badID), "type 0x04"},
		{"same key twice", fmt.Sprintf("witness a %s http://a\nwitness b %s http://b\ngroup g 1 a b\nquorum g\n", w1, w1), "same key"},
		{"threshold above members", fmt.Sprintf("witness a %s http://a\ngroup g 2 a\nquorum g\n", w1), "threshold"},
		{"unknown member", fmt.Sprintf("witness a %s http://a\ngroup g 1 a z\nquorum g\n", w1), "unknown component"},
		{"two log lines", fmt.Sprintf("log %s\nlog %s\nquorum none\n", s.VerifierKey(), s.VerifierKey()), "log line"},
		{"keyword as name", fmt.Sprintf("witness all %s http://a\nquorum all\n", w1), "invalid witness name"},
	} {
		if _, err := ledger.ParsePolicy([]byte(c.text)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
	}
	if p, err := ledger.ParsePolicy([]byte("quorum none\n")); err != nil || p.Threshold() != 0 || !p.Satisfied([]byte("x")) {
		t.Errorf("quorum none: %v", err)
	}
}

// FuzzParsePolicy: any text parses or fails, never panics; a parsed
// policy's witnesses have keys and http(s) URLs.
func FuzzParsePolicy(f *testing.F) {
	w1 := cosigVKey("w.test/1", 11)
	f.Add([]byte(fmt.Sprintf("witness a %s http://a\ngroup g any a\nquorum g\n", w1)))
	f.Add([]byte("quorum none\n"))
	f.Add([]byte("group g 0\nquorum g\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		p, err := ledger.ParsePolicy(text)
		if err != nil {
			return
		}
		for _, w := range p.Witnesses {
			if w.Verifier == nil || !(strings.HasPrefix(w.URL, "http://") || strings.HasPrefix(w.URL, "https://")) {
				t.Fatalf("witness %+v", w)
			}
		}
		_ = p.Satisfied(text)
	})
}
