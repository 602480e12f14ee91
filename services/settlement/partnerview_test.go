package settlement

import (
	"encoding/hex"
	"github.com/minecart/minecart/schemas/avro"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/minecart/minecart/services/ledger"
)

// The worked example of docs/partners.md, "Nothing personal": the
// pseudonyms of docs/ledger.md's worked example (keys 0x00..0x1f for the
// vehicle WVWZZZ1JZXW000001, 0x20..0x3f for the account owner-00000).
const (
	docVehicle  = "p1:57fab9b22d6e0a9dd925d3142f46189d"
	docAccount  = "p1:2269af71ded1419d3a589952cffa9945"
	docVIN      = "WVWZZZ1JZXW000001"
	docOwner    = "owner-00000"
	docScoreID  = docVehicle + "/2026-11-02"
	docRedeemID = "c42fa2080ef951d3abac297e73b8de06"
)

func docCredit(t *testing.T) CreditSettled {
	t.Helper()
	e := ledger.Entry{Kind: ledger.KindCredit, ID: docScoreID, VehicleID: docVehicle, Date: "2026-11-02", TZ: "Europe/Berlin",
		WindowEndMs: 1762124400000, ConfigVersion: "v1", Points: 42, Score: 0.5, EventsHash: make([]byte, 32)}
	leaf, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	// Settlement's own view: the clear owner and vehicle.
	return CreditSettled{Account: docOwner, VehicleID: docVIN, Day: "2026-11-02", ScoreID: docScoreID, Points: 42,
		Proof: Proof{EntryID: docScoreID, Leaf: leaf}, SettledAt: time.UnixMilli(1762128000000).UTC()}
}

func docOrder(t *testing.T) Redemption {
	t.Helper()
	hold := RedemptionHoldID(docRedeemID, "acme", "coffee", 1, 50)
	e := ledger.Entry{Kind: ledger.KindTransfer, ID: hold, Account: docAccount, CounterAccount: PartnerAccount("acme"), Amount: 50,
		TransferFlags: ledger.TransferPending, TimeoutMs: 604800000, RequestedAtMs: 1762128000000}
	leaf, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return Redemption{ID: docRedeemID, IdempotencyKey: "order-1", Owner: docOwner, Partner: "acme", ItemID: "coffee", Quantity: 1,
		Points: 50, Status: StatusConfirmed, Seq: 1, Hold: hold, Debit: &Proof{EntryID: hold, Leaf: leaf}}
}

// TestPartnerView: the records settlement writes on the partner-readable
// topics carry the identities of their leaf only: a credit no account and
// the vehicle's pseudonym (also its key), an order the account's pseudonym
// and no idempotency key; a credit with neither leaf nor pseudonym names
// no vehicle. Settlement's own records (status topic) are unchanged.
func TestPartnerView(t *testing.T) {
	c := docCredit(t)
	pc := c.PartnerAvro()
	if pc.Account != "" || pc.VehicleID != docVehicle || pc.ScoreID != docScoreID || c.PartnerKey() != docVehicle || pc.Points != 42 {
		t.Errorf("credit partner view %+v key %q", pc, c.PartnerKey())
	}
	if a := c.Avro(); a.Account != docOwner {
		t.Errorf("settlement's own view lost the account: %+v", a)
	}
	bare := c
	bare.Proof.Leaf = nil
	if v := bare.PartnerAvro().VehicleID; v != "" {
		t.Errorf("a credit without a leaf names vehicle %q", v)
	}
	bare.VehicleID = docVehicle
	if v := bare.PartnerAvro().VehicleID; v != docVehicle {
		t.Errorf("a pseudonymous credit without a leaf: %q", v)
	}
	o := docOrder(t)
	po := o.PartnerAvro()
	if po.Owner != docAccount || po.IdempotencyKey != "" || po.RedemptionID != docRedeemID || po.Debit == nil {
		t.Errorf("order partner view %+v", po)
	}
	if a := o.Avro(); a.Owner != docOwner || a.IdempotencyKey != "order-1" {
		t.Errorf("the status record changed: %+v", a)
	}
	o.Debit = nil
	if po := o.PartnerAvro(); po.Owner != "" {
		t.Errorf("an order without proof names %q", po.Owner)
	}
}

// TestPartnerViewDocExample checks the bytes docs/partners.md shows for
// the worked example: the first fields of the credit's and the order's
// Avro bodies.
func TestPartnerViewDocExample(t *testing.T) {
	b, err := os.ReadFile("../../docs/partners.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	credit, err := docCredit(t).PartnerAvro().AppendAvro(nil)
	if err != nil {
		t.Fatal(err)
	}
	order, err := docOrder(t).PartnerAvro().AppendAvro(nil)
	if err != nil {
		t.Fatal(err)
	}
	h := func(s string) string { return hex.EncodeToString([]byte(s)) }
	creditHead := "00 46 " + h(docVehicle) + " 14 " + h("2026-11-02")
	orderHead := "40 " + h(docRedeemID) + " 00 46 " + h(docAccount)
	if got := spaced(credit[:48]); got != creditHead {
		t.Fatalf("credit body starts %s, want %s", got, creditHead)
	}
	if got := spaced(order[:70]); got != orderHead {
		t.Fatalf("order body starts %s, want %s", got, orderHead)
	}
	for name, want := range map[string]string{
		"credit key":  "`" + docVehicle + "`",
		"credit body": creditHead,
		"order body":  orderHead,
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("docs/partners.md lacks the %s: %s", name, want)
		}
	}
}

// spaced is b in hex with a space between the Avro fields of the
// examples: after a length byte, and after the bytes it announces.
func spaced(b []byte) string {
	var parts []string
	for len(b) > 0 {
		n := int(b[0] >> 1) // zig-zag length (the examples' are < 64)
		parts = append(parts, hex.EncodeToString(b[:1]))
		if n > 0 && n < len(b) {
			parts = append(parts, hex.EncodeToString(b[1:1+n]))
		}
		b = b[1+min(n, len(b)-1):]
	}
	return strings.Join(parts, " ")
}

// TestRedemptionCustomer: the customer id an owner gives for a redemption
// reaches the partner's order and the status record; an invalid one (too
// long, not printable ASCII) rejects the redemption as invalid, without
// reserving anything.
func TestRedemptionCustomer(t *testing.T) {
	f := newFixtureWith(t, DefaultPolicy())
	f.commit(f.b.Bind(Binding{VehicleID: "v1", Owner: "alice", UpdatedAt: t0}))
	f.credit("v1", 100)
	f.item("acme", "mug", 30, nil)
	for _, tc := range []struct {
		key, customer string
		ok            bool
	}{
		{"k1", "ACME-CARD 0042", true},
		{"k2", "", true},
		{"k3", strings.Repeat("x", MaxCustomer), true},
		{"k4", strings.Repeat("x", MaxCustomer+1), false},
		{"k5", "card\n42", false},
		{"k6", "karte-ä", false},
	} {
		f.commit(f.b.Redeem(avro.RedemptionRequest{IdempotencyKey: tc.key, Owner: "alice", Partner: "acme", ItemID: "mug", Quantity: 1, RequestedMs: t0, Customer: tc.customer}))
		r, _ := f.b.Redemption(RedemptionID("alice", tc.key))
		switch {
		case tc.ok && (r.Status != StatusPending || r.Customer != tc.customer || r.Avro().Customer != tc.customer || r.PartnerAvro().Customer != tc.customer):
			t.Errorf("customer %q: %+v", tc.customer, r)
		case !tc.ok && (r.Status != StatusRejected || r.Reason != ReasonInvalid || r.Customer != ""):
			t.Errorf("invalid customer %q: %s %s %q", tc.customer, r.Status, r.Reason, r.Customer)
		}
	}
	if _, res := f.balance("alice"); res != 90 {
		t.Errorf("reserved %d, want 90 (three valid redemptions)", res)
	}
}
