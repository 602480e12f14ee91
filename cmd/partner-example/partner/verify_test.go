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

// TestVerifyOrderPseudonymous: an order names its owner as its debit leaf
// does (the account's pseudonym, docs/partners.md "Nothing personal"): it
// verifies when the two are the same, and is refused when the owner was
// changed (to another pseudonym or to a clear id) or the amount does not
// match; a leaf from before pseudonyms, with the owner in clear, must name
// the order's owner.
func TestVerifyOrderPseudonymous(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	signer, err := ledger.NewSigner("minecart/ledger", priv)
	if err != nil {
		t.Fatal(err)
	}
	order := func(account string) partner.Order {
		return orderOf(t, signer, account, account)
	}
	ps := pseudonym.Of(make([]byte, 32), pseudonym.Account, "owner-1")
	if err := partner.VerifyOrder(order(ps), "acme", pub); err != nil {
		t.Fatalf("pseudonymous order: %v", err)
	}
	if err := partner.VerifyOrder(order("owner-1"), "acme", pub); err != nil {
		t.Fatalf("order in clear: %v", err)
	}
	for name, edit := range map[string]func(*partner.Order){
		"another owner":      func(o *partner.Order) { o.Owner = pseudonym.Of(make([]byte, 32), pseudonym.Account, "owner-2") },
		"the owner's id":     func(o *partner.Order) { o.Owner = "owner-1" },
		"no owner":           func(o *partner.Order) { o.Owner = "" },
		"another amount":     func(o *partner.Order) { o.Points = 31 },
		"another redemption": func(o *partner.Order) { o.RedemptionID = settlement.RedemptionID("owner-1", "k-2") },
	} {
		o := order(ps)
		edit(&o)
		if err := partner.VerifyOrder(o, "acme", pub); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
	o := orderOf(t, signer, "owner-9", "owner-1")
	if err := partner.VerifyOrder(o, "acme", pub); err == nil || !strings.Contains(err.Error(), "owner-9") {
		t.Errorf("a clear leaf of another owner: %v", err)
	}
}

// orderOf is a confirmed order of owner whose debit leaf names account.
func orderOf(t *testing.T, signer *ledger.Signer, account, owner string) partner.Order {
	t.Helper()
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
	return partner.Order{RedemptionID: id, Owner: owner, Partner: "acme", ItemID: "mug", Quantity: 1,
		Points: 30, Status: avro.RedemptionStatusConfirmed, RequestedMs: time.UnixMilli(1), UpdatedMs: time.UnixMilli(1),
		Debit: &avro.LedgerProof{EntryID: id, TreeSize: 1, Root: h.Root[:], LeafHash: lh[:], Leaf: raw, Checkpoint: cp}}
}
