package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
)

// TestVerifyPolicy: `ledger verify --policy --cosigned --state` accepts
// a checkpoint cosigned by the quorum and keeps it, accepts the next one
// that extends it, and refuses (without touching the state) one below
// quorum, one with a forged cosignature and one inconsistent with the
// last seen.
func TestVerifyPolicy(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "ledger.key")
	priv, err := ledger.LoadOrCreateKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := ledger.NewSigner("minecart/ledger", priv)
	_, blocks := ledgertest.SmallBook(t, s)
	book := filepath.Join(dir, "book.mcl")
	if err := os.WriteFile(book, ledgertest.Export(t, blocks), 0o644); err != nil {
		t.Fatal(err)
	}
	var signers []note.Signer
	policy := "log " + s.VerifierKey() + "\n"
	for i := 0; i < 3; i++ {
		sg, vkey := ledgertest.Cosigner(t, fmt.Sprintf("witness.test/w%d", i+1), byte(20+i))
		signers = append(signers, sg)
		policy += fmt.Sprintf("witness w%d %s http://127.0.0.1:%d\n", i+1, vkey, 9000+i)
	}
	policy += "group g 2 w1 w2 w3\nquorum g\n"
	policyFile := filepath.Join(dir, "policy.txt")
	if err := os.WriteFile(policyFile, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	lv, _ := note.NewVerifier(s.VerifierKey())
	cosign := func(cp string, by ...int) string {
		var sg []note.Signer
		for _, i := range by {
			sg = append(sg, signers[i])
		}
		return ledgertest.Cosign(t, cp, lv, sg...)
	}
	state := filepath.Join(dir, "seen.txt")
	run := func(cosigned string) (string, error) {
		f := filepath.Join(dir, "cosigned.txt")
		if err := os.WriteFile(f, []byte(cosigned), 0o644); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		err := ledgerCLI(context.Background(), []string{"verify", "--file", book, "--pubkey", keyFile + ".pub",
			"--policy", policyFile, "--cosigned", f, "--state", state}, &out)
		return out.String(), err
	}
	first := cosign(blocks[1].Checkpoint, 0, 1)
	if out, err := run(first); err != nil || !strings.Contains(out, "cosigned by w1, w2 (quorum 2 of 3 witnesses)") {
		t.Fatalf("first: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(state); string(b) != first {
		t.Fatalf("state %q", b)
	}
	// Refused, the state untouched.
	last := blocks[len(blocks)-1].Checkpoint
	other := cosign(blocks[0].Checkpoint, 2)
	forked := ledger.NewBook()
	rel := ledger.Release{TimestampMs: 2 * ledgertest.DayMs}
	for _, v := range []string{"v1", "v2", "v3", "v4", "v5", "v6", "v7"} {
		rel.Entries = append(rel.Entries, ledgertest.Credit(v, 2, 101))
	}
	fork, _, _, err := forked.Append(rel, 7, s)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, text string
		want       error
	}{
		{"below quorum", cosign(last, 2), ledger.ErrQuorum},
		{"forged cosignature", cosign(last, 0, 1) + other[len(blocks[0].Checkpoint):], ledger.ErrForgedCosignature},
		{"fork of the last seen", cosign(fork[0].Checkpoint, 0, 1, 2), ledger.ErrNotConsistent},
		{"rollback", cosign(blocks[0].Checkpoint, 0, 1), ledger.ErrNotConsistent},
	} {
		out, err := run(c.text)
		if !errors.Is(err, c.want) || !strings.Contains(out, "NOT accepted") {
			t.Errorf("%s: %v, want %v\n%s", c.name, err, c.want, out)
		}
		if b, _ := os.ReadFile(state); string(b) != first {
			t.Fatalf("%s: the state moved", c.name)
		}
	}
	next := cosign(last, 1, 2)
	if out, err := run(next); err != nil || !strings.Contains(out, "consistent with the last checkpoint seen") {
		t.Fatalf("next: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(state); string(b) != next {
		t.Fatalf("state not advanced")
	}
}
