package web_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/merkle"
)

// TestBrowserVerifiers runs the browser's ledger checks (assets/js/common.js
// in chromium) on vectors from the Go implementation: every inclusion
// proof and every consistency proof of the trees of 1 to 33 leaves must
// verify, and each with one proof hash flipped, or claimed for another
// index, leaf or root, must not (the tree size is bound by the signed
// checkpoint, not by the proof); a checkpoint signed by the ledger key verifies
// (with a witness cosignature listed), the same with its size changed, one
// signed by another key, or one for another origin do not.
func TestBrowserVerifiers(t *testing.T) {
	if testing.Short() {
		t.Skip("browser")
	}
	pub, priv, _ := ed25519.GenerateKey(nil)
	f := newFixtureKey(t, pub)
	var tree merkle.Tree
	type incl struct {
		I, N  uint64
		Leaf  string
		Proof []string
		Root  string
	}
	type cons struct {
		M, N         uint64
		Proof        []string
		Root1, Root2 string
	}
	var incls []incl
	var conss []cons
	const max = 33
	for n := uint64(1); n <= max; n++ {
		tree.Append([]byte(fmt.Sprintf("entry %d", n-1)))
	}
	hexes := func(hs []merkle.Hash) []string {
		out := []string{}
		for _, h := range hs {
			out = append(out, h.String())
		}
		return out
	}
	for n := uint64(1); n <= max; n++ {
		root, _ := tree.RootAt(n)
		for i := uint64(0); i < n; i++ {
			p, err := tree.InclusionProof(i, n)
			if err != nil {
				t.Fatal(err)
			}
			leaf, _ := tree.LeafHash(i)
			incls = append(incls, incl{I: i, N: n, Leaf: leaf.String(), Proof: hexes(p), Root: root.String()})
		}
		for m := uint64(1); m <= n; m++ {
			p, err := tree.ConsistencyProof(m, n)
			if err != nil {
				t.Fatal(err)
			}
			r1, _ := tree.RootAt(m)
			conss = append(conss, cons{M: m, N: n, Proof: hexes(p), Root1: r1.String(), Root2: root.String()})
		}
	}
	signer, err := ledger.NewSigner("minecart/ledger", priv)
	if err != nil {
		t.Fatal(err)
	}
	head := ledger.Header{TreeSize: max}
	head.Root, _ = tree.RootAt(max)
	_, cp, err := signer.Sign(&head)
	if err != nil {
		t.Fatal(err)
	}
	// A witness cosignature line (another key name) is listed, not checked.
	cosigned := cp + "\u2014 witness.example AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"
	_, otherPriv, _ := ed25519.GenerateKey(nil)
	other, _ := ledger.NewSigner("minecart/ledger", otherPriv)
	_, otherCP, _ := other.Sign(&head)
	otherOrigin, _ := ledger.NewSigner("someone/else", priv)
	_, otherOriginCP, _ := otherOrigin.Sign(&head)
	lines := strings.SplitN(cp, "\n", 3)
	resized := lines[0] + "\n" + fmt.Sprint(max+1) + "\n" + lines[2]

	vectors, _ := json.Marshal(map[string]any{"incl": incls, "cons": conss, "cp": cp, "cosigned": cosigned,
		"bad": map[string]string{"resized": resized, "other key": otherCP, "other origin": otherOriginCP}})
	script := `(async () => {
	const c = await import('/assets/js/common.js?v=t1');
	const v = ` + string(vectors) + `;
	const errs = [];
	const h = c.hexToBytes;
	const flip = (s) => (s[0] === '0' ? '1' : '0') + s.slice(1);
	const fails = async (what, fn) => { try { await fn(); errs.push('accepted: ' + what); } catch (e) {} };
	let ok = 0;
	for (const x of v.incl) {
		try { await c.verifyInclusion(x.I, x.N, h(x.Leaf), x.Proof, h(x.Root)); ok++; } catch (e) { errs.push('incl ' + x.I + '/' + x.N + ': ' + e.message); }
		if (x.Proof.length) await fails('flipped incl ' + x.I + '/' + x.N, () => c.verifyInclusion(x.I, x.N, h(x.Leaf), [flip(x.Proof[0]), ...x.Proof.slice(1)], h(x.Root)));
		if (x.N > 1) await fails('incl at another index ' + x.I + '/' + x.N, () => c.verifyInclusion((x.I + 1) % x.N, x.N, h(x.Leaf), x.Proof, h(x.Root)));
		await fails('incl against another root ' + x.I + '/' + x.N, () => c.verifyInclusion(x.I, x.N, h(x.Leaf), x.Proof, h(flip(x.Root))));
		await fails('incl of another leaf ' + x.I + '/' + x.N, () => c.verifyInclusion(x.I, x.N, h(flip(x.Leaf)), x.Proof, h(x.Root)));
		await fails('incl beyond the tree ' + x.I + '/' + x.N, () => c.verifyInclusion(x.N, x.N, h(x.Leaf), x.Proof, h(x.Root)));
	}
	for (const x of v.cons) {
		try { await c.verifyConsistency(x.M, x.N, x.Proof, h(x.Root1), h(x.Root2)); ok++; } catch (e) { errs.push('cons ' + x.M + '/' + x.N + ': ' + e.message); }
		if (x.Proof.length) await fails('flipped cons ' + x.M + '/' + x.N, () => c.verifyConsistency(x.M, x.N, [flip(x.Proof[0]), ...x.Proof.slice(1)], h(x.Root1), h(x.Root2)));
		if (x.M < x.N) await fails('cons with a wrong old root ' + x.M + '/' + x.N, () => c.verifyConsistency(x.M, x.N, x.Proof, h(flip(x.Root1)), h(x.Root2)));
	}
	await fails('the book shrank', () => c.verifyConsistency(5, 4, [], h(v.incl[0].Root), h(v.incl[0].Root)));
	const vkey = document.body.dataset.vkey;
	const r = await c.verifyCheckpoint(v.cp, vkey);
	if (r.signature !== 'verified' || r.cp.size !== 33 || r.cosigners.length) errs.push('checkpoint: ' + JSON.stringify(r));
	const rc = await c.verifyCheckpoint(v.cosigned, vkey);
	if (rc.signature !== 'verified' || rc.cosigners.join() !== 'witness.example') errs.push('cosigned checkpoint: ' + JSON.stringify(rc.cosigners));
	for (const [k, t] of Object.entries(v.bad)) await fails('checkpoint ' + k, () => c.verifyCheckpoint(t, vkey));
	return {ok, errs: errs.slice(0, 20), n: errs.length};
})()`
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b := browser(t, ctx)
	var out struct {
		OK   int
		Errs []string
		N    int
	}
	if err := chromedp.Do(b, chromedp.Navigate(f.srv.URL+"/explorer"), chromedp.WaitReady(chromedp.ID("#search")),
		evalTo(script, &out, chromedp.EvalAwaitPromise)); err != nil {
		t.Fatal(err)
	}
	if want := len(incls) + len(conss); out.OK != want || out.N != 0 {
		t.Errorf("%d of %d proofs verified in the browser; %d errors: %s", out.OK, want, out.N, strings.Join(out.Errs, "\n"))
	}
	t.Logf("browser verified %d inclusion and %d consistency proofs and refused their altered copies", len(incls), len(conss))
}
