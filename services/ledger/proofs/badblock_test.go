package proofs_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
	"github.com/minecart/minecart/services/ledger/proofs"
)

// blockFollower follows records given in memory, as a Follower of blocks
// only (no offsets, no undecodable records) or as a RecordFollower.
type blockFollower struct{ recs []ledger.Record }

func (f blockFollower) Follow(ctx context.Context, fn func(*ledger.Block) error, caught func()) error {
	for _, r := range f.recs {
		if r.Block != nil {
			if err := fn(r.Block); err != nil {
				return err
			}
		}
	}
	caught()
	return nil
}

type recordFollower struct{ blockFollower }

func (f recordFollower) FollowRecords(ctx context.Context, fn func(ledger.Record) error, caught func()) error {
	for _, r := range f.recs {
		if err := fn(r); err != nil {
			return err
		}
	}
	caught()
	return nil
}

// alerts records what the Server reports.
type alerts struct {
	mu  sync.Mutex
	got []*ledger.BadRecord
}

func (a *alerts) Alert(_ context.Context, _ ledger.Record, bad *ledger.BadRecord) error {
	a.mu.Lock()
	a.got = append(a.got, bad)
	a.mu.Unlock()
	return nil
}

// TestServerSkipsBadRecords: a Server following a poisoned book serves
// the genuine book, counts each bad record by reason, tells Alerts of each
// with its offset, and returns nil from Run; a Follower that hands over
// blocks only (no offsets) gives the same book.
func TestServerSkipsBadRecords(t *testing.T) {
	signer, _ := ledger.NewSigner(ledgertest.Origin, ledgertest.Key(1))
	p := ledgertest.Poison(t, signer)
	var recs []ledger.Record
	for i, b := range p.Records {
		rec := ledger.Record{Offset: int64(100 + i), Block: b}
		if b == nil {
			rec.Err = ledger.ErrBlock
		}
		recs = append(recs, rec)
	}
	want := p.Genuine[len(p.Genuine)-1].Header
	for name, f := range map[string]proofs.Follower{"records": recordFollower{blockFollower{recs}}, "blocks": blockFollower{recs}} {
		t.Run(name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			al := &alerts{}
			srv, err := proofs.NewServer(proofs.Config{Blocks: f, PublicKey: signer.Public(), Alerts: al, Registerer: reg, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			if err := srv.Run(context.Background()); err != nil {
				t.Fatalf("run: %v", err)
			}
			h, _ := srv.Head(context.Background())
			if h.TreeSize != want.TreeSize || h.BlockHash != want.Hash().String() || !h.CaughtUp {
				t.Errorf("head %+v, want the genuine %+v", h, want)
			}
			var n int
			for i, r := range p.Reasons {
				if r == "" || (name == "blocks" && p.Records[i] == nil) {
					continue
				}
				if n >= len(al.got) || al.got[n].Reason != r || (name == "records" && al.got[n].Offset != int64(100+i)) {
					t.Errorf("alert %d: %v, want %s at offset %d", n, al.got, r, 100+i)
				}
				n++
			}
			if len(al.got) != n || h.BadRecords != uint64(n) {
				t.Errorf("%d alerts, %d bad records in the head; want %d", len(al.got), h.BadRecords, n)
			}
			if got := testutil.ToFloat64(srv.BadBlocksCounter().WithLabelValues(proofs.ReaderLabel, string(ledger.ReasonForged))); got != 1 {
				t.Errorf("forged counted %v, want 1", got)
			}
			if c, err := testutil.GatherAndCount(reg, ledger.BadBlocksMetric); err != nil || c != len(ledger.Reasons) {
				t.Errorf("%d series of %s (%v), want one per reason", c, ledger.BadBlocksMetric, err)
			}
		})
	}
}
