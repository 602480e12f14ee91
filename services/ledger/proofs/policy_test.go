package proofs_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
	"github.com/minecart/minecart/services/ledger/proofs"
	"github.com/minecart/minecart/services/witness"
)

// TestPolicyRoute: GET /ledger/policy answers the policy file's bytes as
// text/plain (the browser checks the cosignatures with it), and 404
// when the server has no policy.
func TestPolicyRoute(t *testing.T) {
	signer, _ := ledger.NewSigner(ledgertest.Origin, ledgertest.Key(1))
	w, err := witness.New(witness.Config{Dir: t.TempDir(), Name: "witness.test/w1", Logs: []string{signer.VerifierKey()}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	text := fmt.Sprintf("# a comment\nlog %s\nwitness w1 %s http://w1.invalid\nquorum w1\n", signer.VerifierKey(), w.VerifierKey())
	p, err := ledger.ParsePolicy([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		policy *ledger.Policy
		code   int
		body   string
	}{
		{"with a policy", p, http.StatusOK, text},
		{"without", nil, http.StatusNotFound, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := proofs.NewServer(proofs.Config{Blocks: idle{}, PublicKey: signer.Public(), Policy: tc.policy})
			if err != nil {
				t.Fatal(err)
			}
			hs := httptest.NewServer(srv.Handler())
			defer hs.Close()
			resp, err := http.Get(hs.URL + "/ledger/policy")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d %q, want %d", resp.StatusCode, b, tc.code)
			}
			if tc.code == http.StatusOK {
				if string(b) != tc.body {
					t.Errorf("body %q, want the policy file %q", b, tc.body)
				}
				if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
					t.Errorf("Content-Type %q", ct)
				}
			}
		})
	}
}
