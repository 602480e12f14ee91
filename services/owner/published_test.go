package owner

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
	"github.com/minecart/minecart/services/ledger/merkle"
	"github.com/minecart/minecart/services/ledger/proofs"
	"github.com/minecart/minecart/services/witness"
)

type idleBlocks struct{}

func (idleBlocks) Follow(ctx context.Context, _ func(*ledger.Block) error, _ func()) error {
	<-ctx.Done()
	return nil
}

// TestPublishedCheckpoint: GET /v1/ledger/published gives the browser
// the checkpoint published under the quorum (cosigned by real witnesses)
// and the policy, from which alone the client check passes; 404 before a
// publication, 503 without a policy.
func TestPublishedCheckpoint(t *testing.T) {
	s, err := ledger.NewSigner(ledgertest.Origin, ledgertest.Key(1))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var ws []*witness.Witness
	policy := "log " + s.VerifierKey() + "\n"
	for i := 1; i <= 3; i++ {
		w, err := witness.New(witness.Config{Dir: filepath.Join(dir, fmt.Sprint(i)), Name: fmt.Sprintf("witness.test/w%d", i),
			Logs: []string{s.VerifierKey()}, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
		policy += fmt.Sprintf("witness w%d %s http://127.0.0.1:%d\n", i, w.VerifierKey(), 9000+i)
	}
	p, err := ledger.ParsePolicy([]byte(policy + "group g 2 w1 w2 w3\nquorum g\n"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := proofs.NewServer(proofs.Config{Blocks: idleBlocks{}, PublicKey: s.Public(), Policy: p, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	book := ledger.NewBook()
	rel := ledger.Release{TimestampMs: 2 * ledgertest.DayMs}
	for i := 0; i < 12; i++ {
		rel.Entries = append(rel.Entries, ledgertest.Credit(fmt.Sprintf("v%02d", i), 2, 10))
	}
	blks, _, _, err := book.Append(rel, 12, s)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blks {
		if err := srv.Apply(b); err != nil {
			t.Fatal(err)
		}
	}
	h := &handler{cfg: Config{Published: srv, Policy: p, Logger: slog.New(slog.DiscardHandler)}}
	get := func(h *handler) (int, []byte) {
		rec := httptest.NewRecorder()
		h.publishedCheckpoint(rec, httptest.NewRequest(http.MethodGet, "/v1/ledger/published", nil))
		return rec.Code, rec.Body.Bytes()
	}
	if c, _ := get(h); c != http.StatusNotFound {
		t.Fatalf("before publication: %d", c)
	}
	if c, _ := get(&handler{cfg: Config{Published: srv, Logger: slog.New(slog.DiscardHandler)}}); c != http.StatusServiceUnavailable {
		t.Fatalf("without a policy: %d", c)
	}
	cp := book.Checkpoint()
	note := []byte(cp)
	for _, w := range ws[:2] {
		sig, err := w.AddCheckpoint([]byte("old 0\n\n" + cp))
		if err != nil {
			t.Fatal(err)
		}
		note = append(note, sig...)
	}
	if err := srv.AddCosigned(note); err != nil {
		t.Fatal(err)
	}
	c, body := get(h)
	var out PublishedCheckpoint
	if err := json.Unmarshal(body, &out); c != 200 || err != nil {
		t.Fatalf("%d %s %v", c, body, err)
	}
	if !bytes.Equal([]byte(out.Checkpoint), note) || out.TreeSize != 12 || out.Quorum != 2 || out.QuorumText != "2 of 3 witnesses" || len(out.Witnesses) != 3 || out.Log != s.VerifierKey() {
		t.Fatalf("answer %+v", out)
	}
	// A group of groups (as minecart run's, 2 of 3 and a required one):
	// quorum_text spells out the structure that quorum (the top k, 2 of
	// 2) cannot.
	np, err := ledger.ParsePolicy([]byte(policy + "group g 2 w1 w2 w3\ngroup must any w1\ngroup top all g must\nquorum top\n"))
	if err != nil {
		t.Fatal(err)
	}
	var nout PublishedCheckpoint
	if c, body := get(&handler{cfg: Config{Published: srv, Policy: np, Logger: slog.New(slog.DiscardHandler)}}); c != 200 || json.Unmarshal(body, &nout) != nil ||
		nout.QuorumText != "all of (2 of (w1, w2, w3), any of (w1))" || nout.Quorum != 2 {
		t.Fatalf("nested policy: %d %s", c, body)
	}
	// The browser's check, from the answer alone.
	bp, err := ledger.ParsePolicy([]byte(out.Policy))
	if err != nil {
		t.Fatal(err)
	}
	noProof := func(uint64, uint64) ([]merkle.Hash, error) { return nil, nil }
	if _, signers, err := bp.CheckPublished(out.Checkpoint, s.Public(), "", noProof); err != nil || len(signers) != 2 {
		t.Fatalf("client check: %v %v", signers, err)
	}
}
