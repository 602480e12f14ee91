package settlement_test

import (
	"testing"
	"time"

	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/settlement"
)

func tid(n int) string {
	return "00000000000000000000000000000" + string(rune('0'+n/100%10)) + string(rune('0'+n/10%10)) + string(rune('0'+n%10))
}

func owner(id string, specs ...settlement.TransferSpec) settlement.TransferBatch {
	return settlement.TransferBatch{CallerRole: string(avro.RoleOwner), CallerID: id, Transfers: specs, RequestedAt: time.UnixMilli(1_800_000_000_000).UTC()}
}

// step delivers one batch and returns its results.
func (x *sim) step(t *testing.T, b settlement.TransferBatch) []settlement.Transfer {
	t.Helper()
	tx, res, err := x.s.book.Transfers(b)
	if err != nil {
		t.Fatal(err)
	}
	x.s.commit(tx, x.l)
	return res
}

func (x *sim) settle() {
	x.l.flush(len(x.l.queue))
	x.deliverEntries(len(x.l.entries))
}

func reasons(res []settlement.Transfer) []string {
	var out []string
	for _, r := range res {
		out = append(out, string(r.Status)+"/"+r.Reason)
	}
	return out
}

func TestTransferRules(t *testing.T) {
	// Accounts acct-000 (100 points) and acct-001 (107); no faults.
	newBook := func() *sim {
		x := newSim(t, 1, 2, 1)
		x.rng = nil
		return x
	}
	a, b := "acct-000", "acct-001"
	single := func(n int, from, to string, amount int64) settlement.TransferSpec {
		return settlement.TransferSpec{ID: tid(n), Debit: from, Credit: to, Amount: amount}
	}
	t.Run("debits must not exceed credits, reservations count", func(t *testing.T) {
		x := newBook()
		if r := x.step(t, owner(a, single(1, a, b, 60))); r[0].Status != settlement.TransferAccepted {
			t.Fatal(reasons(r))
		}
		// 60 reserved, not yet in the book: 41 more is too much.
		if r := x.step(t, owner(a, single(2, a, b, 41))); r[0].Reason != settlement.ReasonExceedsCredits {
			t.Fatal(reasons(r))
		}
		x.settle()
		acc, _ := x.s.book.Account(a)
		if acc.Balance != 40 || acc.Reserved != 0 {
			t.Fatalf("%+v", acc)
		}
	})
	t.Run("same id same body: first result; other body: refused, no effect", func(t *testing.T) {
		x := newBook()
		x.step(t, owner(a, single(1, a, b, 10)))
		r := x.step(t, owner(a, single(1, a, b, 10)))
		if r[0].Status != settlement.TransferAccepted || len(x.l.queue) != 1 {
			t.Fatal(reasons(r), len(x.l.queue))
		}
		r = x.step(t, owner(a, single(1, a, b, 11)))
		if r[0].Reason != settlement.ReasonExistsDifferent || len(x.l.queue) != 1 {
			t.Fatal(reasons(r))
		}
		if st, _ := x.s.book.Transfer(tid(1)); st.Amount != 10 {
			t.Fatalf("stored %+v", st)
		}
	})
	t.Run("owner debits only its own account", func(t *testing.T) {
		x := newBook()
		if r := x.step(t, owner(b, single(1, a, b, 10))); r[0].Reason != settlement.ReasonForbidden {
			t.Fatal(reasons(r))
		}
	})
	t.Run("linked chain fails as a whole", func(t *testing.T) {
		x := newBook()
		s1 := single(1, a, b, 50)
		s1.Flags = ledger.TransferLinked
		r := x.step(t, owner(a, s1, single(2, a, b, 51)))
		if r[0].Reason != settlement.ReasonLinkedEventFailed || r[1].Reason != settlement.ReasonExceedsCredits || len(x.l.queue) != 0 {
			t.Fatal(reasons(r))
		}
		if acc, _ := x.s.book.Account(a); acc.Reserved != 0 {
			t.Fatalf("failed chain left %d reserved", acc.Reserved)
		}
	})
	t.Run("pending, post by the payee; the payer cannot void", func(t *testing.T) {
		x := newBook()
		p := single(1, a, b, 30)
		p.Flags, p.TimeoutMs = ledger.TransferPending, 60_000
		x.step(t, owner(a, p))
		x.settle()
		void := settlement.TransferSpec{ID: tid(2), PendingID: tid(1), Flags: ledger.TransferVoidPending}
		if r := x.step(t, owner(a, void)); r[0].Reason != settlement.ReasonForbidden {
			t.Fatal(reasons(r))
		}
		post := settlement.TransferSpec{ID: tid(3), PendingID: tid(1), Flags: ledger.TransferPostPending}
		if r := x.step(t, owner(b, post)); r[0].Status != settlement.TransferAccepted {
			t.Fatal(reasons(r))
		}
		again := settlement.TransferSpec{ID: tid(4), PendingID: tid(1), Flags: ledger.TransferVoidPending}
		if r := x.step(t, owner(b, again)); r[0].Reason != settlement.ReasonAlreadyPosted {
			t.Fatal(reasons(r))
		}
		x.settle()
		pa, _ := x.s.book.Account(a)
		pb, _ := x.s.book.Account(b)
		if pa.Balance != 70 || pa.Reserved != 0 || pb.Balance != 137 {
			t.Fatalf("%+v %+v", pa, pb)
		}
	})
	t.Run("a pending expires in ledger time; a post after that is refused", func(t *testing.T) {
		x := newBook()
		p := single(1, a, b, 30)
		p.Flags, p.TimeoutMs = ledger.TransferPending, 1000
		x.step(t, owner(a, p))
		x.settle()
		x.l.clockMs += 1000
		// An entry at the deadline moves ledger time: the pending expires.
		x.step(t, owner(b, single(2, b, a, 1)))
		x.settle()
		st, _ := x.s.book.Transfer(tid(1))
		if st.Pending != settlement.PendingExpired {
			t.Fatalf("%+v", st)
		}
		post := settlement.TransferSpec{ID: tid(3), PendingID: tid(1), Flags: ledger.TransferPostPending}
		if r := x.step(t, owner(b, post)); r[0].Reason != settlement.ReasonPendingExpired {
			t.Fatal(reasons(r))
		}
		x.settle()
		if acc, _ := x.s.book.Account(a); acc.Reserved != 0 || acc.Balance != 101 {
			t.Fatalf("%+v", acc)
		}
		last := x.l.entries[len(x.l.entries)-1]
		if last.ID != ledger.ExpirePrefix+tid(1) {
			t.Fatalf("last entry %+v", last)
		}
		if st, _ := x.s.book.Transfer(tid(1)); !st.Resolved || st.Resolution == nil || st.Resolution.LeafIndex != int64(len(x.l.entries)-1) {
			t.Fatalf("the expiry's proof is not kept: %+v", st)
		}
	})
	t.Run("the overdraft flag lets an account go below zero", func(t *testing.T) {
		x := newBook()
		ops := settlement.TransferBatch{CallerRole: string(avro.RoleOperator), CallerID: "ops", Transfers: []settlement.TransferSpec{single(1, "issuer", a, 500)}}
		if r := x.step(t, ops); r[0].Reason != settlement.ReasonExceedsCredits {
			t.Fatal(reasons(r))
		}
		tx, err := x.s.book.SetAccountFlags(avro.AccountFlags{Account: "issuer", Flags: int64(settlement.AllowOverdraft)})
		if err != nil {
			t.Fatal(err)
		}
		x.s.commit(tx, x.l)
		ops.Transfers[0].ID = tid(2)
		if r := x.step(t, ops); r[0].Status != settlement.TransferAccepted {
			t.Fatal(reasons(r))
		}
		x.settle()
		if acc, _ := x.s.book.Account("issuer"); acc.Balance != -500 {
			t.Fatalf("%+v", acc)
		}
		bal, _, _ := x.s.book.Totals()
		if minted, _ := x.s.book.Points(); bal != minted {
			t.Fatalf("sum %d != minted %d", bal, minted)
		}
	})
	t.Run("bad batches are bad input", func(t *testing.T) {
		x := newBook()
		for _, bb := range []settlement.TransferBatch{
			owner(a),
			owner(a, settlement.TransferSpec{ID: "XYZ", Debit: a, Credit: b, Amount: 1}),
			owner(a, single(1, a, b, 1), single(1, a, b, 1)),
			{CallerRole: "root", CallerID: "x", Transfers: []settlement.TransferSpec{single(1, a, b, 1)}},
		} {
			if _, _, err := x.s.book.Transfers(bb); err == nil {
				t.Errorf("%+v accepted", bb)
			}
		}
	})
}
