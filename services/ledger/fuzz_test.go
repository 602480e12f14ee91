package ledger_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
)

// FuzzDecodeEntry: DecodeEntry never panics, and whatever it accepts is
// canonical: it re-encodes to exactly the input.
func FuzzDecodeEntry(f *testing.F) {
	for _, e := range []ledger.Entry{
		ledgertest.Credit("veh-1", 3, 42),
		{Kind: ledger.KindDebit, ID: "r", Account: "a", Amount: 1, Partner: "p", Item: "i", RedemptionID: "x", RequestedAtMs: 5},
		{Kind: ledger.KindAdjustment, ID: "r2", VehicleID: "v", Amount: -7, Reason: "fix", Ref: "v/d"},
		{Kind: ledger.KindRescore, ID: "rescore/v/d/2", VehicleID: "v", Ref: "v/d", RefLeaf: 3, Revision: 2, Points: 5, Amount: -7,
			EventsHash: []byte{1}, ConfigVersion: "c", Flags: []string{"a", "b"}, Reason: "late data"},
		{Kind: ledger.KindTransfer, ID: "0000000000000000000000000000000a", Account: "a", CounterAccount: "b", Amount: 3, TransferFlags: ledger.TransferPending, TimeoutMs: 9},
		{Kind: ledger.KindCampaign, ID: "k", Partner: "p", Campaign: "p/-", Action: ledger.ActionKey, PublicKey: make([]byte, 32)},
		{Kind: ledger.KindCampaign, ID: "s", Partner: "p", Campaign: "p/c", Action: ledger.ActionSubmit, RuleHash: make([]byte, 32), Definition: []byte{1}, Signature: make([]byte, 64)},
		{Kind: ledger.KindBonus, ID: "b", VehicleID: "v", Campaign: "p/c", RuleHash: make([]byte, 32), CreditHash: make([]byte, 32), Inputs: []byte{1}, Requested: 3, Amount: 2},
		{Kind: ledger.KindErasure, ID: "erasure/00", VehicleID: "p1:57fab9b22d6e0a9dd925d3142f46189d", Reason: "owner", RequestedAtMs: 9},
	} {
		raw, _ := e.Encode()
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ledger.DecodeEntry(b)
		if err != nil {
			return
		}
		again, err := e.Encode()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted non-canonical entry %x (re-encoded %x, %v)", b, again, err)
		}
	})
}

// FuzzReadExport: reading and verifying arbitrary export bytes never
// panics, and anything that verifies under the test key re-exports to the
// same bytes.
func FuzzReadExport(f *testing.F) {
	s, _ := ledger.NewSigner("minecart.test/ledger", ledgertest.Key(1))
	_, blocks := ledgertest.SmallBook(f, s)
	f.Add(ledgertest.Export(f, blocks))
	f.Add(ledgertest.Export(f, blocks[:1]))
	f.Add(ledgertest.Export(f, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		var got []*ledger.Block
		src := ledger.ReadExport(bytes.NewReader(b))
		collectSrc := blockFunc(func(ctx context.Context, fn func(ledger.Record) error) error {
			return src.Blocks(ctx, func(rec ledger.Record) error {
				if rec.Block != nil {
					c := *rec.Block
					got = append(got, &c)
				}
				return fn(rec)
			})
		})
		if _, err := ledger.Verify(context.Background(), collectSrc, s.Public()); err != nil {
			return
		}
		if re := ledgertest.Export(t, got); !bytes.Equal(re, b) {
			t.Fatalf("verified export does not re-export to the same bytes")
		}
	})
}

type blockFunc func(ctx context.Context, fn func(ledger.Record) error) error

func (f blockFunc) Blocks(ctx context.Context, fn func(ledger.Record) error) error { return f(ctx, fn) }
