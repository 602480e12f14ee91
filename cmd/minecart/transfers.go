package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v4"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/daemon"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/settlement"
	settleapi "github.com/minecart/minecart/services/settlement/api"
)

// `minecart transfers ...`: an operator's transfers (docs/economy.md). The
// CLI writes the batch to the transfers topic as the operator named by
// --operator, as POST /v1/transfers does for an operator's token, and
// reads settlement's decision from its changelog.

func transfersCommand(stdout io.Writer) *ff.Command {
	var kf daemon.Kafka
	cmd := adminCommand("transfers", "move points between accounts (operators): create, post or void a pending one, get, list, account flags", &kf)
	var (
		id, from, to, pending, operator, account string
		amount, timeoutMs                        int64
		hold, asJSON, overdraft                  bool
		wait                                     time.Duration
	)
	common := func(fs *flag.FlagSet) {
		fs.StringVar(&operator, "operator", "cli", "the operator the transfer is made as (recorded in its state)")
		fs.DurationVar(&wait, "wait", 10*time.Second, "how long to wait for settlement's decision and the ledger entry")
		fs.BoolVar(&asJSON, "json", false, "print the transfer as JSON (the API's answer)")
	}
	idFlag := func(fs *flag.FlagSet) {
		fs.StringVar(&id, "id", "", "transfer id: 32 lowercase hex digits (default: a random one, printed)")
	}
	submit := func(ctx context.Context, a *admin, s settlement.TransferSpec) error {
		if s.ID == "" {
			var b [16]byte
			_, _ = rand.Read(b[:])
			s.ID = hex.EncodeToString(b[:])
		}
		if err := ledger.ValidTransferID(s.ID); err != nil {
			return err
		}
		t, err := a.table(ctx, pipelines.TopicSettlementLog)
		if err != nil {
			return err
		}
		defer t.Close()
		b := settlement.TransferBatch{CallerRole: string(avro.RoleOperator), CallerID: operator, RequestedAt: time.Now().UTC().Truncate(time.Millisecond),
			Transfers: []settlement.TransferSpec{s}}
		res, err := settleapi.Submit(ctx, a.producer, a.serde, t, b, wait, 20*time.Millisecond)
		if err != nil {
			return err
		}
		x := res[0]
		if x.Status == "" {
			fmt.Fprintf(stdout, "transfer %s sent; not decided within %v (see: minecart transfers get --id %s)\n", s.ID, wait, s.ID)
			return nil
		}
		if err := printTransfer(stdout, x, asJSON); err != nil {
			return err
		}
		if x.Status == settlement.TransferRejected {
			return fmt.Errorf("transfer %s rejected: %s", x.ID, x.Reason)
		}
		return nil
	}
	sub(cmd, &kf, "create", "transfer --amount points from --from to --to (--pending: a hold, resolved by post, void or --timeout)", func(fs *flag.FlagSet) {
		idFlag(fs)
		common(fs)
		fs.StringVar(&from, "from", "", "the debit account (an owner id, or partner:<id>)")
		fs.StringVar(&to, "to", "", "the credit account")
		fs.Int64Var(&amount, "amount", 0, "points, > 0")
		fs.BoolVar(&hold, "pending", false, "two-phase: reserve the points until post, void or the timeout")
		fs.Int64Var(&timeoutMs, "timeout-ms", 0, "pending: expire after this many ms of ledger time (0: never)")
	}, func(ctx context.Context, a *admin) error {
		s := settlement.TransferSpec{ID: id, Debit: from, Credit: to, Amount: amount, TimeoutMs: timeoutMs}
		if hold {
			s.Flags |= ledger.TransferPending
		}
		return submit(ctx, a, s)
	})
	for _, phase := range []struct {
		name, short string
		flag        ledger.TransferFlags
	}{{"post", "post a pending transfer: move its points to the credit account", ledger.TransferPostPending},
		{"void", "void a pending transfer: release its points", ledger.TransferVoidPending}} {
		sub(cmd, &kf, phase.name, phase.short, func(fs *flag.FlagSet) {
			idFlag(fs)
			common(fs)
			fs.StringVar(&pending, "pending-id", "", "the pending transfer's id")
		}, func(ctx context.Context, a *admin) error {
			return submit(ctx, a, settlement.TransferSpec{ID: id, PendingID: pending, Flags: phase.flag})
		})
	}
	sub(cmd, &kf, "get", "show a transfer and its ledger entry", func(fs *flag.FlagSet) {
		fs.StringVar(&id, "id", "", "transfer id")
		fs.BoolVar(&asJSON, "json", false, "print the transfer as JSON (the API's answer)")
	}, func(ctx context.Context, a *admin) error {
		if err := ledger.ValidTransferID(id); err != nil {
			return err
		}
		t, err := a.table(ctx, pipelines.TopicSettlementLog)
		if err != nil {
			return err
		}
		defer t.Close()
		x, ok, err := settlement.ReadTransfer(t, id)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("no transfer %s", id)
		}
		return printTransfer(stdout, x, asJSON)
	})
	sub(cmd, &kf, "list", "list transfers, newest first", func(fs *flag.FlagSet) {
		fs.StringVar(&account, "account", "", "only those with this account on either side")
	}, func(ctx context.Context, a *admin) error {
		t, err := a.table(ctx, pipelines.TopicSettlementLog)
		if err != nil {
			return err
		}
		defer t.Close()
		list, err := settleapi.ListTransfers(t, account)
		rows := make([][]any, len(list))
		for i, x := range list {
			rows[i] = []any{x.ID, x.Debit, x.Credit, x.Amount, x.Flags, x.Status, cmpOr(string(x.Pending), "-"), cmpOr(x.Reason, "-")}
		}
		return errors.Join(printTable(stdout, "ID DEBIT CREDIT AMOUNT FLAGS STATUS PENDING REASON", rows), err)
	})
	sub(cmd, &kf, "account-flags", "set an account's flags (--allow-overdraft: its debits may exceed its credits)", func(fs *flag.FlagSet) {
		fs.StringVar(&account, "account", "", "the account")
		fs.BoolVar(&overdraft, "allow-overdraft", false, "let transfers take the account below zero (an issuer's account)")
		fs.StringVar(&operator, "operator", "cli", "the operator setting them")
	}, func(ctx context.Context, a *admin) error {
		if account == "" {
			return errors.New("--account is required")
		}
		var f settlement.AccountFlags
		if overdraft {
			f |= settlement.AllowOverdraft
		}
		if err := settleapi.SetAccountFlags(ctx, a.producer, a.serde, account, f, operator, time.Now()); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "account %s: flags %d (allow_overdraft %v)\n", account, f, overdraft)
		return nil
	})
	return cmd
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func printTransfer(w io.Writer, x settlement.Transfer, asJSON bool) error {
	if asJSON {
		e := json.NewEncoder(w)
		e.SetIndent("", "  ")
		return e.Encode(settleapi.TransferAnswer(x))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "transfer %s: %s", x.ID, x.Status)
	if x.Reason != "" {
		fmt.Fprintf(&b, " (%s)", x.Reason)
	}
	fmt.Fprintf(&b, "\n  %d points %s -> %s, flags %s", x.Amount, x.Debit, x.Credit, x.Flags)
	if x.PendingID != "" {
		fmt.Fprintf(&b, ", pending %s", x.PendingID)
	}
	if x.Pending != "" {
		fmt.Fprintf(&b, "\n  pending state %s", x.Pending)
		if x.ExpiresAtMs > 0 {
			fmt.Fprintf(&b, ", expires at ledger time %s", time.UnixMilli(x.ExpiresAtMs).UTC().Format(time.RFC3339Nano))
		}
		if x.ResolvedBy != "" {
			fmt.Fprintf(&b, ", resolved by %s", x.ResolvedBy)
		}
	}
	if x.Entry != nil {
		fmt.Fprintf(&b, "\n  ledger entry: leaf %d, block %d, tree size %d, root %x", x.Entry.LeafIndex, x.Entry.BlockHeight, x.Entry.TreeSize, x.Entry.Root)
	}
	_, err := fmt.Fprintln(w, b.String())
	return err
}
