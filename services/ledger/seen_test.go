package ledger_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	tdnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
	"github.com/minecart/minecart/services/ledger/merkle"
)

// cosigner is a test witness: a cosignature v1 signer of seed.
func cosigner(t *testing.T, name string, seed byte) note.Signer {
	t.Helper()
	k := ledgertest.Key(seed)
	pub := k.Public().(ed25519.PublicKey)
	skey := fmt.Sprintf("PRIVATE+KEY+%s+%s+%s", name, keyID(name, pub), base64.StdEncoding.EncodeToString(append([]byte{0x04}, k.Seed()...)))
	s, err := tdnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// cosign appends the cosignatures of signers to a signed checkpoint.
func cosign(t *testing.T, cp string, signers ...note.Signer) string {
	t.Helper()
	out := cp
	for _, s := range signers {
		n, err := note.Open([]byte(cp), note.VerifierList(mustVerifier(t, cp)))
		if err != nil {
			t.Fatal(err)
		}
		b, err := note.Sign(&note.Note{Text: n.Text}, s)
		if err != nil {
			t.Fatal(err)
		}
		out += string(b[strings.LastIndex(string(b[:len(b)-1]), "\n")+1:])
	}
	return out
}

var logSigner *ledger.Signer

func mustVerifier(t *testing.T, cp string) note.Verifier {
	v, err := note.NewVerifier(logSigner.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// grownBook appends n credits named prefix+i to book, one block.
func grownBook(t *testing.T, b *ledger.Book, s *ledger.Signer, n int, prefix string) string {
	t.Helper()
	rel := ledger.Release{TimestampMs: 2 * ledgertest.DayMs, Clock: ledger.ClockEvent}
	for i := 0; i < n; i++ {
		rel.Entries = append(rel.Entries, ledgertest.Credit(fmt.Sprintf("%s%06d", prefix, int(b.Size())+i), 2, 10))
	}
	blks, _, _, err := b.Append(rel, n, s)
	if err != nil {
		t.Fatal(err)
	}
	return blks[len(blks)-1].Checkpoint
}

// TestCheckPublished: what every client runs on a published checkpoint:
// below quorum, a forged cosignature and a checkpoint inconsistent with
// the last one seen (a fork, a rollback, a split view) are refused; the
// honest sequence passes and is kept in the state file.
func TestCheckPublished(t *testing.T) {
	s, err := ledger.NewSigner(ledgertest.Origin, ledgertest.Key(1))
	if err != nil {
		t.Fatal(err)
	}
	logSigner = s
	ws := []note.Signer{cosigner(t, "w.test/1", 11), cosigner(t, "w.test/2", 12), cosigner(t, "w.test/3", 13)}
	var policy strings.Builder
	fmt.Fprintf(&policy, "log %s\n", s.VerifierKey())
	for i, w := range ws {
		fmt.Fprintf(&policy, "witness w%d %s http://127.0.0.1:%d\n", i+1, cosigVKey(w.Name(), byte(11+i)), 9000+i)
	}
	policy.WriteString("group g 2 w1 w2 w3\nquorum g\n")
	p, err := ledger.ParsePolicy([]byte(policy.String()))
	if err != nil {
		t.Fatal(err)
	}
	pub := s.Public()

	book, fork := ledger.NewBook(), ledger.NewBook()
	cp10 := grownBook(t, book, s, 10, "v")
	grownBook(t, fork, s, 10, "v") // the same first 10 leaves
	cp25 := grownBook(t, book, s, 15, "v")
	fork25 := grownBook(t, fork, s, 15, "x") // same size, other leaves
	cp40 := grownBook(t, book, s, 15, "v")
	fork40 := grownBook(t, fork, s, 15, "x")
	prove := func(b *ledger.Book) ledger.ConsistencyProof {
		return func(first, second uint64) ([]merkle.Hash, error) { return b.Tree().ConsistencyProof(first, second) }
	}
	// A forged line: w3's cosignature of another checkpoint under this one.
	other := cosign(t, cp10, ws[2])
	forged := cosign(t, cp25, ws[0], ws[1]) + other[len(cp10):]

	for _, c := range []struct {
		name, text, last string
		prove            *ledger.Book
		want             error
		signers          string
	}{
		{name: "first, 2 of 3", text: cosign(t, cp10, ws[0], ws[1]), signers: "w1 w2"},
		{name: "first, 3 of 3", text: cosign(t, cp10, ws...), signers: "w1 w2 w3"},
		{name: "below quorum", text: cosign(t, cp10, ws[2]), want: ledger.ErrQuorum},
		{name: "log signature only", text: cp10, want: ledger.ErrQuorum},
		{name: "forged cosignature", text: forged, want: ledger.ErrForgedCosignature},
		{name: "extends the last", text: cosign(t, cp25, ws[1], ws[2]), last: cp10, prove: book, signers: "w2 w3"},
		{name: "same as the last", text: cosign(t, cp25, ws[0], ws[2]), last: cosign(t, cp25, ws[0], ws[1]), signers: "w1 w3"},
		{name: "fork of the last", text: cosign(t, fork40, ws[0], ws[1]), last: cp25, prove: fork, want: ledger.ErrNotConsistent},
		{name: "fork, honest proof", text: cosign(t, fork40, ws[0], ws[1]), last: cp25, prove: book, want: ledger.ErrNotConsistent},
		{name: "split view", text: cosign(t, fork25, ws[0], ws[1]), last: cp25, want: ledger.ErrNotConsistent},
		{name: "rollback", text: cosign(t, cp10, ws[0], ws[1]), last: cp40, want: ledger.ErrNotConsistent},
		{name: "extends further", text: cosign(t, cp40, ws[0], ws[1]), last: cp10, prove: book, signers: "w1 w2"},
	} {
		pr := prove(book)
		if c.prove != nil {
			pr = prove(c.prove)
		}
		_, signers, err := p.CheckPublished(c.text, pub, c.last, pr)
		if c.want != nil {
			if !errors.Is(err, c.want) {
				t.Errorf("%s: %v, want %v", c.name, err, c.want)
			}
			continue
		}
		if err != nil || strings.Join(signers, " ") != c.signers {
			t.Errorf("%s: %v %v, want %s", c.name, signers, err, c.signers)
		}
	}

	// The state file: absent, then the last accepted checkpoint.
	path := filepath.Join(t.TempDir(), "seen.txt")
	if last, err := ledger.ReadSeen(path); err != nil || last != "" {
		t.Fatalf("no state: %q %v", last, err)
	}
	text := cosign(t, cp40, ws...)
	if err := ledger.WriteSeen(path, text); err != nil {
		t.Fatal(err)
	}
	if last, err := ledger.ReadSeen(path); err != nil || last != text {
		t.Fatalf("state: %q %v", last, err)
	}
}
