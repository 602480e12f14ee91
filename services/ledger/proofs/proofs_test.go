package proofs_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
	"github.com/minecart/minecart/services/ledger/merkle"
	"github.com/minecart/minecart/services/ledger/proofs"
)

type idle struct{}

func (idle) Follow(ctx context.Context, _ func(*ledger.Block) error, _ func()) error {
	<-ctx.Done()
	return nil
}

// TestProvers runs the same checks against the Server and against a
// Client of its HTTP API: both are Provers with the same answers and the
// same errors, and every proof checks against the signed checkpoints.
func TestProvers(t *testing.T) {
	signer, _ := ledger.NewSigner(ledgertest.Origin, ledgertest.Key(1))
	_, blocks := ledgertest.SmallBook(t, signer)
	srv, err := proofs.NewServer(proofs.Config{Blocks: idle{}, PublicKey: signer.Public()})
	if err != nil {
		t.Fatal(err)
	}
	empty, err := srv.Head(context.Background())
	if err != nil || empty.TreeSize != 0 || empty.Root != merkle.EmptyRoot.String() {
		t.Errorf("empty head %+v, %v", empty, err)
	}
	for _, b := range blocks {
		if err := srv.Apply(b); err != nil {
			t.Fatal(err)
		}
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	for name, p := range map[string]proofs.Prover{"server": srv, "client": proofs.NewClient(nil, hs.URL+"/")} {
		t.Run(name, func(t *testing.T) { checkProver(t, p, signer, blocks) })
	}
}

func checkProver(t *testing.T, p proofs.Prover, signer *ledger.Signer, blocks []*ledger.Block) {
	ctx := context.Background()
	head, err := p.Head(ctx)
	last := blocks[len(blocks)-1]
	if err != nil || head.TreeSize != 7 || head.Blocks != 3 || head.Height != 2 || head.Clock != "wall" ||
		head.Checkpoint != last.Checkpoint || head.BlockHash != last.Header.Hash().String() {
		t.Fatalf("head %+v, %v", head, err)
	}
	root, _ := merkle.ParseHash(head.Root)
	for leaf := uint64(0); leaf < head.TreeSize; leaf++ {
		for _, size := range []uint64{0, leaf + 1, head.TreeSize} {
			pr, err := p.InclusionProof(ctx, leaf, size)
			if err != nil {
				t.Fatalf("leaf %d size %d: %v", leaf, size, err)
			}
			want := root
			if size != 0 && size != head.TreeSize {
				want, _ = merkle.ParseHash(pr.Root)
			} else if pr.Checkpoint != head.Checkpoint {
				t.Errorf("leaf %d at the head: checkpoint %q", leaf, pr.Checkpoint)
			}
			lh, _ := merkle.ParseHash(pr.LeafHash)
			if lh != merkle.HashLeaf(blockEntry(blocks, leaf)) {
				t.Errorf("leaf %d: leaf hash %s", leaf, pr.LeafHash)
			}
			if err := merkle.VerifyInclusion(leaf, pr.TreeSize, lh, parse(t, pr.Proof), want); err != nil {
				t.Errorf("leaf %d size %d: %v", leaf, size, err)
			}
		}
	}
	// Between any two checkpoints the ledger signed, the consistency proof
	// checks as a client holding the older one checks it.
	for _, a := range blocks {
		for _, b := range blocks {
			if a.Header.TreeSize > b.Header.TreeSize {
				continue
			}
			c, err := p.ConsistencyProof(ctx, a.Header.TreeSize, b.Header.TreeSize)
			if err != nil {
				t.Fatal(err)
			}
			if err := ledger.CheckConsistency(a.Checkpoint, b.Checkpoint, parse(t, c.Proof), signer.Public()); err != nil {
				t.Errorf("consistency %d..%d: %v", a.Header.TreeSize, b.Header.TreeSize, err)
			}
		}
	}
	for _, c := range []struct {
		what string
		err  error
		want error
	}{
		{"leaf past the head", second(p.InclusionProof(ctx, 7, 0)), ledger.ErrNotFound},
		{"tree past the head", second(p.InclusionProof(ctx, 0, 8)), ledger.ErrNotFound},
		{"leaf past the tree", second(p.InclusionProof(ctx, 5, 3)), proofs.ErrBadRequest},
		{"second past the head", second(p.ConsistencyProof(ctx, 1, 9)), ledger.ErrNotFound},
		{"first past second", second(p.ConsistencyProof(ctx, 5, 2)), proofs.ErrBadRequest},
	} {
		if !errors.Is(c.err, c.want) || c.err.Error() == "" {
			t.Errorf("%s: %v, want %v", c.what, c.err, c.want)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func blockEntry(blocks []*ledger.Block, leaf uint64) []byte {
	for _, b := range blocks {
		if leaf <= b.Header.LastIndex {
			return b.Entries[leaf-b.Header.FirstIndex]
		}
	}
	return nil
}

func parse(t *testing.T, hs []string) []merkle.Hash {
	t.Helper()
	out := make([]merkle.Hash, len(hs))
	for i, s := range hs {
		h, err := merkle.ParseHash(s)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = h
	}
	return out
}

// TestLeafIndexNotEntryID: a request id that reads as a number ("2", at
// leaf 7) names that entry on the HTTP entries path, but the typed call
// (Server and Client alike) proves the leaf index it is given.
func TestLeafIndexNotEntryID(t *testing.T) {
	signer, _ := ledger.NewSigner(ledgertest.Origin, ledgertest.Key(1))
	book, blocks := ledgertest.SmallBook(t, signer)
	more, _, _, err := book.Append(ledger.Release{TimestampMs: 1_900_000_000_000, Clock: ledger.ClockWall, Entries: []ledger.Entry{
		{Kind: ledger.KindDebit, ID: "2", Account: "acct-1", Amount: 1, Reason: "redemption"},
	}}, 3, signer)
	if err != nil {
		t.Fatal(err)
	}
	blocks = append(blocks, more...)
	srv, err := proofs.NewServer(proofs.Config{Blocks: idle{}, PublicKey: signer.Public()})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		if err := srv.Apply(b); err != nil {
			t.Fatal(err)
		}
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	ctx := context.Background()
	for name, p := range map[string]proofs.Prover{"server": srv, "client": proofs.NewClient(nil, hs.URL)} {
		pr, err := p.InclusionProof(ctx, 2, 0)
		if err != nil || pr.LeafIndex != 2 || pr.LeafHash != merkle.HashLeaf(blockEntry(blocks, 2)).String() {
			t.Errorf("%s: leaf 2: %+v, %v; want the proof of leaf 2", name, pr, err)
		}
	}
	var byID proofs.Proof
	getJSON(t, hs.URL+"/v1/ledger/entries/2/proof", http.StatusOK, &byID)
	if byID.ID != "2" || byID.LeafIndex != 7 {
		t.Errorf("entry id 2: %+v, want leaf 7", byID)
	}
	var byIndex proofs.Proof
	getJSON(t, hs.URL+"/v1/ledger/entries/3/proof", http.StatusOK, &byIndex)
	if byIndex.LeafIndex != 3 {
		t.Errorf("entries/3 (no such id): %+v, want leaf 3", byIndex)
	}
	getJSON(t, hs.URL+"/v1/ledger/leaves/x/proof", http.StatusBadRequest, nil)
	getJSON(t, hs.URL+"/v1/ledger/leaves/8/proof", http.StatusNotFound, nil)
	getJSON(t, hs.URL+"/v1/ledger/leaves/1/proof?tree_size=x", http.StatusBadRequest, nil)
}

func getJSON(t *testing.T, url string, code int, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != code {
		t.Fatalf("GET %s: status %d, want %d", url, resp.StatusCode, code)
	}
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
	}
}
