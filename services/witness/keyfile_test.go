package witness_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/minecart/minecart/services/witness"
)

// TestKeyFiles: with KeyFile and MirrorKeyFile (a mounted Secret) the
// witness signs with those keys, creates no key in its state directory,
// and refuses to start when a file is missing.
func TestKeyFiles(t *testing.T) {
	l := newLog(t, 1)
	first := t.TempDir()
	w1, err := witness.New(witness.Config{Dir: first, Name: "witness.test/k", Logs: []string{l.signer.VerifierKey()}, Mirror: "http://127.0.0.1:1/ledger", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	cfg := witness.Config{Dir: state, Logs: []string{l.signer.VerifierKey()}, Mirror: "http://127.0.0.1:1/ledger", Logger: slog.New(slog.DiscardHandler),
		KeyFile: filepath.Join(first, "witness.key"), MirrorKeyFile: filepath.Join(first, "mirror.key")}
	w2, err := witness.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if w2.VerifierKey() != w1.VerifierKey() || w2.Mirror().VerifierKey() != w1.Mirror().VerifierKey() {
		t.Fatalf("keys %s %s, want %s %s", w2.VerifierKey(), w2.Mirror().VerifierKey(), w1.VerifierKey(), w1.Mirror().VerifierKey())
	}
	for _, f := range []string{"witness.key", "mirror.key"} {
		if _, err := os.Stat(filepath.Join(state, f)); err == nil {
			t.Errorf("%s created in the state directory", f)
		}
	}
	cfg.KeyFile = filepath.Join(state, "missing.key")
	if _, err := witness.New(cfg); err == nil {
		t.Fatal("a missing key file was not refused")
	}
}
