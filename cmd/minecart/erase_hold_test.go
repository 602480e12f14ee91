package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/pseudonym"
	"github.com/minecart/minecart/services/pseudonym/follow"
	"github.com/minecart/minecart/services/settlement"
	"github.com/minecart/minecart/services/settlement/api"
	"github.com/minecart/minecart/services/settlement/settletest"
)

// TestEraseWithOpenHold (real broker, real ledger and settlement stages):
// `minecart accounts erase` refuses, naming it, while the owner has a
// redemption whose hold is open (CONFIRMED, the partner has not acked)
// and, after the partner's FAILED ack voided it, while the owner has an
// open pending transfer; the refused runs change nothing (the account's
// key stays, no erasure entry). Once both settled, the erasure goes
// through, and the voids name the account by the hold's pseudonym: no
// second key was ever made for the account, and none is left.
func TestEraseWithOpenHold(t *testing.T) {
	if testing.Short() {
		t.Skip("embedded pipeline")
	}
	env := settletest.Start(t, "acme")
	const owner = "owner-00042"
	env.Fund(owner, 1000)
	env.WaitBalance(owner, 1000)
	env.PutItem("acme", "coffee", 50, nil)
	srv := env.API(10 * time.Second)
	code, red, err := settletest.Post(srv, "erase-hold-1", api.RedemptionBody{Owner: owner, Partner: "acme", ItemID: "coffee", Quantity: 1})
	if err != nil || code >= 300 {
		t.Fatalf("redeem: %d %v", code, err)
	}
	env.Wait(30*time.Second, func() bool { r, _ := env.Redemption(red.ID); return r.Status == settlement.StatusConfirmed },
		func() string { r, _ := env.Redemption(red.ID); return "redemption " + string(r.Status) })

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	keyFile := filepath.Join(t.TempDir(), "pseudonyms.key")
	if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(env.SealKey)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	seal, err := pseudonym.LoadSealKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	brokers := strings.Join(env.Brokers, ",")
	var out bytes.Buffer
	erase := func() error {
		out.Reset()
		return run(ctx, []string{"accounts", "erase", "--brokers", brokers, "--owner", owner, "--pseudonym-key", keyFile, "--timeout", "30s"}, &out, io.Discard)
	}
	accountKey := func() (string, bool) {
		dir, err := follow.Snapshot(ctx, env.Cfg, seal, nil)
		if err != nil {
			t.Fatal(err)
		}
		o, ok := dir.Lookup(pseudonym.Account, owner)
		return o.Pseudonym, ok
	}
	pseud, ok := accountKey()
	if !ok {
		t.Fatal("the owner's account has no pseudonym key")
	}
	refused := func(what string, want ...string) {
		t.Helper()
		err := erase()
		if !errors.Is(err, ErrOpenHolds) {
			t.Fatalf("%s: erase: %v, want ErrOpenHolds", what, err)
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: the refusal does not name %q: %v", what, w, err)
			}
		}
		if p, ok := accountKey(); !ok || p != pseud {
			t.Fatalf("%s: a refused erasure touched the key", what)
		}
	}
	refused("open redemption hold", red.ID, "partner acme", "50 points", "CONFIRMED", "expires ")

	// The partner fails the order: settlement voids the hold.
	ack := avro.PartnerAck{RedemptionID: red.ID, Partner: "acme", Status: avro.AckStatusFailed, Reason: "out of coffee", AckedMs: time.Now()}
	v, err := env.Serde.Marshal(&ack)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Producer.ProduceSync(ctx, pipelines.TopicPartnerAcks, []byte(red.ID), v); err != nil {
		t.Fatal(err)
	}
	env.Wait(30*time.Second, func() bool { r, _ := env.Redemption(red.ID); return r.Status == settlement.StatusFailed },
		func() string { r, _ := env.Redemption(red.ID); return "redemption " + string(r.Status) })

	// An operator's pending transfer from the owner is an open hold too.
	const pend, void = "000000000000000000000000000000e1", "000000000000000000000000000000e2"
	tr := func(args ...string) {
		t.Helper()
		if err := run(ctx, append([]string{"transfers", args[0], "--brokers", brokers}, args[1:]...), io.Discard, io.Discard); err != nil {
			t.Fatalf("transfers %v: %v", args, err)
		}
	}
	tr("create", "--id", pend, "--from", owner, "--to", "bob", "--amount", "30", "--pending")
	refused("open pending transfer", "pending transfer "+pend, "30 points")
	tr("void", "--id", void, "--pending-id", pend)
	env.WaitBalance(owner, 1000)

	if err := erase(); err != nil {
		t.Fatalf("erase after the holds settled: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "pseudonym keys destroyed") {
		t.Errorf("erase: %s", out.String())
	}
	if _, ok := accountKey(); ok {
		t.Fatal("the account still has a key")
	}
	// Every transfer entry naming the account's side used the one pseudonym.
	recs, err := readEntries(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, e := range recs {
		if (e.Kind == ledger.KindTransfer || e.Kind == ledger.KindErasure) && (e.Account == pseud || e.CounterAccount == pseud) {
			seen++
		}
	}
	if seen < 5 { // hold, its void, the pending transfer, its void, the erasure
		t.Errorf("%d entries name the account's pseudonym, want at least 5", seen)
	}
}

// readEntries decodes every leaf of the blocks topic.
func readEntries(ctx context.Context, env *settletest.Env) ([]ledger.Entry, error) {
	var out []ledger.Entry
	for _, r := range readTopic(env.T.(*testing.T), ctx, env.Cfg, pipelines.TopicLedgerBlocks) {
		var b avro.LedgerBlock
		if err := env.Serde.Unmarshal(r.Value, &b); err != nil {
			return nil, err
		}
		for _, raw := range b.Entries {
			e, err := ledger.DecodeEntry(raw)
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
	}
	return out, nil
}
