package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
)

// TestCommands runs verify, prove and check-proof on an export file, as
// the CLI would, and checks verify fails on a tampered export.
func TestCommands(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	keyFile := filepath.Join(dir, "ledger.key")
	priv, err := ledger.LoadOrCreateKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := ledger.NewSigner("minecart/ledger", priv)
	_, blocks := ledgertest.SmallBook(t, s)
	exp := filepath.Join(dir, "book.mcl")
	if err := os.WriteFile(exp, ledgertest.Export(t, blocks), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	run := func(args ...string) error {
		out.Reset()
		return ledgerCLI(ctx, args, &out)
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
	if _, err := ledger.LoadOrCreateKey(other); err != nil {
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

// TestVerifyPoisonedTopic: `ledger verify` on a blocks topic where
// someone appended a duplicate, a forged block (valid Avro, correct link,
// not signed by the ledger key), an out-of-order block, garbage bytes, a
// signed header with other entries and a fork among the genuine blocks
// names each bad record (offset, height, reason), verifies the rest (the
// genuine book) and fails; `ledger export --pubkey` writes the genuine
// book, which verifies.
func TestVerifyPoisonedTopic(t *testing.T) {
	brokers := kafkatest.Broker(t)
	signer, _ := ledger.NewSigner(ledgertest.Origin, ledgertest.Key(1))
	p := ledgertest.Poison(t, signer)
	var recs []kafka.Output
	for i, b := range p.Records {
		v := []byte(fmt.Sprintf("garbage %d", i))
		if b != nil {
			var err error
			if v, err = schemas.SingleObject().Marshal(b.Avro()); err != nil {
				t.Fatal(err)
			}
		}
		recs = append(recs, kafka.Output{Topic: pipelines.TopicLedgerBlocks, Key: []byte(fmt.Sprint(i)), Value: v})
	}
	kafkatest.Produce(t, brokers, recs...)
	dir := t.TempDir()
	pubFile := filepath.Join(dir, "ledger.pub")
	if err := os.WriteFile(pubFile, []byte(ledger.EncodePublicKey(signer.Public())), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := ledgerCLI(context.Background(), []string{"verify", "--brokers", strings.Join(brokers, ","), "--pubkey", pubFile}, &out)
	var bad *ledger.BadRecords
	if !errors.As(err, &bad) || !strings.Contains(err.Error(), "NOT verified") {
		t.Fatalf("verify: %v, want the bad records", err)
	}
	t.Logf("verify: %v\n%s", err, out.String())
	last := p.Genuine[len(p.Genuine)-1].Header
	if !strings.Contains(out.String(), fmt.Sprintf("ledger verified: %d blocks, %d entries", len(p.Genuine), last.TreeSize)) ||
		!strings.Contains(out.String(), "root "+last.Root.String()) {
		t.Errorf("verify output %q: want the genuine book verified", out.String())
	}
	for i, r := range p.Reasons {
		if r == "" {
			continue
		}
		line := fmt.Sprintf("bad record: offset %d: %s: ", i, r)
		if p.Records[i] != nil {
			line = fmt.Sprintf("bad record: offset %d (height %d): %s: ", i, p.Records[i].Header.Height, r)
		}
		if !strings.Contains(out.String(), line) {
			t.Errorf("verify output does not name offset %d: want %q", i, line)
		}
	}
	if !strings.Contains(out.String(), "6 records skipped (1 undecodable, 1 duplicate, 1 forged, 1 out_of_order, 1 fork, 1 bad_entries)") {
		t.Errorf("verify output %q: want the count by reason", out.String())
	}

	exp := filepath.Join(dir, "book.mcl")
	out.Reset()
	if err := ledgerCLI(context.Background(), []string{"export", exp, "--brokers", strings.Join(brokers, ","), "--pubkey", pubFile}, &out); err != nil ||
		!strings.Contains(out.String(), fmt.Sprintf("exported %d blocks to %s (6 records skipped)", len(p.Genuine), exp)) {
		t.Fatalf("export: %v %q", err, out.String())
	}
	out.Reset()
	if err := ledgerCLI(context.Background(), []string{"verify", "--file", exp, "--pubkey", pubFile}, &out); err != nil {
		t.Errorf("verify of the verified export: %v %q", err, out.String())
	}
}

// ledgerCLI runs `minecart ledger args...` with its results on stdout.
func ledgerCLI(ctx context.Context, args []string, stdout io.Writer) error {
	return run(ctx, append([]string{"ledger"}, args...), stdout, io.Discard)
}

// TestVerifySince: `ledger verify --since FILE` proves the book extends a
// checkpoint saved earlier (an export of the book as it was, the head's
// JSON, the checkpoint text) and reports a fork or a truncated book as an
// Inconsistency naming both checkpoints.
func TestVerifySince(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "ledger.key")
	priv, err := ledger.LoadOrCreateKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := ledger.NewSigner("minecart/ledger", priv)
	_, blocks := ledgertest.SmallBook(t, s)
	// A fork signed by the same key: the book's first 5 entries, then
	// others (9 entries in blocks of 3).
	forked := ledger.NewBook()
	rel := ledger.Release{TimestampMs: 2 * ledgertest.DayMs}
	for _, v := range []string{"v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9"} {
		rel.Entries = append(rel.Entries, ledgertest.Credit(v, 2, 100))
	}
	fork, _, _, err := forked.Append(rel, 3, s)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	book := write("book.mcl", ledgertest.Export(t, blocks))
	forkFile := write("fork.mcl", ledgertest.Export(t, fork))
	prefix := write("prefix.mcl", ledgertest.Export(t, blocks[:1]))
	headJSON := write("head.json", fmt.Appendf(nil, `{"tree_size": 5, "checkpoint": %q}`, blocks[1].Checkpoint))
	text := write("checkpoint.txt", []byte(strings.TrimSuffix(blocks[0].Checkpoint, "\n")))
	forkEarlier := write("fork-head.json", fmt.Appendf(nil, `{"checkpoint": %q}`, fork[1].Checkpoint)) // 6 entries
	verify := func(file, since string) (string, error) {
		var out bytes.Buffer
		err := ledgerCLI(context.Background(), []string{"verify", "--file", file, "--pubkey", keyFile + ".pub", "--since", since}, &out)
		return out.String(), err
	}
	for _, since := range []string{prefix, headJSON, text, book} {
		if out, err := verify(book, since); err != nil || !strings.Contains(out, "consistent with the earlier checkpoint") {
			t.Errorf("since %s: %v %q", filepath.Base(since), err, out)
		}
	}
	for _, c := range []struct {
		what, file, since string
		block             uint64
		what2             string
	}{
		{"the book (7 entries) against the fork's checkpoint of 6", book, forkEarlier, 2, "does not extend"},
		{"the fork (9 entries) against the book as exported (7)", forkFile, book, 2, "does not extend"},
		{"a prefix of the book against its later head", prefix, headJSON, 1, "shorter"},
	} {
		_, err := verify(c.file, c.since)
		var inc *ledger.Inconsistency
		if !errors.As(err, &inc) || inc.Block != c.block || !strings.Contains(inc.What, c.what2) ||
			!strings.Contains(inc.Expected, "earlier checkpoint") || !strings.Contains(inc.Found, "head checkpoint") {
			t.Errorf("%s: %v, want an Inconsistency at block %d (%s) naming both checkpoints", c.what, err, c.block, c.what2)
			continue
		}
		t.Logf("%s: %v", c.what, err)
	}
	o, _ := ledger.NewSigner("minecart/ledger", ledgertest.Key(2))
	_, cp, err := o.Sign(&blocks[0].Header)
	if err != nil {
		t.Fatal(err)
	}
	other := write("other.txt", []byte(cp))
	if _, err := verify(book, other); err == nil || !strings.Contains(err.Error(), "earlier checkpoint") {
		t.Errorf("since a checkpoint of another key: %v", err)
	}
}
