package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
	"github.com/minecart/minecart/services/witness"
)

// TestVerifyEvidence: an operator holding the ledger key shows a witness
// a second tree of the size it cosigned; the witness refuses it and keeps
// evidence; `ledger verify --evidence FILE` names the split view and
// which checkpoint is not the book's, and fails. The honest checkpoint
// alone (--checkpoint) passes.
func TestVerifyEvidence(t *testing.T) {
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
	honest := blocks[1].Checkpoint // size 5
	forked := ledger.NewBook()
	rel := ledger.Release{TimestampMs: 2 * ledgertest.DayMs}
	for _, v := range []string{"v1", "v2", "v3", "v4", "v5"} {
		rel.Entries = append(rel.Entries, ledgertest.Credit(v, 2, 101))
	}
	fork, _, _, err := forked.Append(rel, 5, s)
	if err != nil {
		t.Fatal(err)
	}

	wdir := filepath.Join(dir, "witness")
	w, err := witness.New(witness.Config{Dir: wdir, Name: "witness.test/w1", Logs: []string{s.VerifierKey()}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.AddCheckpoint([]byte("old 0\n\n" + honest)); err != nil {
		t.Fatal(err)
	}
	var we *witness.Error
	if _, err := w.AddCheckpoint([]byte("old 5\n\n" + fork[0].Checkpoint)); !errors.As(err, &we) || we.Code != 422 {
		t.Fatalf("fork: %v, want 422", err)
	}
	files, _ := filepath.Glob(filepath.Join(wdir, "evidence", "*.txt"))
	if len(files) != 1 {
		t.Fatalf("%d evidence files", len(files))
	}
	honestFile := filepath.Join(dir, "honest.txt")
	if err := os.WriteFile(honestFile, []byte(honest), 0o644); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	err = ledgerCLI(context.Background(), []string{"verify", "--file", book, "--pubkey", keyFile + ".pub", "--evidence", files[0]}, &out)
	if !errors.Is(err, errFork) {
		t.Fatalf("verify --evidence: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"(cosigned by the witness): size 5 root " + blocks[1].Header.Root.String() + " is the book's",
		"FORK: checkpoint " + files[0] + " (refused by the witness: same-size-other-root): the ledger key signed size 5 root " + fork[0].Header.Root.String(),
		"split view: the ledger key signed two trees of size 5",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("verify --evidence output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := ledgerCLI(context.Background(), []string{"verify", "--file", book, "--pubkey", keyFile + ".pub", "--checkpoint", honestFile}, &out); err != nil {
		t.Fatalf("verify --checkpoint honest: %v\n%s", err, out.String())
	}
}
