package settlement

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ledger/merkle"
)

// TestWireRoundTrip: the state's types convert to and from their records
// field by field (the records' own encoding is schemas/avro's, tested
// there).
func TestWireRoundTrip(t *testing.T) {
	proof := Proof{EntryID: "req-1", LeafIndex: 7, BlockHeight: 3, TreeSize: 9, Root: bytes.Repeat([]byte{1}, 32),
		LeafHash: bytes.Repeat([]byte{2}, 32), Leaf: []byte{1, 2, 3}, Checkpoint: "cp\n", Path: [][]byte{bytes.Repeat([]byte{3}, 32), bytes.Repeat([]byte{4}, 32)}}
	wproof := avro.LedgerProof{EntryID: "req-1", LeafIndex: 7, BlockHeight: 3, TreeSize: 9, Root: proof.Root,
		LeafHash: proof.LeafHash, Leaf: proof.Leaf, Checkpoint: "cp\n", AuditPath: proof.Path}
	same := func(name string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s:\n got %+v\nwant %+v", name, got, want)
		}
	}

	same("binding", BindingFrom(&avro.AccountBinding{VehicleID: "v1", Owner: "alice", UpdatedMs: t0}),
		Binding{VehicleID: "v1", Owner: "alice", UpdatedAt: t0})
	it := &avro.CatalogItem{Partner: "acme", ItemID: "mug", Title: "Mug", PricePoints: 30, Stock: ptr(int64(4)), Active: true, UpdatedMs: t0}
	same("item", ItemFrom(it), CatalogItem{Partner: "acme", ItemID: "mug", Title: "Mug", PricePoints: 30, Stock: ptr(int64(4)), Active: true, UpdatedAt: t0})
	it.Stock = nil
	same("item unlimited", ItemFrom(it), CatalogItem{Partner: "acme", ItemID: "mug", Title: "Mug", PricePoints: 30, Active: true, UpdatedAt: t0})
	r := Redemption{ID: "abc", IdempotencyKey: "k", Owner: "alice", Partner: "acme", ItemID: "mug", Quantity: 2, Points: 60,
		Status: StatusConfirmed, Seq: 4, RequestedAt: t0, UpdatedAt: t0, Debit: &proof}
	same("redemption", r.Avro(), &avro.Redemption{RedemptionID: "abc", IdempotencyKey: "k", Owner: "alice", Partner: "acme", ItemID: "mug",
		Quantity: 2, Points: 60, Status: avro.RedemptionStatusConfirmed, Seq: 4, RequestedMs: t0, UpdatedMs: t0, Debit: &wproof})
	r.Debit, r.Status, r.Reason, r.PartnerRef = nil, StatusFailed, ReasonOutOfStock, "ref"
	same("redemption failed", r.Avro(), &avro.Redemption{RedemptionID: "abc", IdempotencyKey: "k", Owner: "alice", Partner: "acme", ItemID: "mug",
		Quantity: 2, Points: 60, Status: avro.RedemptionStatusPartnerFailed, Reason: ReasonOutOfStock, Seq: 4, RequestedMs: t0, UpdatedMs: t0, PartnerRef: "ref"})
	cr := CreditSettled{Account: "alice", VehicleID: "v1", Day: "2026-11-24", ScoreID: "v1/2026-11-24", Points: 12, Proof: proof, SettledAt: t0}
	same("credit", cr.Avro(), &avro.CreditSettled{Account: "alice", VehicleID: "v1", Day: "2026-11-24", ScoreID: "v1/2026-11-24", Points: 12, Proof: wproof, SettledMs: t0,
		Kind: "credit", DayPoints: 12})
	cr.Kind, cr.Points, cr.Revision, cr.DayPoints = KindRescore, -5, 2, 7
	same("rescore", cr.Avro(), &avro.CreditSettled{Account: "alice", VehicleID: "v1", Day: "2026-11-24", ScoreID: "v1/2026-11-24", Points: -5, Proof: wproof, SettledMs: t0,
		Kind: "rescore", Revision: 2, DayPoints: 7})
	a := &avro.PartnerAck{RedemptionID: "abc", Partner: "acme", Status: avro.AckStatusFailed, Reason: "gone", AckedMs: t0}
	same("ack", AckFrom(a), PartnerAck{RedemptionID: "abc", Partner: "acme", Status: avro.AckStatusFailed, Reason: "gone", AckedAt: t0})
	same("partner total", PartnerTotal{Partner: "acme", Redemptions: 1, Points: 3}.Avro(), avro.PartnerTotal{Partner: "acme", Redemptions: 1, Points: 3})
}

// TestEntryFrom: a ledger entry record becomes an entry with a positive
// debit amount and the leaf hash of its canonical bytes.
func TestEntryFrom(t *testing.T) {
	rec := &avro.LedgerEntry{Entry: []byte("canonical"), LeafIndex: 4, BlockHeight: 2, TreeSize: 5, Root: bytes.Repeat([]byte{9}, 32),
		Proof: [][]byte{bytes.Repeat([]byte{8}, 32)}, Checkpoint: "cp\n", Kind: avro.EntryKindDebit, ID: "req-7", Account: "alice",
		Delta: -30, RedemptionID: "r1", BlockTimestampMs: t0.UnixMilli()}
	lh := merkle.HashLeaf(rec.Entry)
	want := Entry{Kind: KindDebit, Account: "alice", Amount: 30, RequestID: "req-7", RedemptionID: "r1", AppendedAt: t0,
		Proof: Proof{EntryID: "req-7", LeafIndex: 4, BlockHeight: 2, TreeSize: 5, Root: rec.Root, LeafHash: lh[:], Leaf: rec.Entry,
			Path: rec.Proof, Checkpoint: "cp\n"}}
	if got := EntryFrom(rec); !reflect.DeepEqual(got, want) {
		t.Fatalf("entry\n got %+v\nwant %+v", got, want)
	}
	rec.Kind, rec.ID, rec.Delta, rec.Date = avro.EntryKindCredit, "v1/2026-11-24", 12, "2026-11-24"
	if got := EntryFrom(rec); got.Amount != 12 || got.ScoreID != "v1/2026-11-24" || got.Day != "2026-11-24" {
		t.Fatalf("credit entry %+v", got)
	}
}
