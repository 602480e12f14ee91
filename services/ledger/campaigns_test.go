package ledger_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
)

// TestCampaignEntryGolden pins the encodings of kinds 6 and 7
// (docs/ledger.md, "Campaign and bonus entries") byte by byte.
func TestCampaignEntryGolden(t *testing.T) {
	h32 := bytes.Repeat([]byte{0xaa}, 32)
	sig := bytes.Repeat([]byte{0x5a}, 64)
	for _, tc := range []struct {
		e    ledger.Entry
		want string
	}{
		{ledger.Entry{Kind: ledger.KindCampaign, ID: "k", Partner: "p", Campaign: "p/-", Action: ledger.ActionKey, PublicKey: h32, RequestedAtMs: 2},
			"01 06 00000001 6b 00000001 70 00000003 702f2d 00000003 6b6579 00000000 00000000 00000020 " + strings.Repeat("aa", 32) + " 00000000 0000000000000002"},
		{ledger.Entry{Kind: ledger.KindCampaign, ID: "s", Partner: "p", Campaign: "p/c", Action: ledger.ActionSubmit, RuleHash: h32, Definition: []byte{1, 2}, Signature: sig, RequestedAtMs: 3},
			"01 06 00000001 73 00000001 70 00000003 702f63 00000006 7375626d6974 00000020 " + strings.Repeat("aa", 32) + " 00000002 0102 00000000 00000040 " + strings.Repeat("5a", 64) + " 0000000000000003"},
		{ledger.Entry{Kind: ledger.KindBonus, ID: "b", VehicleID: "v", Campaign: "p/c", RuleHash: h32, CreditLeaf: 5, CreditHash: h32, Inputs: []byte{1}, Requested: 10, Amount: 7, WindowEndMs: 86400000, Date: "1970-01-01"},
			"01 07 00000001 62 00000001 76 00000000 00000003 702f63 00000020 " + strings.Repeat("aa", 32) + " 0000000000000005 00000020 " + strings.Repeat("aa", 32) +
				" 00000001 01 000000000000000a 0000000000000007 0000000005265c00 0000000a 313937302d30312d3031"},
	} {
		raw, err := tc.e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if got, want := fmt.Sprintf("%x", raw), strings.ReplaceAll(tc.want, " ", ""); got != want {
			t.Errorf("%s %s: encoding\n%s, want\n%s", tc.e.Kind, tc.e.Action, got, want)
		}
		back, err := ledger.DecodeEntry(raw)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if again, _ := back.Encode(); !bytes.Equal(again, raw) {
			t.Error("decode/encode differs")
		}
		if raw[len(raw)-1]++; true {
			if _, err := ledger.DecodeEntry(raw[:len(raw)-1]); err == nil {
				t.Error("truncated entry decoded")
			}
		}
	}
}

func TestCampaignEntryValidate(t *testing.T) {
	h32, sig := make([]byte, 32), make([]byte, 64)
	for name, e := range map[string]ledger.Entry{
		"key with signature":   {Kind: ledger.KindCampaign, ID: "k", Partner: "p", Campaign: "p/-", Action: ledger.ActionKey, PublicKey: h32, Signature: sig},
		"key of 31 bytes":      {Kind: ledger.KindCampaign, ID: "k", Partner: "p", Campaign: "p/-", Action: ledger.ActionKey, PublicKey: h32[:31]},
		"submit no definition": {Kind: ledger.KindCampaign, ID: "s", Partner: "p", Campaign: "p/c", Action: ledger.ActionSubmit, RuleHash: h32, Signature: sig},
		"pause with def":       {Kind: ledger.KindCampaign, ID: "s", Partner: "p", Campaign: "p/c", Action: ledger.ActionPause, RuleHash: h32, Signature: sig, Definition: []byte{1}},
		"unknown action":       {Kind: ledger.KindCampaign, ID: "s", Partner: "p", Campaign: "p/c", Action: "stop", RuleHash: h32, Signature: sig},
		"bonus over request":   {Kind: ledger.KindBonus, ID: "b", VehicleID: "v", Campaign: "p/c", RuleHash: h32, CreditHash: h32, Inputs: []byte{1}, Requested: 1, Amount: 2},
		"bonus zero":           {Kind: ledger.KindBonus, ID: "b", VehicleID: "v", Campaign: "p/c", RuleHash: h32, CreditHash: h32, Inputs: []byte{1}},
		"bonus no vehicle":     {Kind: ledger.KindBonus, ID: "b", Campaign: "p/c", RuleHash: h32, CreditHash: h32, Inputs: []byte{1}, Requested: 1, Amount: 1},
	} {
		if err := e.Validate(); err == nil {
			t.Errorf("%s: valid", name)
		}
	}
}

// TestBookCampaignState: the book keeps keys, campaigns, statuses, spent
// points and first credits, and Undo takes them back.
func TestBookCampaignState(t *testing.T) {
	s, _ := ledger.NewSigner("minecart.test/ledger", ledgertest.Key(1))
	book := ledger.NewBook()
	h32, sig := bytes.Repeat([]byte{1}, 32), make([]byte, 64)
	appendAll := func(es ...ledger.Entry) {
		t.Helper()
		if _, _, _, err := book.Append(ledger.Release{Entries: es, TimestampMs: 1, Clock: ledger.ClockWall}, 2, s); err != nil {
			t.Fatal(err)
		}
	}
	appendAll(
		ledger.Entry{Kind: ledger.KindCampaign, ID: "key/p/1", Partner: "p", Campaign: "p/-", Action: ledger.ActionKey, PublicKey: h32},
		ledger.Entry{Kind: ledger.KindCampaign, ID: "submit/p/c", Partner: "p", Campaign: "p/c", Action: ledger.ActionSubmit, RuleHash: h32, Definition: []byte{9}, Signature: sig},
		ledgertest.Credit("v1", 3, 10),
	)
	h := book.Height()
	appendAll(
		ledgertest.Credit("v1", 4, 10),
		ledger.Entry{Kind: ledger.KindBonus, ID: "bonus/1", VehicleID: "v1", Campaign: "p/c", RuleHash: h32, CreditHash: h32, Inputs: []byte{1}, Requested: 5, Amount: 4},
		ledger.Entry{Kind: ledger.KindCampaign, ID: "pause/p/c/1", Partner: "p", Campaign: "p/c", Action: ledger.ActionPause, RuleHash: h32, Signature: sig},
	)
	ci, ok := book.Campaign("p/c")
	if !ok || ci.Status != ledger.StatusPaused || ci.Spent != 4 || ci.Bonuses != 1 || !bytes.Equal(book.PartnerKey("p"), h32) {
		t.Fatalf("state %+v %v", ci, ok)
	}
	if d := book.FirstCreditDate("v1"); d != "2026-11-03" {
		t.Errorf("first credit %q", d)
	}
	if err := book.Undo(h); err != nil {
		t.Fatal(err)
	}
	if ci, _ := book.Campaign("p/c"); ci.Status != ledger.StatusActive || ci.Spent != 0 {
		t.Errorf("after undo %+v", ci)
	}
	if err := book.Undo(0); err != nil {
		t.Fatal(err)
	}
	if _, ok := book.Campaign("p/c"); ok || book.PartnerKey("p") != nil || book.FirstCreditDate("v1") != "" || len(book.Campaigns()) != 0 {
		t.Error("undo to 0 left campaign state")
	}
}
