package partner_test

import (
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"github.com/minecart/minecart/cmd/partner-example/partner"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/merkle"
	"github.com/minecart/minecart/services/pseudonym"
	"github.com/minecart/minecart/services/settlement"
)

// TestVerifyOrderPseudonymous: an order whose debit leaf names the owner
// by pseudonym verifies when the redemption id is SHA-256(owner, key) of
// the order's owner and key, and is refused when the owner or the key was
// changed, or the amount does not match; a leaf with the owner in clear
// must name the order's owner.
func TestVerifyOrderPseudonymous(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	signer, err := ledger.NewSigner("minecart/ledger", priv)
	if err != nil {
		t.Fatal(err)
	}
	order := func(account string) partner.Order {
		id := settlement.RedemptionID("owner-1", "k-1")
		e := ledger.Entry{Kind: ledger.KindDebit, ID: id, Account: account, Amount: 30, Reason: "redemption",
			Partner: "acme", Item: "mug", RedemptionID: id, RequestedAtMs: 1}
		raw, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		h := ledger.Header{TreeSize: 1, Root: merkle.HashLeaf(raw), Clock: ledger.ClockWall, TimestampMs: 1}
		_, cp, err := signer.Sign(&h)
		if err != nil {
			t.Fatal(err)
		}
		lh := merkle.HashLeaf(raw)
		return partner.Order{RedemptionID: id, IdempotencyKey: "k-1", Owner: "owner-1", Partner: "acme", ItemID: "mug", Quantity: 1,
			Points: 30, Status: avro.RedemptionStatusConfirmed, RequestedMs: time.UnixMilli(1), UpdatedMs: time.UnixMilli(1),
			Debit: &avro.LedgerProof{EntryID: id, TreeSize: 1, Root: h.Root[:], LeafHash: lh[:], Leaf: raw, Checkpoint: cp}}
	}
	ps := pseudonym.Of(make([]byte, 32), pseudonym.Account, "owner-1")
	if err := partner.VerifyOrder(order(ps), "acme", pub); err != nil {
		t.Fatalf("pseudonymous order: %v", err)
	}
	if err := partner.VerifyOrder(order("owner-1"), "acme", pub); err != nil {
		t.Fatalf("order in clear: %v", err)
	}
	for name, edit := range map[string]func(*partner.Order){
		"another owner":           func(o *partner.Order) { o.Owner = "owner-2" },
		"another idempotency key": func(o *partner.Order) { o.IdempotencyKey = "k-2" },
		"another amount":          func(o *partner.Order) { o.Points = 31 },
	} {
		o := order(ps)
		edit(&o)
		if err := partner.VerifyOrder(o, "acme", pub); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
	o := order("owner-9")
	if err := partner.VerifyOrder(o, "acme", pub); err == nil || !strings.Contains(err.Error(), "owner-9") {
		t.Errorf("a clear leaf of another owner: %v", err)
	}
}
