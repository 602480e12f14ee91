package settlement

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/minecart/minecart/schemas"
)

func TestCodecRoundTrip(t *testing.T) {
	c := NewCodec(schemas.SingleObject())
	proof := Proof{EntryID: "req-1", LeafIndex: 7, BlockHeight: 3, TreeSize: 9, Root: bytes.Repeat([]byte{1}, 32),
		LeafHash: bytes.Repeat([]byte{2}, 32), Leaf: []byte{1, 2, 3}, Checkpoint: "cp\n", Path: [][]byte{bytes.Repeat([]byte{3}, 32), bytes.Repeat([]byte{4}, 32)}}
	check := func(name string, in any, enc func() ([]byte, error), dec func([]byte) (any, error)) {
		t.Helper()
		b, err := enc()
		if err != nil {
			t.Fatalf("%s: encode: %v", name, err)
		}
		if b[0] != 0xC3 || b[1] != 0x01 {
			t.Fatalf("%s: not single-object framed: % x", name, b[:2])
		}
		out, err := dec(b)
		if err != nil {
			t.Fatalf("%s: decode: %v", name, err)
		}
		if !reflect.DeepEqual(out, in) {
			t.Fatalf("%s:\n got %+v\nwant %+v", name, out, in)
		}
	}
	x := Binding{VehicleID: "v1", Owner: "alice", UpdatedAt: t0}
	check("binding", x, func() ([]byte, error) { return c.EncodeBinding(x) }, func(b []byte) (any, error) { return c.DecodeBinding(b) })
	it := CatalogItem{Partner: "acme", ItemID: "mug", Title: "Mug", PricePoints: 30, Stock: ptr(int64(4)), Active: true, UpdatedAt: t0}
	check("item", it, func() ([]byte, error) { return c.EncodeItem(it) }, func(b []byte) (any, error) { return c.DecodeItem(b) })
	it.Stock = nil
	check("item unlimited", it, func() ([]byte, error) { return c.EncodeItem(it) }, func(b []byte) (any, error) { return c.DecodeItem(b) })
	rq := RedemptionRequest{IdempotencyKey: "k", Owner: "alice", Partner: "acme", ItemID: "mug", Quantity: 2, MaxPoints: ptr(int64(60)), RequestedAt: t0}
	check("request", rq, func() ([]byte, error) { return c.EncodeRequest(rq) }, func(b []byte) (any, error) { return c.DecodeRequest(b) })
	r := Redemption{ID: "abc", IdempotencyKey: "k", Owner: "alice", Partner: "acme", ItemID: "mug", Quantity: 2, Points: 60,
		Status: StatusConfirmed, Seq: 4, RequestedAt: t0, UpdatedAt: t0, Debit: &proof}
	check("redemption", r, func() ([]byte, error) { return c.EncodeRedemption(r) }, func(b []byte) (any, error) { return c.DecodeRedemption(b) })
	r.Debit, r.Status, r.Reason, r.PartnerRef = nil, StatusRejected, ReasonOutOfStock, "ref"
	check("redemption rejected", r, func() ([]byte, error) { return c.EncodeRedemption(r) }, func(b []byte) (any, error) { return c.DecodeRedemption(b) })
	cr := CreditSettled{Account: "alice", VehicleID: "v1", Day: "2026-11-24", ScoreID: "v1/2026-11-24", Points: 12, Proof: proof, SettledAt: t0}
	check("credit", cr, func() ([]byte, error) { return c.EncodeCredit(cr) }, func(b []byte) (any, error) { return c.DecodeCredit(b) })
	a := PartnerAck{RedemptionID: "abc", Partner: "acme", Status: AckFailed, Reason: "gone", AckedAt: t0}
	check("ack", a, func() ([]byte, error) { return c.EncodeAck(a) }, func(b []byte) (any, error) { return c.DecodeAck(b) })
	s := Statement{Day: "2026-11-25", Minted: 5, Redeemed: 3, Outstanding: 2, Partners: []PartnerTotal{{"acme", 1, 3}},
		BalanceSum: 2, Expected: 2, InvariantOK: true, Accounts: 1, GeneratedAt: t0}
	check("statement", s, func() ([]byte, error) { return c.EncodeStatement(s) }, func(b []byte) (any, error) { return c.DecodeStatement(b) })
	if _, err := c.DecodeAck([]byte{0xC3, 0x01, 0, 0}); err == nil {
		t.Fatal("truncated record decoded")
	}
}
