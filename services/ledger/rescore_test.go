package ledger_test

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
	"github.com/minecart/minecart/services/ledger/merkle"
)

// goldenRescore is the canonical encoding of the rescore entry of
// docs/ledger.md ("Rescore", the worked example), byte by byte.
var goldenRescore = strings.Join([]string{
	"01", "04", // version, kind 4 = rescore
	"00000019", hex.EncodeToString([]byte("rescore/VIN1/2026-12-01/1")), // id
	"00000004", hex.EncodeToString([]byte("VIN1")), // vehicle id
	"0000000f", hex.EncodeToString([]byte("VIN1/2026-12-01")), // ref: the credit's score id
	"0000000000000007", // ref leaf index 7
	"0000000000000001", // revision 1
	"00000000000001c2", // new points 450
	"0000000000000032", // delta +50
	"00000002", "abcd", // new events hash
	"00000009", hex.EncodeToString([]byte("2026.12-1")), // rules version
	"00000001", "00000008", hex.EncodeToString([]byte("teleport")), // flags
	"0000000d", hex.EncodeToString([]byte("late data: +3")), // reason
}, "")

func goldenRescoreEntry() ledger.Entry {
	return ledger.Entry{Kind: ledger.KindRescore, ID: "rescore/VIN1/2026-12-01/1", VehicleID: "VIN1", Ref: "VIN1/2026-12-01",
		RefLeaf: 7, Revision: 1, Points: 450, Amount: 50, EventsHash: []byte{0xab, 0xcd}, ConfigVersion: "2026.12-1",
		Flags: []string{"teleport"}, Reason: "late data: +3"}
}

func TestRescoreGoldenEncoding(t *testing.T) {
	e := goldenRescoreEntry()
	raw, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(raw); got != goldenRescore {
		t.Fatalf("rescore encoding\n got %s\nwant %s", got, goldenRescore)
	}
	back, err := ledger.DecodeEntry(raw)
	if err != nil {
		t.Fatal(err)
	}
	if back.ID != e.ID || back.Ref != e.Ref || back.RefLeaf != 7 || back.Revision != 1 || back.Points != 450 || back.Amount != 50 ||
		back.Delta() != 50 || back.Date != "2026-12-01" || back.Reason != e.Reason || back.Key() != "VIN1" {
		t.Errorf("decoded %+v", back)
	}
	// Every prefix is truncated, a trailing byte is refused.
	for i := range raw {
		if _, err := ledger.DecodeEntry(raw[:i]); !errors.Is(err, ledger.ErrEntry) {
			t.Fatalf("prefix %d decoded: %v", i, err)
		}
	}
	if _, err := ledger.DecodeEntry(append(raw, 0)); !errors.Is(err, ledger.ErrEntry) {
		t.Error("trailing byte accepted")
	}
}

func TestRescoreValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		mod  func(*ledger.Entry)
	}{
		{"id not derived", func(e *ledger.Entry) { e.ID = "rescore/VIN1/2026-12-01/2" }},
		{"revision 0", func(e *ledger.Entry) { e.Revision, e.ID = 0, ledger.RescoreID(e.Ref, 0) }},
		{"ref of another vehicle", func(e *ledger.Entry) { e.Ref, e.ID = "VIN2/2026-12-01", ledger.RescoreID("VIN2/2026-12-01", 1) }},
		{"account", func(e *ledger.Entry) { e.Account = "owner" }},
		{"no reason", func(e *ledger.Entry) { e.Reason = "" }},
		{"negative points", func(e *ledger.Entry) { e.Points, e.Amount = -1, -2 }},
		{"points before negative", func(e *ledger.Entry) { e.Points, e.Amount = 10, 11 }},
		{"flags unsorted", func(e *ledger.Entry) { e.Flags = []string{"z", "a"} }},
	} {
		e := goldenRescoreEntry()
		c.mod(&e)
		if _, err := e.Encode(); !errors.Is(err, ledger.ErrEntry) {
			t.Errorf("%s: encoded (%v)", c.name, err)
		}
	}
	e := goldenRescoreEntry()
	e.Amount = -400 // a negative delta is fine: points went down
	if _, err := e.Encode(); err != nil {
		t.Error(err)
	}
}

// TestBookRescore appends a credit and two rescores (one taking points
// back), rebuilds the book block by block as a verifier does, and checks
// that a rescore with a wrong leaf or a wrong delta is refused by both.
func TestBookRescore(t *testing.T) {
	s, err := ledger.NewSigner("minecart.test/ledger", ledgertest.Key(1))
	if err != nil {
		t.Fatal(err)
	}
	b := ledger.NewBook()
	credit := ledger.Entry{Kind: ledger.KindCredit, ID: "VIN1/2026-12-01", VehicleID: "VIN1", Date: "2026-12-01", TZ: "UTC",
		WindowEndMs: 1_764_633_600_000, ConfigVersion: "2026.12-1", Points: 400, Score: 90}
	other := credit
	other.ID, other.VehicleID = "VIN0/2026-12-01", "VIN0"
	var blocks []*ledger.Block
	add := func(es ...ledger.Entry) error {
		blks, _, _, err := b.Append(ledger.Release{Entries: es, TimestampMs: credit.WindowEndMs, Clock: ledger.ClockEvent}, 10, s)
		blocks = append(blocks, blks...)
		return err
	}
	if err := add(other, credit); err != nil {
		t.Fatal(err)
	}
	if leaf, ok := b.CreditLeaf(credit.ID); !ok || leaf != 1 {
		t.Fatalf("credit leaf %d %v, want 1", leaf, ok)
	}
	r1 := rescore(credit.ID, "VIN1", 1, 1, 450, 50)
	r2 := rescore(credit.ID, "VIN1", 1, 2, 300, -150)
	if err := add(r1, r2); err != nil { // two revisions of one day in one block
		t.Fatal(err)
	}
	if p, _ := b.Credited(credit.ID); p != 300 {
		t.Errorf("day points %d after rescores, want 300", p)
	}
	for _, bad := range []ledger.Entry{
		rescore(credit.ID, "VIN1", 0, 3, 310, 10),        // names the other credit's leaf
		rescore(credit.ID, "VIN1", 1, 3, 310, 20),        // delta not points - 300
		rescore("VIN9/2026-12-01", "VIN9", 1, 1, 10, 10), // no such credit
	} {
		if err := add(bad); !errors.Is(err, ledger.ErrEntry) {
			t.Errorf("%s refused with %v, want ErrEntry", bad.ID, err)
		}
	}
	// A replay of revision 1 is skipped, not appended twice.
	if _, _, skipped, err := b.Append(ledger.Release{Entries: []ledger.Entry{r1}, TimestampMs: credit.WindowEndMs, Clock: ledger.ClockEvent}, 10, s); err != nil || len(skipped) != 1 {
		t.Errorf("replayed rescore: skipped %d, %v", len(skipped), err)
	}
	v := ledger.NewBook()
	for _, blk := range blocks {
		if err := v.Apply(blk, s.Public()); err != nil {
			t.Fatal(err)
		}
	}
	if sum, err := ledger.Verify(context.Background(), ledgertest.Blocks(blocks), s.Public()); err != nil || sum.Rescores != 2 || sum.Credits != 2 {
		t.Errorf("verify: %+v, %v", sum, err)
	}
	if p, _ := v.Credited(credit.ID); p != 300 || v.Head() != b.Head() {
		t.Errorf("verifier: day points %d, head match %v", p, v.Head() == b.Head())
	}
	// A signed block whose rescore lies about the delta is refused by the verifier.
	forged := ledger.NewBook()
	fb := ledger.NewBook()
	blks, _, _, err := fb.Append(ledger.Release{Entries: []ledger.Entry{other, credit}, TimestampMs: credit.WindowEndMs, Clock: ledger.ClockEvent}, 10, s)
	if err != nil {
		t.Fatal(err)
	}
	for _, blk := range blks {
		if err := forged.Apply(blk, s.Public()); err != nil {
			t.Fatal(err)
		}
	}
	// Sign, by hand, a block holding a rescore whose delta is off by 10.
	lie := rescore(credit.ID, "VIN1", 1, 1, 450, 60)
	raw, err := lie.Encode()
	if err != nil {
		t.Fatal(err)
	}
	head := forged.Head()
	var tree merkle.Tree
	for _, blk := range blks {
		for _, e := range blk.Entries {
			tree.Append(e)
		}
	}
	tree.Append(raw)
	liar := &ledger.Block{Entries: [][]byte{raw}, Header: ledger.Header{Height: forged.Height(), PrevHash: head.Hash(),
		TreeSize: tree.Size(), Root: tree.Root(), FirstIndex: 2, LastIndex: 2, TimestampMs: credit.WindowEndMs, Clock: ledger.ClockEvent}}
	if liar.Signature, liar.Checkpoint, err = s.Sign(&liar.Header); err != nil {
		t.Fatal(err)
	}
	var inc *ledger.Inconsistency
	if err := forged.Apply(liar, s.Public()); !errors.As(err, &inc) || inc.Reason != ledger.ReasonBadEntries {
		t.Errorf("lying rescore applied: %v", err)
	}
}

func rescore(ref, vehicle string, leaf uint64, rev, points, delta int64) ledger.Entry {
	return ledger.Entry{Kind: ledger.KindRescore, ID: ledger.RescoreID(ref, rev), VehicleID: vehicle, Ref: ref, RefLeaf: leaf,
		Revision: rev, Points: points, Amount: delta, EventsHash: []byte{byte(rev)}, ConfigVersion: "2026.12-1", Reason: "late data"}
}
