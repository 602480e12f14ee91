package ledger_test

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
	"github.com/minecart/minecart/services/ledger/merkle"
)

// TestAppendLargeRelease: a release large enough to be encoded and
// recorded on two goroutines gives the book, blocks and appended entries
// of the same release appended on one core (GOMAXPROCS 1), and the tree of
// a bare append of the entries' encodings; a repeated id is skipped.
func TestAppendLargeRelease(t *testing.T) {
	s, err := ledger.NewSigner(ledgertest.Origin, ledgertest.Key(1))
	if err != nil {
		t.Fatal(err)
	}
	var entries []ledger.Entry
	for i := range 5000 {
		entries = append(entries, ledgertest.Credit(fmt.Sprintf("veh-%05d", i%4000), 1+i/4000, int64(i%40)))
	}
	entries[3000] = entries[10] // a repeat within the release
	run := func(procs int) (*ledger.Book, []*ledger.Block, []ledger.Appended, []ledger.Entry) {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		book := ledger.NewBook()
		blocks, out, skipped, err := book.Append(ledger.Release{Entries: entries, TimestampMs: 3 * ledgertest.DayMs}, 1000, s)
		if err != nil {
			t.Fatal(err)
		}
		return book, blocks, out, skipped
	}
	book1, blocks1, out1, skipped1 := run(1)
	book2, blocks2, out2, skipped2 := run(2)
	if len(skipped1) != 1 || len(skipped2) != 1 || skipped2[0].ID != entries[10].ID {
		t.Fatalf("skipped %d and %d entries, want the repeat of %q", len(skipped1), len(skipped2), entries[10].ID)
	}
	if len(blocks1) != 5 || len(blocks2) != len(blocks1) || len(out2) != len(out1) || len(out2) != 4999 {
		t.Fatalf("%d and %d blocks, %d and %d entries", len(blocks1), len(blocks2), len(out1), len(out2))
	}
	for i := range blocks1 {
		if blocks1[i].Header != blocks2[i].Header || blocks1[i].Checkpoint != blocks2[i].Checkpoint {
			t.Fatalf("block %d differs between one and two cores", i)
		}
	}
	var bare merkle.Tree
	for i := range out2 {
		want, err := out2[i].Entry.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out2[i].Raw, want) || !bytes.Equal(out1[i].Raw, want) || out2[i].LeafIndex != uint64(i) || out1[i].Entry.ID != out2[i].Entry.ID {
			t.Fatalf("appended entry %d differs", i)
		}
		bare.Append(want)
	}
	if book2.Tree().Root() != bare.Root() || book1.Tree().Root() != bare.Root() {
		t.Fatal("book and bare tree disagree")
	}
	if leaf, ok := book2.CreditLeaf(entries[3999].ID); !ok || leaf != 3998 {
		t.Fatalf("credit leaf of entry 3999: %d %v, want 3998 (after the skipped repeat)", leaf, ok)
	}
	if d := book2.FirstCreditDate("veh-00007"); d != entries[7].Date {
		t.Fatalf("first credit date %q, want %q", d, entries[7].Date)
	}
}

// TestAppendLargeReleaseErrors: in a release encoded by chunks on two
// goroutines, the first invalid entry (the lowest index, whichever chunk
// it is in) is the one reported, and the book is left as it was.
func TestAppendLargeReleaseErrors(t *testing.T) {
	s, err := ledger.NewSigner(ledgertest.Origin, ledgertest.Key(1))
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]int{{0}, {511, 512}, {512, 4999}, {2047, 100}, {4999}, {3000, 3001}} {
		book, _ := ledgertest.SmallBook(t, s)
		size, head, root := book.Size(), book.Head(), book.Tree().Root()
		var entries []ledger.Entry
		for i := range 5000 {
			entries = append(entries, ledgertest.Credit(fmt.Sprintf("veh-%05d", i), 9, 1))
		}
		for _, at := range bad {
			entries[at] = ledger.Entry{Kind: ledger.KindDebit, ID: fmt.Sprintf("bad-%d", at)} // no account: invalid
		}
		first := min(bad[0], bad[len(bad)-1])
		_, _, _, err := book.Append(ledger.Release{Entries: entries, TimestampMs: 10 * ledgertest.DayMs}, 1000, s)
		if !errors.Is(err, ledger.ErrEntry) || !strings.Contains(err.Error(), fmt.Sprintf("%q", fmt.Sprintf("bad-%d", first))) {
			t.Fatalf("invalid entries %v: %v, want entry %d's ErrEntry", bad, err, first)
		}
		if book.Size() != size || book.Head() != head || book.Tree().Root() != root {
			t.Fatalf("invalid entries %v: the book changed", bad)
		}
		for _, i := range []int{0, 1, 2046, 4998} {
			if entries[i].Kind == ledger.KindCredit {
				if _, ok := book.Credited(entries[i].ID); ok {
					t.Fatalf("invalid entries %v: credit %d stayed in the idempotency set", bad, i)
				}
			}
		}
		if d := book.FirstCreditDate("veh-00001"); d != "" {
			t.Fatalf("invalid entries %v: vehicle has a first credit %q", bad, d)
		}
	}
}
