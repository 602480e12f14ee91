package ledger_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
	"github.com/minecart/minecart/services/ledger/merkle"
)

func TestEntryRoundTrip(t *testing.T) {
	for _, e := range []ledger.Entry{
		ledgertest.Credit("veh-1", 3, 42),
		{Kind: ledger.KindDebit, ID: "r", Account: "a", Amount: 1, RequestedAtMs: -1},
		{Kind: ledger.KindAdjustment, ID: "r2", VehicleID: "v", Amount: -7, Reason: "fix"},
	} {
		raw, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := ledger.DecodeEntry(raw)
		if err != nil {
			t.Fatalf("%s: %v", e.Kind, err)
		}
		again, _ := got.Encode()
		if !bytes.Equal(raw, again) {
			t.Errorf("%s: re-encoding differs", e.Kind)
		}
		for i := range raw {
			if _, err := ledger.DecodeEntry(raw[:i]); err == nil {
				t.Errorf("%s: prefix of %d bytes decoded", e.Kind, i)
			}
		}
		if _, err := ledger.DecodeEntry(append(raw, 0)); err == nil {
			t.Errorf("%s: trailing byte accepted", e.Kind)
		}
	}
	bad := []ledger.Entry{
		{Kind: ledger.KindCredit, ID: "x"},
		{Kind: ledger.KindDebit, ID: "x", Account: "a", Amount: 0},
		{Kind: ledger.KindAdjustment, ID: "x", Account: "a", Amount: 5},
		{Kind: 9, ID: "x"},
		{Kind: ledger.KindCredit, ID: "x", VehicleID: "v", Flags: []string{"b", "a"}},
	}
	for _, e := range bad {
		if _, err := e.Encode(); !errors.Is(err, ledger.ErrEntry) {
			t.Errorf("%+v: err %v, want ErrEntry", e, err)
		}
	}
}

// TestEntryGolden pins the canonical encoding of docs/ledger.md byte by byte.
func TestEntryGolden(t *testing.T) {
	e := ledger.Entry{Kind: ledger.KindAdjustment, ID: "r", Account: "a", VehicleID: "", Amount: -2, Reason: "x", Ref: "v/d", RequestedAtMs: 1}
	raw, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := "01 03 00000001 72 00000001 61 00000000 fffffffffffffffe 00000001 78 00000003 762f64 0000000000000001"
	if got := fmt.Sprintf("%x", raw); got != strings.ReplaceAll(want, " ", "") {
		t.Errorf("encoding %s, want %s", got, want)
	}
}

func TestBookVerifyAndProve(t *testing.T) {
	s, _ := ledger.NewSigner("minecart.test/ledger", ledgertest.Key(1))
	book, blocks := ledgertest.SmallBook(t, s)
	if len(blocks) != 3 || book.Size() != 7 {
		t.Fatalf("%d blocks, %d entries; want 3, 7", len(blocks), book.Size())
	}
	sum, err := ledger.Verify(context.Background(), ledgertest.Blocks(blocks), s.Public())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Entries != 7 || sum.Credits != 5 || sum.Debits != 1 || sum.Adjustments != 1 || sum.Head.Root != book.Tree().Root() ||
		sum.Checkpoint != blocks[2].Checkpoint {
		t.Errorf("summary %+v", sum)
	}
	for _, b := range blocks { // the head is consistent with every checkpoint before it
		if _, err := ledger.VerifySince(context.Background(), ledgertest.Blocks(blocks), s.Public(), b.Checkpoint); err != nil {
			t.Errorf("since block %d: %v", b.Header.Height, err)
		}
	}
	if p, ok := book.Credited("v2/2026-11-02"); !ok || p != 95 {
		t.Errorf("v2 credited %d %v, want 95 after the -5 adjustment", p, ok)
	}
	// A repeated release appends nothing.
	again, _, skipped, err := book.Append(ledger.Release{Entries: []ledger.Entry{ledgertest.Credit("v1", 2, 100)}, TimestampMs: 2 * 86_400_000}, 3, s)
	if err != nil || len(again) != 0 || len(skipped) != 1 {
		t.Errorf("duplicate credit: %d blocks, %d skipped, %v", len(again), len(skipped), err)
	}
	for _, ref := range []string{"v4/2026-11-02", "req-2", "0", "6"} {
		bundle, err := ledger.Prove(context.Background(), ledgertest.Blocks(blocks), s.Public(), ref)
		if err != nil {
			t.Fatalf("prove %s: %v", ref, err)
		}
		if _, err := ledger.CheckBundle(bundle, s.Public()); err != nil {
			t.Errorf("check %s: %v", ref, err)
		}
		bundle.Entry[len(bundle.Entry)-1] ^= 1
		if _, err := ledger.CheckBundle(bundle, s.Public()); err == nil {
			t.Errorf("tampered bundle %s checked", ref)
		}
	}
	if _, err := ledger.Prove(context.Background(), ledgertest.Blocks(blocks), s.Public(), "nope"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("prove nope: %v", err)
	}
	other, _ := ledger.NewSigner("minecart.test/ledger", ledgertest.Key(2))
	if _, err := ledger.Verify(context.Background(), ledgertest.Blocks(blocks), other.Public()); err == nil {
		t.Error("verified with another key")
	}
}

// TestVerifyDetectsEveryByteFlip flips every bit pattern 0xff of every byte
// of an export, one at a time: verify must fail each time.
func TestVerifyDetectsEveryByteFlip(t *testing.T) {
	s, _ := ledger.NewSigner("minecart.test/ledger", ledgertest.Key(1))
	_, blocks := ledgertest.SmallBook(t, s)
	data := ledgertest.Export(t, blocks)
	if _, err := ledger.Verify(context.Background(), ledger.ReadExport(bytes.NewReader(data)), s.Public()); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for i := range data {
		for _, mask := range []byte{0x01, 0x80, byte(1 + r.IntN(255))} {
			bad := bytes.Clone(data)
			bad[i] ^= mask
			if _, err := ledger.Verify(context.Background(), ledger.ReadExport(bytes.NewReader(bad)), s.Public()); err == nil {
				t.Fatalf("flip of byte %d (mask %#x) of %d not detected", i, mask, len(data))
			}
		}
	}
	t.Logf("%d bytes x 3 flips each detected", len(data))
}

func TestVerifyDetectsStructuralTampering(t *testing.T) {
	s, _ := ledger.NewSigner("minecart.test/ledger", ledgertest.Key(1))
	_, blocks := ledgertest.SmallBook(t, s)
	ctx := context.Background()
	clone := func() []*ledger.Block {
		out := make([]*ledger.Block, len(blocks))
		for i, b := range blocks {
			c := *b
			c.Entries = append([][]byte(nil), b.Entries...)
			out[i] = &c
		}
		return out
	}
	cases := map[string]func([]*ledger.Block) []*ledger.Block{
		"delete entry": func(bs []*ledger.Block) []*ledger.Block {
			bs[0].Entries = append(bs[0].Entries[:1], bs[0].Entries[2:]...)
			return bs
		},
		"reorder entries": func(bs []*ledger.Block) []*ledger.Block {
			bs[0].Entries[0], bs[0].Entries[1] = bs[0].Entries[1], bs[0].Entries[0]
			return bs
		},
		"insert entry": func(bs []*ledger.Block) []*ledger.Block {
			extra, _ := (&ledger.Entry{Kind: ledger.KindAdjustment, ID: "sneaky", Account: "me", Amount: 1000, Reason: "gift"}).Encode()
			bs[2].Entries = append(bs[2].Entries, extra)
			return bs
		},
		"delete block":    func(bs []*ledger.Block) []*ledger.Block { return append(bs[:1], bs[2:]...) },
		"reorder blocks":  func(bs []*ledger.Block) []*ledger.Block { bs[0], bs[1] = bs[1], bs[0]; return bs },
		"duplicate block": func(bs []*ledger.Block) []*ledger.Block { return append(bs, bs[2]) },
		"re-signed with another key": func(bs []*ledger.Block) []*ledger.Block {
			o, _ := ledger.NewSigner("minecart.test/ledger", ledgertest.Key(9))
			bs[1].Signature, bs[1].Checkpoint, _ = o.Sign(&bs[1].Header)
			return bs
		},
		"moved a credit between blocks": func(bs []*ledger.Block) []*ledger.Block {
			bs[1].Entries = append([][]byte{bs[0].Entries[2]}, bs[1].Entries...)
			bs[0].Entries = bs[0].Entries[:2]
			return bs
		},
	}
	for name, tamper := range cases {
		_, err := ledger.Verify(ctx, ledgertest.Blocks(tamper(clone())), s.Public())
		var inc *ledger.Inconsistency
		if !errors.As(err, &inc) {
			t.Errorf("%s: err %v, want an Inconsistency", name, err)
			continue
		}
		t.Logf("%s: %v", name, err)
	}
	// The first inconsistency is reported precisely.
	bs := clone()
	bs[1].Entries[0] = bytes.Clone(bs[1].Entries[0])
	bs[1].Entries[0][3] ^= 0x40 // a length byte: does not parse
	_, err := ledger.Verify(ctx, ledgertest.Blocks(bs), s.Public())
	var inc *ledger.Inconsistency
	if !errors.As(err, &inc) || inc.Block != 1 || inc.Entry != 3 {
		t.Errorf("err %v, want block 1 entry 3", err)
	}
}

func TestCheckpointFormat(t *testing.T) {
	s, _ := ledger.NewSigner("minecart.test/ledger", ledgertest.Key(1))
	h := ledger.Header{TreeSize: 8, Root: merkle.EmptyRoot}
	_, cp, _ := s.Sign(&h)
	lines := strings.Split(cp, "\n")
	if len(lines) != 6 || lines[0] != "minecart.test/ledger" || lines[1] != "8" || lines[2] != "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=" || lines[3] != "" || !strings.HasPrefix(lines[4], "\u2014 minecart.test/ledger ") {
		t.Errorf("checkpoint %q", cp)
	}
	got, err := ledger.VerifyCheckpoint(cp, s.Public())
	if err != nil || got.Size != 8 || got.Root != merkle.EmptyRoot {
		t.Errorf("VerifyCheckpoint: %+v %v", got, err)
	}
	// Every textual form parses back, for many keys (base64 with '+' too).
	for seed := byte(0); seed < 64; seed++ {
		ks, _ := ledger.NewSigner(s.Origin(), ledgertest.Key(seed))
		pub := ks.Public()
		for _, text := range []string{ks.VerifierKey(), ledger.EncodePublicKey(pub), fmt.Sprintf("%x", []byte(pub))} {
			got, err := ledger.ParsePublicKey(text)
			if err != nil || !got.Equal(pub) {
				t.Errorf("ParsePublicKey(%q): %v", text, err)
			}
		}
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "ledger.key")
	k1, err := ledger.LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := ledger.LoadOrCreateKey(path)
	if err != nil || !k1.Equal(k2) {
		t.Fatalf("second load: %v, equal %v", err, k1.Equal(k2))
	}
	pub, err := ledger.LoadPublicKey(path + ".pub")
	if err != nil || !pub.Equal(k1.Public()) {
		t.Errorf("public key file: %v", err)
	}
}

func TestHeaderEncoding(t *testing.T) {
	h := ledger.Header{Height: 1, TreeSize: 2, FirstIndex: 1, LastIndex: 1, TimestampMs: 3, Clock: ledger.ClockWall}
	b := h.Marshal()
	if len(b) != ledger.HeaderSize || string(b[:8]) != "mcledger" {
		t.Fatalf("header %x", b)
	}
	if got := binary.BigEndian.Uint64(b[9:]); got != 1 {
		t.Errorf("height field %d", got)
	}
	back, err := ledger.UnmarshalHeader(b)
	if err != nil || back != h {
		t.Errorf("round trip %+v %v", back, err)
	}
}

func TestCheckConsistency(t *testing.T) {
	s, _ := ledger.NewSigner("minecart.test/ledger", ledgertest.Key(1))
	book, blocks := ledgertest.SmallBook(t, s)
	old, cur := blocks[0].Checkpoint, blocks[2].Checkpoint
	proof, err := book.Tree().ConsistencyProof(blocks[0].Header.TreeSize, blocks[2].Header.TreeSize)
	if err != nil {
		t.Fatal(err)
	}
	if err := ledger.CheckConsistency(old, cur, proof, s.Public()); err != nil {
		t.Fatalf("consistent checkpoints: %v", err)
	}
	// A forked log: same size as the current head, other entries.
	forked := ledger.NewBook()
	rel := ledger.Release{TimestampMs: 2 * 86_400_000}
	for _, v := range []string{"v1", "v2", "v3", "v4", "v5", "v6", "v7"} {
		rel.Entries = append(rel.Entries, ledgertest.Credit(v, 2, 100))
	}
	fb, _, _, err := forked.Append(rel, 3, s)
	if err != nil {
		t.Fatal(err)
	}
	if err := ledger.CheckConsistency(old, fb[len(fb)-1].Checkpoint, proof, s.Public()); err == nil {
		t.Error("fork not detected")
	}
	if err := ledger.CheckConsistency(cur, old, proof, s.Public()); err == nil {
		t.Error("shrinking log accepted")
	}
	other, _ := ledger.NewSigner("minecart.test/ledger", ledgertest.Key(2))
	if err := ledger.CheckConsistency(old, cur, proof, other.Public()); err == nil {
		t.Error("checkpoints accepted under another key")
	}
}

func TestBookUndo(t *testing.T) {
	s, _ := ledger.NewSigner("minecart.test/ledger", ledgertest.Key(1))
	book, blocks := ledgertest.SmallBook(t, s) // heights 0..2
	headBefore := blocks[1].Header
	if err := book.Undo(2); err != nil {
		t.Fatal(err)
	}
	if h := book.Head(); h != headBefore || book.Size() != 5 || book.Checkpoint() != blocks[1].Checkpoint {
		t.Fatalf("after undo: head %+v size %d", h, book.Size())
	}
	if book.HasRequest("req-1") || book.HasRequest("req-2") {
		t.Error("undone requests still known")
	}
	if p, _ := book.Credited("v2/2026-11-02"); p != 100 {
		t.Errorf("v2 credited %d after undoing the -5 adjustment, want 100", p)
	}
	// Appending the same again gives the same block.
	again, _, _, err := book.Append(ledger.Release{TimestampMs: 1_800_000_000_000, Clock: ledger.ClockWall, Entries: []ledger.Entry{
		{Kind: ledger.KindDebit, ID: "req-1", Account: "acct-1", VehicleID: "v1", Amount: 30, Reason: "redemption", Partner: "fuelco", Item: "coffee", RedemptionID: "r-1", RequestedAtMs: 1_799_999_999_000},
		{Kind: ledger.KindAdjustment, ID: "req-2", Account: "acct-2", VehicleID: "v2", Amount: -5, Reason: "late data", Ref: "v2/2026-11-02", RequestedAtMs: 1_799_999_999_500},
	}}, 3, s)
	if err != nil || len(again) != 1 || again[0].Header.Hash() != blocks[2].Header.Hash() {
		t.Fatalf("re-append after undo: %v", err)
	}
	if err := book.Undo(0); err != nil || book.Size() != 0 || book.Tree().Root() != merkle.EmptyRoot {
		t.Fatalf("undo all: %v, size %d", err, book.Size())
	}
	if _, ok := book.Credited("v1/2026-11-02"); ok {
		t.Error("undone credit still known")
	}
	// A book rebuilt by Apply has no recent blocks to undo.
	applied := ledger.NewBook()
	for _, b := range blocks {
		if err := applied.Apply(b, s.Public()); err != nil {
			t.Fatal(err)
		}
	}
	if err := applied.Undo(2); !errors.Is(err, ledger.ErrUndo) {
		t.Errorf("undo of applied blocks: %v, want ErrUndo", err)
	}
}

// brokenSigner signs nothing.
type brokenSigner struct{ ledger.BlockSigner }

func (brokenSigner) Sign(*ledger.Header) ([]byte, string, error) {
	return nil, "", errors.New("signer out of order")
}

// TestAppendErrors: an invalid entry fails Append with nothing changed
// (ErrEntry, the book goes on); a signing failure comes after the entries
// are in the tree, so it is ErrUnusable and the book refuses any further
// Append or Undo.
func TestAppendErrors(t *testing.T) {
	s, _ := ledger.NewSigner(ledgertest.Origin, ledgertest.Key(1))
	book, _ := ledgertest.SmallBook(t, s)
	size, head := book.Size(), book.Head()
	bad := ledger.Release{TimestampMs: 3 * 86_400_000, Entries: []ledger.Entry{ledgertest.Credit("v9", 3, 1), {Kind: ledger.KindDebit, ID: "x"}}}
	if _, _, _, err := book.Append(bad, 3, s); !errors.Is(err, ledger.ErrEntry) || errors.Is(err, ledger.ErrUnusable) {
		t.Fatalf("invalid entry: %v, want ErrEntry", err)
	}
	if book.Size() != size || book.Head() != head {
		t.Fatal("an invalid release changed the book")
	}
	if _, ok := book.Credited(bad.Entries[0].ID); ok {
		t.Fatal("the valid credit before the invalid entry stayed in the idempotency set")
	}
	good := ledger.Release{TimestampMs: 3 * 86_400_000, Entries: []ledger.Entry{ledgertest.Credit("v9", 3, 1)}}
	if _, _, _, err := book.Append(good, 3, brokenSigner{s}); !errors.Is(err, ledger.ErrUnusable) {
		t.Fatalf("signing failure: %v, want ErrUnusable", err)
	}
	if _, _, _, err := book.Append(good, 3, s); !errors.Is(err, ledger.ErrUnusable) {
		t.Errorf("append to an unusable book: %v, want ErrUnusable", err)
	}
	if err := book.Undo(book.Height()); !errors.Is(err, ledger.ErrUnusable) {
		t.Errorf("undo of an unusable book: %v, want ErrUnusable", err)
	}
}
