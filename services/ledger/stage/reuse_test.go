package stage

import (
	"context"
	"testing"

	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
)

// tailSource is a published book whose tail is the given records, the
// whole topic or not.
type tailSource struct {
	recs  []ledger.Record
	whole bool
}

func (s tailSource) Blocks(ctx context.Context, fn func(ledger.Record) error) error {
	for _, r := range s.recs {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

func (s tailSource) Tail(context.Context) ([]ledger.Record, bool, error) { return s.recs, s.whole, nil }

// TestReuse: a task restarted in the same process resumes the previous
// task's book only where the tail of the blocks topic proves which of its
// blocks are published, whatever else was written there: duplicates,
// forged blocks and garbage never make it undo published blocks (which
// would make the writer sign a fork), and another writer's blocks make it
// rebuild.
func TestReuse(t *testing.T) {
	s, _ := ledger.NewSigner(ledgertest.Origin, ledgertest.Key(1))
	p := ledgertest.Poison(t, s)
	g := p.Genuine // heights 0..4; the writer's book has all 5
	fork, forged := p.Records[8], p.Records[4]
	recs := func(bs ...*ledger.Block) tailSource {
		out := tailSource{recs: make([]ledger.Record, len(bs))}
		for i, b := range bs {
			out.recs[i] = ledger.Record{Offset: int64(i), Block: b, Err: nil}
			if b == nil {
				out.recs[i].Err = ledger.ErrBlock
			}
		}
		return out
	}
	whole := func(s tailSource) tailSource { s.whole = true; return s }
	for _, c := range []struct {
		name      string
		committed uint64
		tail      tailSource
		want      int64 // the resumed book's height, -1: rebuild
	}{
		{"all committed", 5, recs(g...), 5},
		{"all committed, junk after", 5, recs(g[0], g[1], g[2], g[3], g[4], nil, forged, g[1]), 5},
		{"last transaction (3, 4) published", 3, recs(g...), 5},
		{"last transaction published, then copies and junk", 3, recs(g[2], g[3], g[4], g[1], nil, forged, g[2]), 5},
		{"last transaction aborted, the whole topic seen", 3, whole(recs(g[0], g[1], g[2])), 3},
		{"last transaction aborted, with junk, the whole topic seen", 3, whole(recs(g[0], nil, g[1], forged, g[2], g[1])), 3},
		{"last transaction aborted, empty topic", 0, whole(recs()), 0},
		{"last transaction aborted, or published before copies of 0-2 filling the window", 3, recs(g[0], g[1], g[2]), -1},
		{"last transaction aborted, or pushed out by junk", 3, recs(g[1], g[2], nil), -1},
		{"published blocks missing from the whole topic", 3, whole(recs(g[0], g[1])), -1},
		{"another block signed by the key", 5, recs(g[0], g[1], fork), -1},
		{"a block the book does not have", 3, recs(g[0], g[1], g[2]), 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			book := ledgertest.Poison(t, s).Writer
			if c.name == "a block the book does not have" {
				if err := book.Undo(2); err != nil {
					t.Fatal(err)
				}
				c.committed, c.want = 2, -1
			}
			ok := reuse(context.Background(), c.tail, s.Public(), book, c.committed)
			switch {
			case c.want < 0 && ok:
				t.Errorf("resumed at height %d, want a rebuild", book.Height())
			case c.want >= 0 && !ok:
				t.Errorf("rebuild, want resumed at height %d", c.want)
			case ok && int64(book.Height()) != c.want:
				t.Errorf("resumed at height %d, want %d", book.Height(), c.want)
			case ok && c.want > 0 && book.Head() != g[c.want-1].Header:
				t.Errorf("resumed head %+v, want block %d's", book.Head(), c.want-1)
			}
		})
	}
}
