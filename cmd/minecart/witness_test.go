package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
)

// TestWitnessCommand: `minecart witness` serves the API on its address,
// creates its key (0600) in the state directory, cosigns a ledger
// checkpoint, and stops cleanly on cancel.
func TestWitnessCommand(t *testing.T) {
	signer, _ := ledger.NewSigner(ledgertest.Origin, ledgertest.Key(1))
	_, blocks := ledgertest.SmallBook(t, signer)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "ledger.vkey")
	if err := os.WriteFile(keyFile, []byte(signer.VerifierKey()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var stdout bytes.Buffer
	done := make(chan error, 1)
	addr := freeAddr(t)
	go func() {
		done <- run(ctx, []string{"witness", "--addr", addr, "--state-dir", filepath.Join(dir, "w"), "--name", "witness.test/cli", "--log", "@" + keyFile}, &stdout, io.Discard)
	}()
	body := "old 0\n\n" + blocks[len(blocks)-1].Checkpoint
	var resp *http.Response
	var err error
	for {
		resp, err = http.Post("http://"+addr+"/add-checkpoint", "text/plain", strings.NewReader(body))
		if err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("witness exited: %v", err)
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	sig, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(sig), "— witness.test/cli ") {
		t.Fatalf("add-checkpoint: %s %q", resp.Status, sig)
	}
	if fi, err := os.Stat(filepath.Join(dir, "w", "witness.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("witness: %v", err)
	}
	if !strings.Contains(stdout.String(), "verifier key witness.test/cli+") {
		t.Errorf("stdout %q", stdout.String())
	}
}

// freeAddr returns a loopback address no listener holds right now (the
// witness command takes an address, not a listener).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
