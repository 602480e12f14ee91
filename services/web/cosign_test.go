package web_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	tdnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
)

// TestBrowserCosignaturesAndOpening runs common.js's witness-quorum and
// pseudonym checks in chromium on vectors made with the Go libraries
// (formats/note's cosignature v1 signer, the ledger's policy parser and
// encoder): a checkpoint cosigned by w1, w2, w3 under "group g 2 w1 w2 w3"
// meets its quorum; without one cosignature it still does (2 of 3);
// without two it does not; a cosignature with one flipped bit, or a
// policy whose key id is not its key's, is refused. The worked examples
// of docs/ledger.md's pseudonyms are recomputed with WebCrypto HMAC; an
// opening matches its credit's bytes, and a tampered opening, or a credit
// of another pseudonym, fails.
func TestBrowserCosignaturesAndOpening(t *testing.T) {
	if testing.Short() {
		t.Skip("browser")
	}
	pub, priv, _ := ed25519.GenerateKey(nil)
	f := newFixtureKey(t, pub)
	signer, err := ledger.NewSigner("minecart/ledger", priv)
	if err != nil {
		t.Fatal(err)
	}
	head := ledger.Header{TreeSize: 7}
	head.Root[0] = 7
	_, cp, err := signer.Sign(&head)
	if err != nil {
		t.Fatal(err)
	}
	body := cp[:strings.Index(cp, "\n\n")+1]
	var policy strings.Builder
	fmt.Fprintf(&policy, "# test\nlog %s\n", signer.VerifierKey())
	var lines []string
	var nested strings.Builder
	for i := 1; i <= 3; i++ {
		skey, vkey, err := note.GenerateKey(rand.Reader, fmt.Sprintf("witness.test/w%d", i))
		if err != nil {
			t.Fatal(err)
		}
		cs, err := tdnote.NewSignerForCosignatureV1(skey)
		if err != nil {
			t.Fatal(err)
		}
		cvkey, err := tdnote.VKeyToCosignatureV1(vkey)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&policy, "witness w%d %s http://w%d.invalid\n", i, cvkey, i)
		sig, err := cs.Sign([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		raw := binary.BigEndian.AppendUint32(nil, cs.KeyHash())
		lines = append(lines, "\u2014 "+cs.Name()+" "+base64.StdEncoding.EncodeToString(append(raw, sig...))+"\n")
	}
	// A fourth key, the mirror m3, for the nested policy of minecart run.
	{
		skey, vkey, err := note.GenerateKey(rand.Reader, "witness.test/w3/mirror")
		if err != nil {
			t.Fatal(err)
		}
		cs, _ := tdnote.NewSignerForCosignatureV1(skey)
		cvkey, _ := tdnote.VKeyToCosignatureV1(vkey)
		sig, err := cs.Sign([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		raw := binary.BigEndian.AppendUint32(nil, cs.KeyHash())
		lines = append(lines, "\u2014 "+cs.Name()+" "+base64.StdEncoding.EncodeToString(append(raw, sig...))+"\n")
		fmt.Fprintf(&nested, "witness m3 %s http://w3.invalid/ledger\n", cvkey)
	}
	nestedPolicy := policy.String() + nested.String() + "group witnesses 2 w1 w2 w3\ngroup mirrors any m3\ngroup embedded all witnesses mirrors\nquorum embedded\n"
	if np, err := ledger.ParsePolicy([]byte(nestedPolicy)); err != nil || np.QuorumText() != "all of (2 of (w1, w2, w3), any of (m3))" {
		t.Fatalf("nested policy: %v", err)
	}
	policy.WriteString("group g 2 w1 w2 w3\nquorum g\n")
	all := cp + strings.Join(lines[:3], "")
	p, err := ledger.ParsePolicy([]byte(policy.String()))
	if err != nil {
		t.Fatal(err)
	}
	if _, signers, err := p.VerifyCosigned(all, signer.Public()); err != nil || len(signers) != 3 {
		t.Fatalf("the Go verifier refuses the vector: %v %v", signers, err)
	}
	// One bit of w2's signature flipped (the last base64 digit before '=').
	forgedLine := []byte(lines[1])
	// A digit well inside the signature: the last digits before the
	// padding carry padding bits too, so flipping one of them may leave
	// the decoded bytes unchanged.
	k := len(forgedLine) - 20
	forgedLine[k] = "AB"[map[bool]int{true: 1, false: 0}[forgedLine[k] == 'A']]
	forged := cp + lines[0] + string(forgedLine) + lines[2]
	// A policy whose w1 key id is not its key's.
	id := strings.Split(strings.Split(policy.String(), "witness w1 ")[1], "+")[1]
	badPolicy := strings.Replace(policy.String(), "+"+id+"+", "+00000000+", 1)

	// A credit of the worked example's vehicle under its key.
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	const vin, pseudo = "WVWZZZ1JZXW000001", "p1:57fab9b22d6e0a9dd925d3142f46189d"
	credit := ledgertest.Credit(pseudo, 1, 120)
	entry, err := credit.Encode()
	if err != nil {
		t.Fatal(err)
	}
	otherCredit := ledgertest.Credit("p1:2269af71ded1419d3a589952cffa9945", 1, 120)
	otherEntry, _ := otherCredit.Encode()

	vectors, _ := json.Marshal(map[string]any{
		"cp": cp, "all": all, "lines": lines, "nestedPolicy": nestedPolicy, "forged": forged, "policy": policy.String(), "badPolicy": badPolicy,
		"entry": entry, "otherEntry": otherEntry,
		"opening": map[string]string{"pseudonym": pseudo, "kind": "vehicle", "vehicle_id": vin, "key": fmt.Sprintf("%x", key)},
	})
	script := `(async () => {
	const c = await import('/assets/js/common.js?v=t2');
	const v = ` + string(vectors) + `;
	const out = {};
	const p = await c.parsePolicy(v.policy);
	const q = async (t) => { try { const r = await c.verifyCosignatures(c.parseCheckpoint(t), p); return c.cosignedSentence(r) + (r.met ? ' met' : ' NOT met'); } catch (e) { return 'error: ' + e.message; } };
	out.all = await q(v.all);
	out.stripOne = await q(v.cp + v.lines[0] + v.lines[2]);
	out.stripTwo = await q(v.cp + v.lines[2]);
	out.forged = await q(v.forged);
	const np = await c.parsePolicy(v.nestedPolicy);
	const nq = async (t) => { const r = await c.verifyCosignatures(c.parseCheckpoint(t), np); return c.cosignedSentence(r) + (r.met ? ' met' : ' NOT met'); };
	out.nestedAll = await nq(v.cp + v.lines.join(''));
	out.nestedTwoAndMirror = await nq(v.cp + v.lines[0] + v.lines[2] + v.lines[3]);
	out.nestedNoMirror = await nq(v.cp + v.lines[0] + v.lines[1]);
	out.nestedMirrorAlone = await nq(v.cp + v.lines[3]);
	try { await c.parsePolicy(v.badPolicy); out.badPolicy = 'accepted'; } catch (e) { out.badPolicy = 'error: ' + e.message; }
	out.hmacVehicle = await c.pseudonymOf('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'vehicle', 'WVWZZZ1JZXW000001');
	out.hmacAccount = await c.pseudonymOf('202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f', 'account', 'owner-00000');
	const e = c.b64ToBytes(v.entry), other = c.b64ToBytes(v.otherEntry);
	const op = async (o, b) => { try { return await c.checkOpening(o, b); } catch (err) { return 'error: ' + err.message; } };
	out.opening = await op(v.opening, e);
	out.tamperedId = await op({ ...v.opening, vehicle_id: 'WVWZZZ1JZXW000002' }, e);
	out.tamperedKey = await op({ ...v.opening, key: 'ff' + v.opening.key.slice(2) }, e);
	out.otherEntry = await op(v.opening, other);
	return out;
})()`
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b := browser(t, ctx)
	var out map[string]string
	if err := chromedp.Do(b, chromedp.Navigate(f.srv.URL+"/explorer"), chromedp.WaitReady(chromedp.ID("#search")),
		evalTo(script, &out, chromedp.EvalAwaitPromise)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ key, want string }{
		{"all", "cosigned by w1, w2, w3 (quorum 2 of 3) met"},
		{"stripOne", "cosigned by w1, w3 (quorum 2 of 3) met"},
		{"stripTwo", "cosigned by w3 (quorum 2 of 3) NOT met"},
		{"forged", "error: the cosignature of w2 (witness.test/w2) does not verify"},
		{"nestedAll", "cosigned by w1, w2, w3, m3 (quorum: w1, w2, w3 of {w1, w2, w3} (2 of 3) and m3) met"},
		{"nestedTwoAndMirror", "cosigned by w1, w3, m3 (quorum: w1, w3 of {w1, w2, w3} (2 of 3) and m3) met"},
		{"nestedNoMirror", "cosigned by w1, w2 (quorum: w1, w2 of {w1, w2, w3} (2 of 3) and m3 missing) NOT met"},
		{"nestedMirrorAlone", "cosigned by m3 (quorum: none of {w1, w2, w3} (2 of 3) and m3) NOT met"},
		{"badPolicy", "error: policy: w1's key id 00000000 is not its key's"},
		{"hmacVehicle", "p1:57fab9b22d6e0a9dd925d3142f46189d"},
		{"hmacAccount", "p1:2269af71ded1419d3a589952cffa9945"},
		{"opening", "this credit names your vehicle WVWZZZ1JZXW000001 as p1:57fab9b22d6e0a9dd925d3142f46189d"},
		{"tamperedId", "error: the opening does not open"},
		{"tamperedKey", "error: the opening does not open"},
		{"otherEntry", "error: this entry names p1:2269af71ded1419d3a589952cffa9945, not your vehicle"},
	} {
		if !strings.HasPrefix(out[tc.key], tc.want) {
			t.Errorf("%s: %q, want %q…", tc.key, out[tc.key], tc.want)
		}
	}
}
