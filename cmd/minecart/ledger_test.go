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

// TestVerifyForgedTopic: `ledger verify` on a blocks topic where someone
// appended a block not signed by the ledger key (valid Avro, correct link)
// reports that block's signature.
func TestVerifyForgedTopic(t *testing.T) {
	brokers := kafkatest.Broker(t)
	signer, _ := ledger.NewSigner(ledgertest.Origin, ledgertest.Key(1))
	book, blocks := ledgertest.SmallBook(t, signer)
	forger, _ := ledger.NewSigner(ledgertest.Origin, ledgertest.Key(66))
	rel := ledger.Release{TimestampMs: 1_900_000_000_000, Clock: ledger.ClockWall, Entries: []ledger.Entry{{Kind: ledger.KindAdjustment, ID: "gift", Account: "mallory", Amount: 1_000_000, Reason: "bonus"}}}
	forged, _, _, err := book.Append(rel, 10, forger)
	if err != nil {
		t.Fatal(err)
	}
	var recs []kafka.Output
	for _, b := range append(blocks, forged...) {
		v, err := schemas.SingleObject().Marshal(b.Avro())
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, kafka.Output{Topic: pipelines.TopicLedgerBlocks, Key: []byte(fmt.Sprint(b.Header.Height)), Value: v})
	}
	kafkatest.Produce(t, brokers, recs...)
	pubFile := filepath.Join(t.TempDir(), "ledger.pub")
	if err := os.WriteFile(pubFile, []byte(ledger.EncodePublicKey(signer.Public())), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = ledgerCLI(context.Background(), []string{"verify", "--brokers", strings.Join(brokers, ","), "--pubkey", pubFile}, &out)
	var inc *ledger.Inconsistency
	if !errors.As(err, &inc) || inc.Block != 3 || !strings.Contains(inc.What, "signature") {
		t.Fatalf("verify: %v, want block 3 signature", err)
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
