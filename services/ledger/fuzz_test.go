package ledger

import (
	"bytes"
	"context"
	"testing"
)

// FuzzDecodeEntry: DecodeEntry never panics, and whatever it accepts is
// canonical: it re-encodes to exactly the input.
func FuzzDecodeEntry(f *testing.F) {
	for _, e := range []Entry{
		credit("veh-1", 3, 42),
		{Kind: KindDebit, ID: "r", Account: "a", Amount: 1, Partner: "p", Item: "i", RedemptionID: "x", RequestedAtMs: 5},
		{Kind: KindAdjustment, ID: "r2", VehicleID: "v", Amount: -7, Reason: "fix", Ref: "v/d"},
	} {
		raw, _ := e.Encode()
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEntry(b)
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
	s, _ := NewSigner("minecart.test/ledger", testKey(1))
	_, blocks := smallBook(f, s)
	f.Add(export(f, blocks))
	f.Add(export(f, blocks[:1]))
	f.Add([]byte(exportMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		var got []*Block
		src := ReadExport(bytes.NewReader(b))
		collectSrc := blockFunc(func(ctx context.Context, fn func(*Block) error) error {
			return src.Blocks(ctx, func(blk *Block) error {
				c := *blk
				got = append(got, &c)
				return fn(blk)
			})
		})
		if _, err := Verify(context.Background(), collectSrc, s.Public()); err != nil {
			return
		}
		if re := export(t, got); !bytes.Equal(re, b) {
			t.Fatalf("verified export does not re-export to the same bytes")
		}
	})
}

type blockFunc func(ctx context.Context, fn func(*Block) error) error

func (f blockFunc) Blocks(ctx context.Context, fn func(*Block) error) error { return f(ctx, fn) }
