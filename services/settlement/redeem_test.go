package settlement

import (
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ledger"
)

// ledgerTransfer stands in for the ledger: it appends the transfer
// request (checked as the ledger checks it), stamped at or after its
// NotBeforeMs.
func (f *fixture) ledgerTransfer(r avro.TransferRequest, at time.Time) *Tx {
	f.t.Helper()
	e, err := ledger.EntryFromTransfer(&r)
	if err != nil {
		f.t.Fatalf("the ledger refuses %+v: %v", r, err)
	}
	if nb := time.UnixMilli(r.NotBeforeMs).UTC(); at.Before(nb) {
		at = nb
	}
	return f.entry(Entry{Kind: KindTransfer, Account: e.Account, CounterAccount: e.CounterAccount, Amount: e.Amount,
		RequestID: e.ID, PendingID: e.Ref, TransferFlags: e.TransferFlags, TimeoutMs: e.TimeoutMs, AppendedAt: at})
}

// lastTransfer is the last transfer request the book wrote.
func (f *fixture) lastTransfer() avro.TransferRequest {
	f.t.Helper()
	if len(f.out.Transfers) == 0 {
		f.t.Fatal("no transfer requested")
	}
	return f.out.Transfers[len(f.out.Transfers)-1]
}

// holdFixture: alice has 100 points, acme sells mugs at 30 (stock 5), and
// alice redeemed one: its hold is requested.
func holdFixture(t *testing.T) (*fixture, Redemption) {
	f := newFixtureWith(t, DefaultPolicy())
	f.commit(f.b.Bind(Binding{VehicleID: "v1", Owner: "alice", UpdatedAt: t0}))
	f.credit("v1", 100)
	f.item("acme", "mug", 30, ptr(int64(5)))
	r := f.redeem("alice", "k1", "acme", "mug", 1)
	return f, r
}

func (f *fixture) want(id string, status Status, reason string, bal, reserved, partner int64) {
	f.t.Helper()
	r, _ := f.b.Redemption(id)
	b, res := f.balance("alice")
	p, _ := f.balance(PartnerAccount("acme"))
	if r.Status != status || r.Reason != reason || b != bal || res != reserved || p != partner {
		f.t.Fatalf("redemption %s %q, alice %d reserved %d, acme %d; want %s %q, %d, %d, %d",
			r.Status, r.Reason, b, res, p, status, reason, bal, reserved, partner)
	}
}

func TestRedemptionHoldPosted(t *testing.T) {
	f, r := holdFixture(t)
	hold := RedemptionHoldID(r.ID, "acme", "mug", 1, 30)
	req := f.lastTransfer()
	if r.Status != StatusPending || r.Hold != hold || len(f.out.Debits) != 0 || len(f.out.Transfers) != 1 ||
		req.RequestID != hold || req.DebitAccount != "alice" || req.CreditAccount != "partner:acme" || req.Amount != 30 ||
		req.Flags != int64(ledger.TransferPending) || req.TimeoutMs != DefaultPolicy().FulfilTimeout.Milliseconds() {
		t.Fatalf("redemption %+v, hold request %+v, debits %d", r, req, len(f.out.Debits))
	}
	f.want(r.ID, StatusPending, "", 100, 30, 0)
	f.ledgerTransfer(req, t0.Add(time.Second))
	f.want(r.ID, StatusConfirmed, "", 100, 30, 0)
	if len(f.out.Orders) != 1 || f.out.Orders[0].Debit == nil || f.out.Orders[0].Debit.LeafIndex != 1 {
		t.Fatalf("orders %+v", f.out.Orders)
	}
	f.commit(f.b.Ack(PartnerAck{RedemptionID: r.ID, Partner: "acme", Status: avro.AckStatusFulfilled, Reference: "o-1", AckedAt: t0.Add(time.Minute)}))
	post := f.lastTransfer()
	if post.RequestID != RedemptionResolveID(hold, true) || post.PendingID != hold || post.Flags != int64(ledger.TransferPostPending) {
		t.Fatalf("post request %+v", post)
	}
	f.want(r.ID, StatusFulfilled, "", 100, 30, 0)
	// The same ack again (a partner's redelivery) decides nothing.
	if tx := f.commit(f.b.Ack(PartnerAck{RedemptionID: r.ID, Partner: "acme", Status: avro.AckStatusFulfilled})); len(tx.Transfers) != 0 || len(tx.Changes()) != 0 {
		t.Fatalf("repeated ack: %+v", tx.Output)
	}
	f.ledgerTransfer(post, t0.Add(2*time.Minute))
	f.want(r.ID, StatusFulfilled, "", 70, 0, 30)
	if x, _ := f.b.Transfer(hold); x.Pending != PendingPosted || !x.Resolved || x.Resolution == nil {
		t.Fatalf("hold %+v", x)
	}
	// The day's statement: the points moved to acme's account (not
	// burned): the partner line counts them, redeemed does not.
	f.commit(f.b.Tick(t0.Add(24*time.Hour)), nil)
	st := f.out.Statements[len(f.out.Statements)-1]
	if st.Redeemed != 0 || len(st.Partners) != 1 || st.Partners[0] != (avro.PartnerTotal{Partner: "acme", Redemptions: 1, Points: 30}) ||
		!st.InvariantOk || st.BalanceSum != 100 {
		t.Fatalf("statement %+v", st)
	}
	if len(f.out.Alerts) != 0 {
		t.Fatalf("alerts %v", f.out.Alerts)
	}
}

func TestRedemptionHoldVoided(t *testing.T) {
	f, r := holdFixture(t)
	f.ledgerTransfer(f.lastTransfer(), t0)
	f.commit(f.b.Ack(PartnerAck{RedemptionID: r.ID, Partner: "acme", Status: avro.AckStatusFailed, Reason: "no mugs", AckedAt: t0}))
	void := f.lastTransfer()
	if void.RequestID != RedemptionResolveID(r.Hold, false) || void.Flags != int64(ledger.TransferVoidPending) {
		t.Fatalf("void request %+v", void)
	}
	f.want(r.ID, StatusFailed, "no mugs", 100, 30, 0)
	f.ledgerTransfer(void, t0.Add(time.Second))
	f.want(r.ID, StatusFailed, "no mugs", 100, 0, 0)
	if it, _ := f.b.Item(ItemKey("acme", "mug")); it.Sold != 0 {
		t.Fatalf("sold %d after the void, want 0", it.Sold)
	}
}

func TestRedemptionHoldExpires(t *testing.T) {
	deadline := t0.Add(DefaultPolicy().FulfilTimeout)
	t.Run("tick", func(t *testing.T) {
		f, r := holdFixture(t)
		f.ledgerTransfer(f.lastTransfer(), t0)
		f.commit(f.b.Tick(deadline.Add(-time.Millisecond)), nil)
		f.want(r.ID, StatusConfirmed, "", 100, 30, 0)
		f.commit(f.b.Tick(deadline), nil)
		exp := f.lastTransfer()
		if exp.RequestID != ledger.ExpirePrefix+r.Hold || exp.NotBeforeMs != deadline.UnixMilli() {
			t.Fatalf("expiry request %+v", exp)
		}
		f.want(r.ID, StatusRejected, ReasonPartnerTimeout, 100, 30, 0)
		// The ack after the expiry is refused: no post, an alert.
		n := len(f.out.Transfers)
		tx := f.commit(f.b.Ack(PartnerAck{RedemptionID: r.ID, Partner: "acme", Status: avro.AckStatusFulfilled, AckedAt: deadline}))
		if len(f.out.Transfers) != n || !hasAlert(tx.Alerts, "late_ack") {
			t.Fatalf("late ack: transfers %d -> %d, alerts %v", n, len(f.out.Transfers), tx.Alerts)
		}
		f.ledgerTransfer(exp, t0)
		f.want(r.ID, StatusRejected, ReasonPartnerTimeout, 100, 0, 0)
		if it, _ := f.b.Item(ItemKey("acme", "mug")); it.Sold != 0 {
			t.Fatalf("sold %d after the expiry, want 0", it.Sold)
		}
	})
	t.Run("ledger time passed before the ack", func(t *testing.T) {
		f, r := holdFixture(t)
		f.ledgerTransfer(f.lastTransfer(), t0)
		// The entry of a block at the deadline moves ledger time: the hold
		// expires with it, before any tick.
		f.entry(Entry{Kind: KindCredit, VehicleID: "v2", Amount: 1, AppendedAt: deadline})
		f.want(r.ID, StatusRejected, ReasonPartnerTimeout, 100, 30, 0)
		tx := f.commit(f.b.Ack(PartnerAck{RedemptionID: r.ID, Partner: "acme", Status: avro.AckStatusFulfilled, AckedAt: deadline}))
		if len(tx.Transfers) != 0 || !hasAlert(tx.Alerts, "late_ack") {
			t.Fatalf("late ack: %+v", tx.Output)
		}
	})
}

// TestLateHoldVoided: the ledger appends a hold after settlement gave up
// on it (ledger timeout): settlement voids it at once and the points are
// never taken; the void releases no reservation twice.
func TestLateHoldVoided(t *testing.T) {
	f, r := holdFixture(t)
	hold := f.lastTransfer()
	f.commit(f.b.Tick(t0.Add(DefaultPolicy().DebitTimeout+time.Millisecond)), nil)
	f.want(r.ID, StatusRejected, ReasonLedgerTimeout, 100, 0, 0)
	f.ledgerTransfer(hold, t0.Add(time.Hour))
	void := f.lastTransfer()
	if void.RequestID != RedemptionResolveID(r.Hold, false) || !hasAlert(f.out.Alerts, "late_hold") || len(f.out.Orders) != 0 {
		t.Fatalf("late hold: void %+v alerts %v orders %d", void, f.out.Alerts, len(f.out.Orders))
	}
	f.ledgerTransfer(void, t0.Add(time.Hour))
	f.want(r.ID, StatusRejected, ReasonLedgerTimeout, 100, 0, 0)
	if hasAlert(f.out.Alerts, "reserved_negative") || hasAlert(f.out.Alerts, "overdraft") {
		t.Fatalf("alerts %v", f.out.Alerts)
	}
}

// TestHoldNotResolvableByAPI: a redemption's hold is resolved by the
// partner's ack or expiry only, never by a transfer request.
func TestHoldNotResolvableByAPI(t *testing.T) {
	f, r := holdFixture(t)
	f.ledgerTransfer(f.lastTransfer(), t0)
	for i, caller := range []TransferBatch{
		{CallerRole: string(avro.RolePartner), CallerID: "acme"},
		{CallerRole: string(avro.RoleOperator), CallerID: "ops"},
	} {
		caller.Transfers = []TransferSpec{{ID: "0000000000000000000000000000abc" + string(rune('0'+i)), Flags: ledger.TransferPostPending, PendingID: r.Hold}}
		tx, res, err := f.b.Transfers(caller)
		if err != nil || res[0].Status != TransferRejected || res[0].Reason != ReasonForbidden {
			t.Fatalf("%s posts the hold: %+v %v", caller.CallerRole, res, err)
		}
		f.commit(tx, nil)
	}
	f.want(r.ID, StatusConfirmed, "", 100, 30, 0)
}

// TestHoldRestore: the changelog restores the book at every step of a hold's
// life (a settlement restart), and what is replayed after it (the same
// request, the same ack) decides nothing again.
func TestHoldRestore(t *testing.T) {
	f, r := holdFixture(t)
	restore := func(step string) {
		t.Helper()
		b2, _ := NewBook(DefaultPolicy())
		keys := make([]string, 0, len(f.log))
		for k := range f.log {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if err := b2.Restore(k, f.log[k]); err != nil {
				t.Fatal(err)
			}
		}
		b2.Restored()
		for _, m := range []struct {
			name      string
			got, want any
		}{{"accounts", b2.accounts, f.b.accounts}, {"items", b2.items, f.b.items}, {"redemptions", b2.redemptions, f.b.redemptions},
			{"transfers", b2.transfers, f.b.transfers}, {"open", b2.openPending, f.b.openPending}, {"meta", b2.meta, f.b.meta}} {
			if !reflect.DeepEqual(m.got, m.want) {
				t.Fatalf("%s: restored %s\n got %v\nwant %v", step, m.name, m.got, m.want)
			}
		}
		f.b = b2 // go on with the restored book
	}
	restore("requested")
	if tx := f.commit(f.b.Redeem(avro.RedemptionRequest{IdempotencyKey: "k1", Owner: "alice", Partner: "acme", ItemID: "mug", Quantity: 1, RequestedMs: t0})); len(tx.Transfers) != 0 {
		t.Fatal("replayed request asked for a second hold")
	}
	f.ledgerTransfer(f.out.Transfers[0], t0)
	restore("confirmed")
	f.commit(f.b.Ack(PartnerAck{RedemptionID: r.ID, Partner: "acme", Status: avro.AckStatusFulfilled, AckedAt: t0}))
	restore("acked")
	if tx := f.commit(f.b.Ack(PartnerAck{RedemptionID: r.ID, Partner: "acme", Status: avro.AckStatusFulfilled, AckedAt: t0})); len(tx.Transfers) != 0 {
		t.Fatal("replayed ack asked for a second post")
	}
	f.ledgerTransfer(f.lastTransfer(), t0)
	restore("posted")
	f.want(r.ID, StatusFulfilled, "", 70, 0, 30)
	if len(f.out.Transfers) != 2 {
		t.Fatalf("%d transfer requests, want 2 (hold, post)", len(f.out.Transfers))
	}
}
