package proofs_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
	"github.com/minecart/minecart/services/ledger/proofs"
	"github.com/minecart/minecart/services/witness"
)

// TestCosignedCheckpoint: with a witness policy the Server serves on
// /ledger/checkpoint only a checkpoint that carries the ledger's signature
// and the policy's quorum and agrees with its book; the newest wins; the
// proofs at the default size are against that published tree, with its
// cosigned note, and leaves beyond it get the head's proof without one.
func TestCosignedCheckpoint(t *testing.T) {
	ctx := context.Background()
	signer, _ := ledger.NewSigner(ledgertest.Origin, ledgertest.Key(1))
	_, blocks := ledgertest.SmallBook(t, signer) // sizes 3, 5, 7
	var ws []*witness.Witness
	var policy strings.Builder
	for i := range 3 {
		w, err := witness.New(witness.Config{Dir: t.TempDir(), Name: fmt.Sprintf("witness.test/w%d", i+1), Logs: []string{signer.VerifierKey()}, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
		fmt.Fprintf(&policy, "witness w%d %s http://w%d.invalid\n", i+1, w.VerifierKey(), i+1)
	}
	policy.WriteString("group g 2 w1 w2 w3\nquorum g\n")
	p, err := ledger.ParsePolicy([]byte(policy.String()))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := proofs.NewServer(proofs.Config{Blocks: idle{}, PublicKey: signer.Public(), Policy: p})
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
	get := func() (int, string) {
		resp, err := http.Get(hs.URL + "/ledger/checkpoint")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(); code != 404 {
		t.Fatalf("before any cosigned checkpoint: %d %q", code, body)
	}
	// cosign has the witnesses ws[i] cosign cp (after old) and returns the note.
	cosign := func(cp string, old uint64, who ...int) string {
		note := cp
		for _, i := range who {
			body := fmt.Sprintf("old %d\n", old)
			if old > 0 {
				tree := ledger.NewBook()
				for _, b := range blocks {
					_ = tree.Apply(b, signer.Public())
				}
				cpv, _ := ledger.VerifyCheckpoint(cp, signer.Public())
				proof, err := tree.Tree().ConsistencyProof(old, cpv.Size)
				if err != nil {
					t.Fatal(err)
				}
				for _, h := range proof {
					body += base64.StdEncoding.EncodeToString(h[:]) + "\n"
				}
			}
			sig, err := ws[i].AddCheckpoint([]byte(body + "\n" + cp))
			if err != nil {
				t.Fatalf("w%d cosigning: %v", i+1, err)
			}
			note += string(sig)
		}
		return note
	}
	one := cosign(blocks[0].Checkpoint, 0, 0)
	if err := srv.AddCosigned([]byte(one)); !errors.Is(err, ledger.ErrQuorum) {
		t.Errorf("one cosignature: %v, want ErrQuorum", err)
	}
	three := cosign(blocks[0].Checkpoint, 0, 1, 2)
	three = strings.Replace(three, blocks[0].Checkpoint, one, 1)
	if err := srv.AddCosigned([]byte(three)); err != nil {
		t.Fatalf("size 3, three cosignatures: %v", err)
	}
	five := cosign(blocks[1].Checkpoint, 3, 0, 1)
	if err := srv.AddCosigned([]byte(five)); err != nil {
		t.Fatal(err)
	}
	if err := srv.AddCosigned([]byte(three)); err != nil {
		t.Errorf("an older one: %v, want nil (ignored)", err)
	}
	if code, body := get(); code != 200 || body != five {
		t.Fatalf("/ledger/checkpoint: %d\n%s\nwant\n%s", code, body, five)
	}
	h, _ := srv.Head(ctx)
	if h.CosignedSize != 5 || strings.Join(h.CosignedSigners, ",") != "w1,w2" || h.Cosigned != five || h.TreeSize != 7 {
		t.Errorf("head %+v", h)
	}
	pr, err := srv.InclusionProof(ctx, 2, 0)
	if err != nil || pr.TreeSize != 5 || pr.Checkpoint != five {
		t.Errorf("proof of leaf 2 at the default size: %+v %v", pr, err)
	}
	pr, err = srv.InclusionProof(ctx, 6, 0)
	if err != nil || pr.TreeSize != 7 || pr.Checkpoint != "" {
		t.Errorf("proof of leaf 6 (not yet published): %+v %v", pr, err)
	}

	// A fork of size 7 cosigned by a quorum of other witnesses the
	// policy does not know: refused (no quorum of the policy).
	// A checkpoint signed by another key: refused.
	other, _ := ledger.NewSigner(ledgertest.Origin, ledgertest.Key(2))
	_, oblocks := ledgertest.SmallBook(t, other)
	if err := srv.AddCosigned([]byte(oblocks[2].Checkpoint)); err == nil {
		t.Error("another key's checkpoint accepted")
	}
	// The same key, size 7, another root, with the policy's quorum (the
	// witnesses have not seen 7 yet): the Server's book says split view.
	forked := ledger.NewBook()
	rel := ledger.Release{TimestampMs: 2 * ledgertest.DayMs}
	for _, v := range []string{"v1", "v2", "v3", "v4", "v5", "x6", "x7"} {
		rel.Entries = append(rel.Entries, ledgertest.Credit(v, 2, 100))
	}
	fb, _, _, err := forked.Append(rel, 7, signer)
	if err != nil {
		t.Fatal(err)
	}
	fnote := fb[0].Checkpoint
	// w3 holds size 3, a prefix the fork shares: it cosigns the fork.
	proof, _ := forked.Tree().ConsistencyProof(3, 7)
	body := "old 3\n"
	for _, h := range proof {
		body += base64.StdEncoding.EncodeToString(h[:]) + "\n"
	}
	sig3, err := ws[2].AddCheckpoint([]byte(body + "\n" + fnote))
	if err != nil {
		t.Fatalf("w3 on the fork: %v", err)
	}
	// w3 alone is not the quorum: refused before the book is consulted.
	if err := srv.AddCosigned([]byte(fnote + string(sig3))); !errors.Is(err, ledger.ErrQuorum) {
		t.Errorf("fork with one cosignature: %v", err)
	}
	if code, body := get(); code != 200 || body != five {
		t.Errorf("after the refusals: %d %q", code, body)
	}
	// Under a policy whose quorum is w3 alone, the fork has its quorum,
	// and the Server's book (size 7, another root) names the split view.
	p3, err := ledger.ParsePolicy(fmt.Appendf(nil, "witness w3 %s http://w3.invalid\nquorum w3\n", ws[2].VerifierKey()))
	if err != nil {
		t.Fatal(err)
	}
	srv3, _ := proofs.NewServer(proofs.Config{Blocks: idle{}, PublicKey: signer.Public(), Policy: p3})
	for _, b := range blocks {
		_ = srv3.Apply(b)
	}
	if err := srv3.AddCosigned([]byte(fnote + string(sig3))); !errors.Is(err, proofs.ErrSplitView) {
		t.Errorf("fork with its quorum: %v, want ErrSplitView", err)
	}
	if _, err := srv3.Checkpoint(); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("after the split view, checkpoint: %v, want none", err)
	}
	// The same fork offered to a Server whose book is behind (size 3):
	// kept, then dropped once the book reaches size 7 with another root.
	srv4, _ := proofs.NewServer(proofs.Config{Blocks: idle{}, PublicKey: signer.Public(), Policy: p3, Logger: slog.New(slog.DiscardHandler)})
	_ = srv4.Apply(blocks[0])
	if err := srv4.AddCosigned([]byte(fnote + string(sig3))); err != nil {
		t.Fatalf("fork beyond the book: %v", err)
	}
	if cp, err := srv4.Checkpoint(); err != nil || cp != fnote+string(sig3) {
		t.Fatalf("beyond the book, served: %v", err)
	}
	_ = srv4.Apply(blocks[1])
	if _, err := srv4.Checkpoint(); err != nil {
		t.Errorf("book at 5, fork of 7 still unjudged: %v", err)
	}
	_ = srv4.Apply(blocks[2])
	if _, err := srv4.Checkpoint(); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("book at 7 contradicts the cosigned fork, still served: %v", err)
	}
}
