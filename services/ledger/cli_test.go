package ledger

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCommands runs verify, prove and check-proof on an export file, as
// the CLI would, and checks verify fails on a tampered export.
func TestCommands(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	keyFile := filepath.Join(dir, "ledger.key")
	priv, err := LoadOrCreateKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := NewSigner("minecart/ledger", priv)
	_, blocks := smallBook(t, s)
	exp := filepath.Join(dir, "book.mcl")
	if err := os.WriteFile(exp, export(t, blocks), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	run := func(args ...string) error {
		out.Reset()
		return Command(ctx, args, &out)
	}
	if err := run("verify", "--file", exp, "--pubkey", keyFile+".pub"); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if !strings.Contains(out.String(), "7 entries (5 credits, 1 debits, 1 adjustments)") {
		t.Errorf("verify output %q", out.String())
	}
	if err := run("prove", "v3/2026-11-02", "--file", exp, "--pubkey", keyFile+".pub"); err != nil {
		t.Fatalf("prove: %v", err)
	}
	bundle := filepath.Join(dir, "proof.json")
	if err := os.WriteFile(bundle, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run("check-proof", bundle, "--pubkey", keyFile+".pub"); err != nil || !strings.Contains(out.String(), "proof valid: credit \"v3/2026-11-02\" (+100) is leaf 2") {
		t.Fatalf("check-proof: %v %q", err, out.String())
	}
	if err := run("pubkey", "--key", keyFile); err != nil || !strings.Contains(out.String(), "minecart/ledger+") {
		t.Errorf("pubkey: %v %q", err, out.String())
	}
	other := filepath.Join(dir, "other.key")
	if _, err := LoadOrCreateKey(other); err != nil {
		t.Fatal(err)
	}
	if err := run("verify", "--file", exp, "--pubkey", other+".pub"); err == nil || !strings.Contains(err.Error(), "block 0: header signature") {
		t.Errorf("verify with another key: %v", err)
	}
	if err := run("check-proof", bundle, "--pubkey", other+".pub"); err == nil {
		t.Error("check-proof with another key passed")
	}
	if err := run("nope"); err == nil {
		t.Error("unknown subcommand accepted")
	}
}
