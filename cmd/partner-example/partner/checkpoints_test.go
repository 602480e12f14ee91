package partner_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/minecart/minecart/cmd/partner-example/partner"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
	"github.com/minecart/minecart/services/ledger/proofs"
)

// quorumBook is a ledger's book behind a real proofs API, a fork of it
// under the same key, and a 2-of-3 witness policy with the witnesses'
// signers.
type quorumBook struct {
	s          *ledger.Signer
	p          *ledger.Policy
	api        *httptest.Server
	book, fork *ledger.Book
	cosign     func(cp string, by ...int) string
	grow       func(b *ledger.Book, n int, prefix string, apply bool) string
}

func newQuorumBook(t *testing.T) *quorumBook {
	s, err := ledger.NewSigner(ledgertest.Origin, ledgertest.Key(1))
	if err != nil {
		t.Fatal(err)
	}
	var signers []note.Signer
	policy := "log " + s.VerifierKey() + "\n"
	for i := 0; i < 3; i++ {
		sg, vkey := ledgertest.Cosigner(t, fmt.Sprintf("witness.test/w%d", i+1), byte(30+i))
		signers = append(signers, sg)
		policy += fmt.Sprintf("witness w%d %s http://127.0.0.1:%d\n", i+1, vkey, 9000+i)
	}
	p, err := ledger.ParsePolicy([]byte(policy + "group g 2 w1 w2 w3\nquorum g\n"))
	if err != nil {
		t.Fatal(err)
	}
	lv, _ := note.NewVerifier(s.VerifierKey())
	cosign := func(cp string, by ...int) string {
		var sg []note.Signer
		for _, i := range by {
			sg = append(sg, signers[i])
		}
		return ledgertest.Cosign(t, cp, lv, sg...)
	}
	// The ledger's book behind a real proofs API; a fork under the same key.
	srv, err := proofs.NewServer(proofs.Config{Blocks: idle{}, PublicKey: s.Public()})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(srv.Handler())
	t.Cleanup(api.Close)
	book, fork := ledger.NewBook(), ledger.NewBook()
	grow := func(b *ledger.Book, n int, prefix string, apply bool) string {
		rel := ledger.Release{TimestampMs: 2 * ledgertest.DayMs}
		for i := 0; i < n; i++ {
			rel.Entries = append(rel.Entries, ledgertest.Credit(fmt.Sprintf("%s%04d", prefix, int(b.Size())+i), 2, 10))
		}
		blks, _, _, err := b.Append(rel, n, s)
		if err != nil {
			t.Fatal(err)
		}
		if apply {
			for _, blk := range blks {
				if err := srv.Apply(blk); err != nil {
					t.Fatal(err)
				}
			}
		}
		return blks[len(blks)-1].Checkpoint
	}

	return &quorumBook{s: s, p: p, api: api, book: book, fork: fork, cosign: cosign, grow: grow}
}

// TestCheckpoints: the partner accepts checkpoints cosigned by the
// policy's quorum that extend the last one accepted (proofs fetched from
// a real proofs API, kept across a restart in the state file), and
// refuses one below quorum, one with a forged cosignature and one
// inconsistent with the last accepted, leaving the state as it was; an older one
// that the last accepted extends (a copy read late) is ErrOlder, not kept.
func TestCheckpoints(t *testing.T) {
	q := newQuorumBook(t)
	s, p, api, book, fork, cosign, grow := q.s, q.p, q.api, q.book, q.fork, q.cosign, q.grow
	cp10 := grow(book, 10, "v", true)
	grow(fork, 10, "v", false)
	cp30 := grow(book, 20, "v", true)
	fork30 := grow(fork, 20, "x", false)
	cp50 := grow(book, 20, "v", true)

	state := filepath.Join(t.TempDir(), "partner.checkpoint")
	newChecker := func() *partner.Checkpoints {
		return &partner.Checkpoints{Policy: p, LedgerKey: s.Public(), StatePath: state, Prove: partner.ConsistencyFrom(api.URL, nil)}
	}
	c := newChecker()
	if _, _, err := c.Check(cosign(cp10, 0, 1)); err != nil {
		t.Fatal(err)
	}
	accepted := cosign(cp30, 1, 2)
	if _, signers, err := c.Check(accepted); err != nil || len(signers) != 2 {
		t.Fatalf("extension: %v %v", signers, err)
	}
	oldFork := grow(ledger.NewBook(), 10, "y", false) // another history of size 10
	// A restart: the last accepted comes from the state file.
	c = newChecker()
	other := cosign(cp10, 2)
	for _, tc := range []struct {
		name, text string
		want       error
	}{
		{"below quorum", cosign(cp50, 0), ledger.ErrQuorum},
		{"forged cosignature", cosign(cp50, 0, 1) + other[len(cp10):], ledger.ErrForgedCosignature},
		{"split view", cosign(fork30, 0, 1, 2), ledger.ErrNotConsistent},
		{"older (rollback)", cosign(cp10, 0, 1), partner.ErrOlder},
		{"older fork", cosign(oldFork, 0, 1), ledger.ErrNotConsistent},
	} {
		if _, _, err := c.Check(tc.text); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if b, _ := os.ReadFile(state); string(b) != accepted {
			t.Fatalf("%s: the state moved", tc.name)
		}
	}
	// A fork larger than the last accepted: the honest API's proof does
	// not link it.
	grow(fork, 20, "x", false)
	if _, _, err := c.Check(cosign(fork.Checkpoint(), 0, 1)); !errors.Is(err, ledger.ErrNotConsistent) {
		t.Errorf("larger fork: %v", err)
	}
	if _, _, err := c.Check(cosign(cp50, 0, 2)); err != nil {
		t.Fatalf("honest next: %v", err)
	}
}

type idle struct{}

func (idle) Follow(ctx context.Context, _ func(*ledger.Block) error, _ func()) error {
	<-ctx.Done()
	return nil
}
