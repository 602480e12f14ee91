package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/minecart/minecart/services/settlement/settletest"
)

// TestTransfersCommands: an operator's transfers through the CLI reach
// the real settlement and ledger stages: a transfer, a hold posted, a
// hold voided, a refusal, get, list and the overdraft flag.
func TestTransfersCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("embedded pipeline")
	}
	env := settletest.Start(t)
	env.Fund("alice", 100)
	env.WaitBalance("alice", 100)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	var out bytes.Buffer
	cli := func(args ...string) error {
		out.Reset()
		return run(ctx, append([]string{"transfers", args[0], "--brokers", strings.Join(env.Brokers, ",")}, args[1:]...), &out, io.Discard)
	}
	const t1, t2, t3, t4, t5 = "000000000000000000000000000000c1", "000000000000000000000000000000c2", "000000000000000000000000000000c3",
		"000000000000000000000000000000c4", "000000000000000000000000000000c5"
	if err := cli("create", "--id", t1, "--from", "alice", "--to", "bob", "--amount", "30"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "transfer "+t1+": COMMITTED") || !strings.Contains(out.String(), "ledger entry: leaf 1") {
		t.Errorf("create: %q", out.String())
	}
	if err := cli("create", "--id", t2, "--from", "alice", "--to", "partner:acme", "--amount", "50", "--pending", "--timeout-ms", "600000"); err != nil {
		t.Fatal(err)
	}
	if err := cli("post", "--id", t3, "--pending-id", t2); err != nil {
		t.Fatal(err)
	}
	if err := cli("void", "--id", t4, "--pending-id", t2); err == nil || !strings.Contains(err.Error(), "pending_transfer_already_posted") {
		t.Errorf("void after post: %v", err)
	}
	if err := cli("create", "--id", t5, "--from", "alice", "--to", "bob", "--amount", "21"); err == nil || !strings.Contains(err.Error(), "exceeds_credits") {
		t.Errorf("overdraw: %v", err)
	}
	if err := cli("get", "--id", t2, "--json"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"pending_state": "POSTED"`) {
		t.Errorf("get: %s", out.String())
	}
	env.WaitBalance("partner:acme", 50)
	if err := cli("list", "--account", "alice"); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "\n"); n != 6 { // header + 5 transfers
		t.Errorf("list: %d lines:\n%s", n, out.String())
	}
	if err := cli("account-flags", "--account", "issuer", "--allow-overdraft"); err != nil {
		t.Fatal(err)
	}
	env.Wait(10*time.Second, func() bool { return env.Account("issuer").Flags != 0 }, func() string { return "issuer's flags" })
	if err := cli("create", "--from", "issuer", "--to", "alice", "--amount", "1000"); err != nil {
		t.Fatal(err)
	}
	if a := env.Account("issuer"); a.Balance != -1000 {
		t.Errorf("issuer %+v", a)
	}
	env.WaitBalance("alice", 1020)
}
