package stage_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/proofs"
	"github.com/minecart/minecart/services/ledger/stage"
	"github.com/minecart/minecart/services/witness"
)

type idle struct{}

func (idle) Follow(ctx context.Context, _ func(*ledger.Block) error, _ func()) error {
	<-ctx.Done()
	return nil
}

// mirrorSetup is a book, the proofs server that serves it as tiles
// (blocks applied by the caller), two witnesses and a witness in mirror
// mode of those tiles, under a policy requiring 2 of the 3 witnesses and
// the mirror key m3.
func mirrorSetup(t testing.TB, ctx context.Context) (*testLog, *proofs.Server, *ledger.Policy, *witness.Witness) {
	l := newTestLog(t, 1)
	srv, err := proofs.NewServer(proofs.Config{Blocks: idle{}, PublicKey: l.signer.Public(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	tiles := httptest.NewServer(srv.Handler())
	t.Cleanup(tiles.Close)
	w1, w2 := newNode(t, 1, l.signer.VerifierKey()), newNode(t, 2, l.signer.VerifierKey())
	mw, err := witness.New(witness.Config{Dir: t.TempDir(), Name: "witness.test/w3", Logs: []string{l.signer.VerifierKey()}, Mirror: tiles.URL + "/ledger", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = mw.Run(ctx) }()
	m := httptest.NewServer(mw.Handler())
	t.Cleanup(m.Close)
	policy := fmt.Sprintf("log %s\nwitness w1 %s %s\nwitness w2 %s %s\nwitness w3 %s %s\nwitness m3 %s %s/ledger\n"+
		"group witnesses 2 w1 w2 w3\ngroup mirrors any m3\ngroup published all witnesses mirrors\nquorum published\n",
		l.signer.VerifierKey(), w1.w.Load().VerifierKey(), w1.srv.URL, w2.w.Load().VerifierKey(), w2.srv.URL,
		mw.VerifierKey(), m.URL, mw.Mirror().VerifierKey(), m.URL)
	p, err := ledger.ParsePolicy([]byte(policy))
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(p.Witnesses, func(w ledger.PolicyWitness) bool { return w.Name == "m3" }); i < 0 || !p.Witnesses[i].Mirror || p.Witnesses[i].WitnessAPI() != m.URL || p.Witnesses[0].Mirror {
		t.Fatalf("policy witnesses %+v", p.Witnesses)
	}
	if !p.Requires("m3") || p.SatisfiedBy("w1", "w2", "w3") || !p.SatisfiedBy("w1", "w3", "m3") {
		t.Fatal("the policy's evaluation by names")
	}
	return l, srv, p, mw
}

// TestMirrorInQuorum: a policy that requires a mirror's key (a witness
// line at the mirror's /ledger prefix) is met only once the mirror has
// copied and verified the book: the cosigner sends add-checkpoint to the
// mirror's witness API, waits for the mirror checkpoint of that size, and
// appends the mirror key's cosignature, which VerifyCosigned counts (as
// `ledger verify --policy` does). While the ledger does not serve the
// tiles, the mirror cannot copy them and the quorum is not met (after
// MirrorWait); two witnesses without the mirror are not the quorum.
func TestMirrorInQuorum(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l, srv, p, mw := mirrorSetup(t, ctx)
	c := newCosigner(t, p, nil, func(c *stage.CosignConfig) { c.MirrorWait = 2 * time.Second })

	// The ledger does not serve the book yet: the mirror cannot copy it.
	blk := l.grow(300, "v")
	res := c.Cosign(ctx, blk.Checkpoint, blk.Header.TreeSize, l.prove)
	if res.Quorum || slices.Contains(res.Signers, "m3") || len(res.Signers) != 3 {
		t.Fatalf("without the tiles: quorum %v, signers %v, refused %v", res.Quorum, res.Signers, res.Refused)
	}
	for _, b := range l.blocks {
		if err := srv.Apply(b); err != nil {
			t.Fatal(err)
		}
	}
	for i, n := range []int{0, 7} { // the same size again, then a larger one
		if n > 0 {
			blk = l.grow(n, "v")
			if err := srv.Apply(blk); err != nil {
				t.Fatal(err)
			}
		}
		res = c.Cosign(ctx, blk.Checkpoint, blk.Header.TreeSize, l.prove)
		if !res.Quorum || !slices.Contains(res.Signers, "m3") {
			t.Fatalf("round %d: quorum %v, signers %v, refused %v", i, res.Quorum, res.Signers, res.Refused)
		}
		cp, signers, err := p.VerifyCosigned(string(res.Note), l.signer.Public())
		if err != nil || cp.Size != blk.Header.TreeSize || !slices.Contains(signers, "m3") {
			t.Fatalf("round %d: the note: %v %v %v", i, cp.Size, signers, err)
		}
		if got := mw.Mirror().Size(); got != blk.Header.TreeSize {
			t.Fatalf("round %d: the mirror holds %d, want %d", i, got, blk.Header.TreeSize)
		}
		// Without the mirror's line the note is not the quorum.
		if p.Satisfied(res.Note[:len(res.Note)-len(lastLine(res.Note))]) {
			t.Fatal("the quorum was met without the mirror's cosignature")
		}
	}
}

func lastLine(b []byte) []byte {
	i := len(b) - 2
	for i >= 0 && b[i] != '\n' {
		i--
	}
	return b[i+1:]
}

// BenchmarkCosignMirror is BenchmarkCosign with the mirror in the quorum
// (2 of 3 witnesses and the mirror key): each round also waits for the
// mirror to fetch, verify and fsync the block's tiles and bundles from a
// real proofs server over HTTP and cosign. Blocks of 1,000 credits.
// Run: go test -run '^$' -bench CosignMirror -benchtime 100x ./services/ledger/stage
func BenchmarkCosignMirror(b *testing.B) {
	const perBlock = 1000
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l, srv, p, _ := mirrorSetup(b, ctx)
	c := newCosigner(b, p, nil, func(c *stage.CosignConfig) { c.Timeout = 10 * time.Second; c.MirrorWait = time.Minute })
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		blk := l.grow(perBlock, "v")
		if err := srv.Apply(blk); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		res := c.Cosign(ctx, blk.Checkpoint, blk.Header.TreeSize, l.prove)
		lat = append(lat, time.Since(t0))
		if !res.Quorum || !slices.Contains(res.Signers, "m3") {
			b.Fatalf("block %d: %v %v", i, res.Signers, res.Refused)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	b.ReportMetric(float64(pct(0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(pct(0.99).Microseconds())/1000, "p99-ms")
}
