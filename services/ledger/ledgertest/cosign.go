package ledgertest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"testing"

	tdnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// Cosigner is a witness name's tlog-cosignature v1 signer under the fixed
// key Key(seed), and its verifier key (name+id+base64(0x04 || public
// key)) as a witness policy line names it.
func Cosigner(t testing.TB, name string, seed byte) (note.Signer, string) {
	t.Helper()
	k := Key(seed)
	pub := k.Public().(ed25519.PublicKey)
	h := sha256.Sum256(append(append([]byte(name+"\n"), 0x04), pub...))
	id := fmt.Sprintf("%08x", binary.BigEndian.Uint32(h[:4]))
	s, err := tdnote.NewSignerForCosignatureV1(fmt.Sprintf("PRIVATE+KEY+%s+%s+%s", name, id, base64.StdEncoding.EncodeToString(append([]byte{0x04}, k.Seed()...))))
	if err != nil {
		t.Fatal(err)
	}
	return s, fmt.Sprintf("%s+%s+%s", name, id, base64.StdEncoding.EncodeToString(append([]byte{0x04}, pub...)))
}

// Cosign appends the cosignature lines of signers to the signed
// checkpoint cp, which log (the log's verifier) opens.
func Cosign(t testing.TB, cp string, log note.Verifier, signers ...note.Signer) string {
	t.Helper()
	n, err := note.Open([]byte(cp), note.VerifierList(log))
	if err != nil {
		t.Fatal(err)
	}
	out := cp
	for _, s := range signers {
		b, err := note.Sign(&note.Note{Text: n.Text}, s)
		if err != nil {
			t.Fatal(err)
		}
		out += string(b[bytes.LastIndex(b[:len(b)-1], []byte("\n"))+1:])
	}
	return out
}
