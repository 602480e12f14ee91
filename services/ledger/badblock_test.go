package ledger_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
)

// TestPoisonedBookVerifies: a book published with a duplicate, a forged
// block, an out-of-order block, garbage, a signed header with other
// entries and a fork among its blocks verifies to the genuine book (every
// bad record skipped, the genuine block after each applied), and Verify
// names each bad record with its offset, height and reason.
func TestPoisonedBookVerifies(t *testing.T) {
	s, _ := ledger.NewSigner(ledgertest.Origin, ledgertest.Key(1))
	p := ledgertest.Poison(t, s)
	ctx := context.Background()
	sum, err := ledger.Verify(ctx, ledgertest.Blocks(p.Records), s.Public())
	var bad *ledger.BadRecords
	if !errors.As(err, &bad) {
		t.Fatalf("verify: %v, want *BadRecords", err)
	}
	head := p.Genuine[len(p.Genuine)-1].Header
	if sum.Head != head || sum.Blocks != uint64(len(p.Genuine)) || sum.Entries != head.TreeSize {
		t.Errorf("summary %d blocks, head %+v; want the genuine %d blocks, head %+v", sum.Blocks, sum.Head, len(p.Genuine), head)
	}
	var want []*ledger.BadRecord
	for i, r := range p.Reasons {
		if r != "" {
			h := int64(-1)
			if p.Records[i] != nil {
				h = int64(p.Records[i].Header.Height)
			}
			want = append(want, &ledger.BadRecord{Offset: int64(i), Height: h, Reason: r})
		}
	}
	if bad.Count != uint64(len(want)) || len(bad.Listed) != len(want) {
		t.Fatalf("%d bad records %v, want %d", bad.Count, bad, len(want))
	}
	for i, w := range want {
		got := bad.Listed[i]
		if got.Offset != w.Offset || got.Height != w.Height || got.Reason != w.Reason {
			t.Errorf("bad record %d: offset %d height %d %s, want offset %d height %d %s", i, got.Offset, got.Height, got.Reason, w.Offset, w.Height, w.Reason)
		}
		var inc *ledger.Inconsistency
		if !errors.As(got, &inc) || inc.Reason != w.Reason {
			t.Errorf("bad record %d: %v, want an Inconsistency with reason %s", i, got, w.Reason)
		}
		t.Logf("%v", got)
	}
	if bad.ByReason[ledger.ReasonForged] != 1 || bad.ByReason[ledger.ReasonDuplicate] != 1 {
		t.Errorf("by reason %v", bad.ByReason)
	}
	var first *ledger.BadRecord
	if !errors.As(err, &first) || first.Offset != 2 {
		t.Errorf("errors.As finds %v, want the first bad record (offset 2)", first)
	}

	// A writer rebuilds the same book and is told of each.
	var skipped []ledger.Reason
	book, err := ledger.Rebuild(ctx, ledgertest.Blocks(p.Records), s.Public(), func(b *ledger.BadRecord) { skipped = append(skipped, b.Reason) })
	if err != nil || book.Head() != head || len(skipped) != len(want) {
		t.Errorf("rebuild: %v, head %+v, skipped %v", err, book.Head(), skipped)
	}
	if bundle, err := ledger.Prove(ctx, ledgertest.Blocks(p.Records), s.Public(), "req-4"); err != nil {
		t.Errorf("prove on the poisoned book: %v", err)
	} else if _, err := ledger.CheckBundle(bundle, s.Public()); err != nil {
		t.Errorf("proof from the poisoned book: %v", err)
	}

	// An export with the key is the genuine book; without, it keeps the
	// blocks that decode, which verify names again.
	var clean, raw bytes.Buffer
	var exportSkipped int
	if n, err := ledger.Export(ctx, ledgertest.Blocks(p.Records), s.Public(), &clean, func(*ledger.BadRecord) { exportSkipped++ }); err != nil || n != uint64(len(p.Genuine)) || exportSkipped != len(want) {
		t.Errorf("verified export: %d blocks, %d skipped, %v", n, exportSkipped, err)
	}
	if !bytes.Equal(clean.Bytes(), ledgertest.Export(t, p.Genuine)) {
		t.Error("verified export differs from the genuine book's")
	}
	if n, err := ledger.Export(ctx, ledgertest.Blocks(p.Records), nil, &raw, nil); err != nil || n != uint64(len(p.Records)-1) {
		t.Errorf("raw export: %d blocks, %v", n, err)
	}
	if _, err := ledger.Verify(ctx, ledger.ReadExport(&raw), s.Public()); !errors.As(err, &bad) || bad.Count != uint64(len(want)-1) {
		t.Errorf("verify of the raw export: %v, want the %d decodable bad blocks", err, len(want)-1)
	}
}

// TestBadBlockChangesNothing: a block that does not extend the book
// leaves it as it was (tree, head, idempotency sets), so the genuine block
// that follows applies.
func TestBadBlockChangesNothing(t *testing.T) {
	s, _ := ledger.NewSigner(ledgertest.Origin, ledgertest.Key(1))
	p := ledgertest.Poison(t, s)
	book := ledger.NewBook()
	for _, b := range p.Genuine[:3] {
		if err := book.Apply(b, s.Public()); err != nil {
			t.Fatal(err)
		}
	}
	head, size, root := book.Head(), book.Size(), book.Tree().Root()
	for i, rec := range p.Records {
		if p.Reasons[i] == "" || p.Reasons[i] == ledger.ReasonUndecodable {
			continue
		}
		bad := book.ApplyRecord(ledger.Record{Offset: int64(i), Block: rec}, s.Public())
		if bad == nil {
			t.Fatalf("record %d (%s) applied", i, p.Reasons[i])
		}
		if bad.Reason != p.Reasons[i] && !(p.Reasons[i] == ledger.ReasonDuplicate && bad.Reason == ledger.ReasonDuplicate) {
			t.Errorf("record %d: %s, want %s", i, bad.Reason, p.Reasons[i])
		}
		if book.Head() != head || book.Size() != size || book.Tree().Root() != root || book.HasRequest("req-3") {
			t.Fatalf("record %d (%s) changed the book", i, bad.Reason)
		}
	}
	for _, b := range p.Genuine[3:] {
		if err := book.Apply(b, s.Public()); err != nil {
			t.Fatalf("genuine block after the bad ones: %v", err)
		}
	}
	if !book.HasRequest("req-3") || book.Head() != p.Genuine[4].Header {
		t.Error("genuine blocks not applied")
	}
	// A block with a credit the book holds, at the next height and
	// signed: its entries are refused and nothing of it stays.
	again, _, _, err := ledger.NewBook().Append(ledger.Release{TimestampMs: 2 * ledgertest.DayMs, Entries: []ledger.Entry{ledgertest.Credit("v1", 2, 100)}}, 3, s)
	if err != nil {
		t.Fatal(err)
	}
	blk := *again[0]
	head4 := book.Head()
	blk.Header.Height, blk.Header.PrevHash = book.Height(), head4.Hash()
	blk.Header.FirstIndex, blk.Header.LastIndex, blk.Header.TreeSize = book.Size(), book.Size(), book.Size()+1
	blk.Signature, blk.Checkpoint, _ = s.Sign(&blk.Header)
	if bad := book.ApplyRecord(ledger.Record{Block: &blk}, s.Public()); bad == nil || bad.Reason != ledger.ReasonBadEntries {
		t.Errorf("credit twice: %v, want bad_entries", bad)
	}
	if book.Head() != p.Genuine[4].Header {
		t.Error("refused block changed the head")
	}
	// The same with a new credit before the repeated one, and a block of
	// the new credit alone whose root is not the book's: the new credit's
	// id, checked before the block failed, does not stay in the book.
	fresh := ledgertest.Credit("v8", 2, 5)
	for _, es := range [][]ledger.Entry{{fresh, ledgertest.Credit("v1", 2, 100)}, {fresh}} {
		other, _, _, err := ledger.NewBook().Append(ledger.Release{TimestampMs: 2 * ledgertest.DayMs, Entries: es}, 3, s)
		if err != nil {
			t.Fatal(err)
		}
		blk := *other[0]
		blk.Header.Height, blk.Header.PrevHash = book.Height(), head4.Hash()
		blk.Header.FirstIndex, blk.Header.LastIndex, blk.Header.TreeSize = book.Size(), book.Size()+uint64(len(es))-1, book.Size()+uint64(len(es))
		blk.Signature, blk.Checkpoint, _ = s.Sign(&blk.Header)
		if bad := book.ApplyRecord(ledger.Record{Block: &blk}, s.Public()); bad == nil || bad.Reason != ledger.ReasonBadEntries {
			t.Errorf("%d entries: %v, want bad_entries", len(es), bad)
		}
		if _, ok := book.Credited(fresh.ID); ok || book.Head() != p.Genuine[4].Header {
			t.Errorf("%d entries: the refused block's new credit stayed in the book", len(es))
		}
	}
}

// FuzzPoisonedOrder: any sequence of genuine and bad records verifies to
// the genuine blocks that came in order (block i applied at its first
// appearance after block i-1), every other record skipped. The fork is
// signed by the key: it takes height 2 if it comes first, and then no
// later genuine block extends it.
func FuzzPoisonedOrder(f *testing.F) {
	s, _ := ledger.NewSigner(ledgertest.Origin, ledgertest.Key(1))
	p := ledgertest.Poison(f, s)
	var pool []*ledger.Block
	pool = append(pool, p.Genuine...)
	fork, dup := -1, -1
	for i, r := range p.Reasons {
		if r != "" {
			switch r {
			case ledger.ReasonFork:
				fork = len(pool)
			case ledger.ReasonDuplicate:
				dup = len(pool) // a copy of block 1: block 1 where it comes first
			}
			pool = append(pool, p.Records[i])
		}
	}
	f.Add([]byte{0, 1, 2, 3, 4})
	f.Add([]byte{0, 5, 1, 6, 7, 2, 8, 9, 3, 10, 4, 4, 0})
	f.Add([]byte{4, 3, 2, 1, 0, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, seq []byte) {
		var recs []*ledger.Block
		next, forked := 0, false
		for _, c := range seq {
			i := int(c) % len(pool)
			recs = append(recs, pool[i])
			if i == dup {
				i = 1
			}
			for j, g := range p.Genuine {
				if pool[i] == g {
					i = j // the out-of-order record is block 4 itself
				}
			}
			switch {
			case forked:
			case i == fork && next == 2:
				next, forked = 3, true
			case i == next && next < len(p.Genuine):
				next++
			}
		}
		sum, err := ledger.Verify(context.Background(), ledgertest.Blocks(recs), s.Public())
		if sum.Blocks != uint64(next) {
			t.Fatalf("%v: %d blocks verified, want %d (%v)", seq, sum.Blocks, next, err)
		}
		if want := p.Genuine[max(next, 1)-1]; forked {
			if sum.Head != pool[fork].Header {
				t.Fatalf("%v: head %+v, want the fork's", seq, sum.Head)
			}
		} else if next > 0 && sum.Head != want.Header {
			t.Fatalf("%v: head %+v", seq, sum.Head)
		}
		var bad *ledger.BadRecords
		if skipped := len(recs) - next; (skipped == 0) != (err == nil) || (skipped > 0 && (!errors.As(err, &bad) || bad.Count != uint64(skipped))) {
			t.Fatalf("%v: %d skipped, err %v", seq, skipped, err)
		}
	})
}

// BenchmarkBadRecord is what a reader pays per record of each kind, as a
// ratio to a genuine block of the same book (Verify of the genuine book
// over its block count; blocks of 1 to 3 entries): the cost of a flood of
// bad records on the blocks topic.
func BenchmarkBadRecord(b *testing.B) {
	s, _ := ledger.NewSigner(ledgertest.Origin, ledgertest.Key(1))
	p := ledgertest.Poison(b, s)
	base := func() *ledger.Book {
		book := ledger.NewBook()
		for _, g := range p.Genuine[:3] {
			if err := book.Apply(g, s.Public()); err != nil {
				b.Fatal(err)
			}
		}
		return book
	}
	perOp := func(fn func()) float64 {
		const n = 300
		start := time.Now()
		for range n {
			fn()
		}
		return float64(time.Since(start).Nanoseconds()) / n
	}
	genuine := perOp(func() {
		if _, err := ledger.Verify(context.Background(), ledgertest.Blocks(p.Genuine), s.Public()); err != nil {
			b.Fatal(err)
		}
	}) / float64(len(p.Genuine))
	book := base()
	for i, r := range p.Reasons {
		if r == "" {
			continue
		}
		rec := ledger.Record{Offset: int64(i), Block: p.Records[i], Err: ledger.ErrBlock}
		b.Run(string(r), func(b *testing.B) {
			for range b.N {
				if book.ApplyRecord(rec, s.Public()) == nil {
					b.Fatal("applied")
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/genuine, "x_genuine_block")
		})
	}
}
