package settlement_test

import (
	"testing"
	"time"

	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/settlement"
)

// FuzzTransferBatch feeds arbitrary bytes as a transfer batch record to a
// funded book, as the stage does. Invariants: it decodes or is refused;
// a batch is decided or refused as bad input; nothing panics; no account
// goes below zero; reservations never exceed balances; every accepted
// transfer's ledger request is one the ledger accepts.
func FuzzTransferBatch(f *testing.F) {
	serde := schemas.SingleObject()
	add := func(b settlement.TransferBatch) {
		v, err := serde.Marshal(b.Avro())
		if err != nil {
			f.Fatal(err)
		}
		f.Add(v)
	}
	at := time.UnixMilli(1_800_000_000_000).UTC()
	add(settlement.TransferBatch{CallerRole: "OWNER", CallerID: "acct-000", RequestedAt: at, Transfers: []settlement.TransferSpec{
		{ID: "0000000000000000000000000000000a", Debit: "acct-000", Credit: "acct-001", Amount: 5}}})
	add(settlement.TransferBatch{CallerRole: "OPERATOR", CallerID: "ops", RequestedAt: at, Transfers: []settlement.TransferSpec{
		{ID: "0000000000000000000000000000000b", Debit: "acct-001", Credit: "partner:fuelco", Amount: 50, Flags: ledger.TransferPending | ledger.TransferLinked, TimeoutMs: 10},
		{ID: "0000000000000000000000000000000c", PendingID: "0000000000000000000000000000000b", Flags: ledger.TransferPostPending}}})
	f.Fuzz(func(t *testing.T, value []byte) {
		var r avro.TransferBatch
		if err := serde.Unmarshal(value, &r); err != nil {
			return
		}
		x := newSim(t, 1, 2, 1)
		x.rng = nil
		tx, _, err := x.s.book.Transfers(settlement.TransferBatchFrom(&r))
		if err != nil {
			return
		}
		x.s.commit(tx, x.l)
		for _, req := range tx.Transfers {
			if _, err := ledger.EntryFromTransfer(&req); err != nil {
				t.Fatalf("accepted a transfer the ledger refuses: %v", err)
			}
		}
		x.l.flush(len(x.l.queue))
		x.deliverEntries(len(x.l.entries))
		x.check(0)
	})
}
