package ledger_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
)

// The golden values below were written by the ledger's own signed-note code
// before it moved to golang.org/x/mod/sumdb/note: the checkpoint text, the
// verifier key and the export file (testdata/book-v1.mcl, smallBook under
// testKey(1)) must stay byte for byte what it wrote, and books written then
// must still verify.
const (
	goldenOrigin      = "minecart.test/ledger"
	goldenVerifierKey = "minecart.test/ledger+978335bf+AYqI4910CfGV/VLbLTy6XXLKZwm/HZQSG/N0iAG0D29c"
	goldenCheckpoint  = "minecart.test/ledger\n7\nEvmGIa+u5L+nLesq4Nomv5Vg+xw3g4kxpUHz8eXRXEc=\n\n" +
		"\u2014 minecart.test/ledger l4M1vxCha2Jh7ww5afWX0Sm5AnTNoYSvjb0MpYCL5n923Iy1x50S3kLpirqmYTS8KCa8TgvlChJSaRW4tPUjfHiMpAI=\n"
	// goldenWitness is a C2SP tlog-cosignature line by another key (a
	// witness): verifiers must tolerate it after the ledger's signature.
	goldenWitness = "\u2014 witness.example/w1 GAQfKgAAAABrSdIAJiFHUlMATlcfHYjOH4LEb9Bwp2Jquh/lAkVKrxCRxS94NuuQhKOQX4E4rd22SV3hXAr7EorLjALcIDghxP3KAg==\n"
)

func TestGoldenCheckpoint(t *testing.T) {
	s, err := ledger.NewSigner(goldenOrigin, ledgertest.Key(1))
	if err != nil {
		t.Fatal(err)
	}
	if vk := s.VerifierKey(); vk != goldenVerifierKey {
		t.Errorf("verifier key %q, want %q", vk, goldenVerifierKey)
	}
	_, blocks := ledgertest.SmallBook(t, s)
	if cp := blocks[2].Checkpoint; cp != goldenCheckpoint {
		t.Errorf("checkpoint %q, want %q", cp, goldenCheckpoint)
	}
	old, err := os.ReadFile("testdata/book-v1.mcl")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ledgertest.Export(t, blocks), old) {
		t.Error("export differs from the one written before")
	}
	sum, err := ledger.Verify(context.Background(), ledger.ReadExport(bytes.NewReader(old)), s.Public())
	if err != nil || sum.Entries != 7 || sum.Checkpoint != goldenCheckpoint {
		t.Errorf("old export: %+v, %v", sum, err)
	}
	pub, err := ledger.ParsePublicKey(goldenVerifierKey)
	if err != nil || !pub.Equal(s.Public()) {
		t.Errorf("verifier key parses to %x, %v", pub, err)
	}
	cp, err := ledger.VerifyCheckpoint(goldenCheckpoint+goldenWitness, s.Public())
	if err != nil || cp.Size != 7 || cp.Origin != goldenOrigin || cp.Root != blocks[2].Header.Root {
		t.Errorf("checkpoint with a witness cosignature: %+v, %v", cp, err)
	}
	body, _, _ := strings.Cut(goldenCheckpoint, "\n\n")
	if _, err := ledger.VerifyCheckpoint(body+"\n\n"+goldenWitness, s.Public()); err == nil {
		t.Error("checkpoint with only a witness signature verified")
	}
}
