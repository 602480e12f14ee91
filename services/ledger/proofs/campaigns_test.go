package proofs_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/minecart/minecart/services/campaign"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
	"github.com/minecart/minecart/services/ledger/merkle"
	"github.com/minecart/minecart/services/ledger/proofs"
)

// TestCampaignRoutes: GET /v1/ledger/campaigns lists the book's campaigns
// with their canonical definitions decoded, and the leaves of a key and a
// submit entry show their campaign fields (the submit's rule text from its
// definition bytes).
func TestCampaignRoutes(t *testing.T) {
	signer, _ := ledger.NewSigner(ledgertest.Origin, ledgertest.Key(1))
	book, blocks := ledgertest.SmallBook(t, signer)
	pub, priv, _ := ed25519.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{5}, 64)))
	d := campaign.Definition{Partner: "acme", Name: "double", Title: "double points", Rule: `score >= 80.0 ? points : 0`,
		Start: "1970-01-01", End: "1970-12-31", Budget: 100, Cap: 60}
	rh := d.RuleHash()
	cr := ledgertest.Credit("v2", 2, 100)
	credit, _ := cr.Encode()
	ch := merkle.HashLeaf(credit)
	bonus := ledger.Entry{Kind: ledger.KindBonus, ID: campaign.BonusID(d.ID(), ch[:]), VehicleID: "v2", Campaign: d.ID(), RuleHash: rh[:],
		CreditLeaf: 1, CreditHash: ch[:], Inputs: []byte{1}, Requested: 50, Amount: 40, WindowEndMs: 2 * ledgertest.DayMs, Date: "2026-11-02"}
	more, _, _, err := book.Append(ledger.Release{TimestampMs: 1_800_000_001_000, Clock: ledger.ClockWall,
		Entries: []ledger.Entry{campaign.RegisterKey("acme", pub, 1_800_000_000_000), campaign.Submit(d, priv, 1_800_000_000_500), bonus}}, 3, signer)
	if err != nil {
		t.Fatal(err)
	}
	blocks = append(blocks, more...)
	srv, err := proofs.NewServer(proofs.Config{Blocks: idle{}, PublicKey: signer.Public()})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	var empty struct{ Campaigns []proofs.CampaignView }
	getJSON(t, hs.URL+"/v1/ledger/campaigns", http.StatusOK, &empty)
	if empty.Campaigns == nil || len(empty.Campaigns) != 0 {
		t.Errorf("empty book: campaigns %v, want []", empty.Campaigns)
	}
	for _, b := range blocks {
		if err := srv.Apply(b); err != nil {
			t.Fatal(err)
		}
	}
	var list struct{ Campaigns []proofs.CampaignView }
	getJSON(t, hs.URL+"/v1/ledger/campaigns", http.StatusOK, &list)
	if len(list.Campaigns) != 1 {
		t.Fatalf("campaigns %+v, want acme/double", list.Campaigns)
	}
	c := list.Campaigns[0]
	submitLeaf := book.Size() - 2
	if c.ID != "acme/double" || c.Partner != "acme" || c.Status != "active" || c.RuleHash != hex.EncodeToString(rh[:]) || c.SubmitLeaf != submitLeaf ||
		c.Definition == nil || *c.Definition != (proofs.DefinitionView{Title: d.Title, Rule: d.Rule, Start: d.Start, End: d.End, Budget: 100, Cap: 60}) {
		t.Errorf("campaign %+v (definition %+v)", c, c.Definition)
	}
	var sub, key proofs.EntryView
	getJSON(t, fmt.Sprintf("%s/v1/ledger/leaves/%d", hs.URL, submitLeaf), http.StatusOK, &sub)
	if sub.Kind != ledger.KindCampaign.String() || sub.Action != "submit" || sub.Campaign != "acme/double" || sub.Partner != "acme" ||
		sub.RuleHash != c.RuleHash || sub.Definition == nil || sub.Definition.Rule != d.Rule || sub.Definition.Budget != 100 {
		t.Errorf("submit leaf: %+v", sub)
	}
	getJSON(t, fmt.Sprintf("%s/v1/ledger/leaves/%d", hs.URL, submitLeaf-1), http.StatusOK, &key)
	if key.Action != "key" || key.PublicKey != hex.EncodeToString(pub) || key.Definition != nil {
		t.Errorf("key leaf: %+v", key)
	}
	var bv proofs.EntryView
	getJSON(t, fmt.Sprintf("%s/v1/ledger/leaves/%d", hs.URL, submitLeaf+1), http.StatusOK, &bv)
	if bv.Kind != ledger.KindBonus.String() || bv.Campaign != d.ID() || bv.RuleHash != c.RuleHash || bv.CreditLeaf == nil || *bv.CreditLeaf != 1 ||
		bv.CreditHash != hex.EncodeToString(ch[:]) || bv.Amount != 40 || bv.Requested != 50 || bv.Action != "" || bv.Definition != nil {
		t.Errorf("bonus leaf: %+v", bv)
	}
	if c.Spent != 40 || c.Bonuses != 1 {
		t.Errorf("campaign paid %d in %d bonuses, want 40 in 1", c.Spent, c.Bonuses)
	}
}
