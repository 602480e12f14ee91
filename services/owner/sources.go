package owner

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/settlement"
)

// LedgerProofs serves proofs from the ledger's proof API handler: a
// ledger.Reader's Handler() in the same process, called in memory.
func LedgerProofs(h http.Handler) Proofs { return handlerProofs{h: h} }

// RemoteLedgerProofs serves proofs from a ledger proof API at baseURL
// (e.g. "http://ledger:8080"); nil client means http.DefaultClient.
func RemoteLedgerProofs(c *http.Client, baseURL string) Proofs {
	if c == nil {
		c = http.DefaultClient
	}
	return remoteProofs{c: c, base: strings.TrimSuffix(baseURL, "/")}
}

func proofPath(leaf, treeSize uint64) string {
	p := "/v1/ledger/entries/" + strconv.FormatUint(leaf, 10) + "/proof"
	if treeSize > 0 {
		p += "?tree_size=" + strconv.FormatUint(treeSize, 10)
	}
	return p
}

func decodeProof(code int, body []byte, leaf uint64) (ledger.ProofJSON, error) {
	var pr ledger.ProofJSON
	switch {
	case code == http.StatusNotFound:
		return pr, fmt.Errorf("leaf %d: %w", leaf, ledger.ErrNotFound)
	case code != http.StatusOK:
		return pr, fmt.Errorf("ledger proof of leaf %d: status %d: %s", leaf, code, bytes.TrimSpace(body))
	}
	if err := json.Unmarshal(body, &pr); err != nil {
		return pr, fmt.Errorf("ledger proof of leaf %d: %w", leaf, err)
	}
	return pr, nil
}

type handlerProofs struct{ h http.Handler }

func (p handlerProofs) InclusionProof(ctx context.Context, leaf, treeSize uint64) (ledger.ProofJSON, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, proofPath(leaf, treeSize), nil)
	if err != nil {
		return ledger.ProofJSON{}, err
	}
	w := &memWriter{header: http.Header{}, code: http.StatusOK}
	p.h.ServeHTTP(w, req)
	return decodeProof(w.code, w.body.Bytes(), leaf)
}

// memWriter is an in-memory http.ResponseWriter.
type memWriter struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (w *memWriter) Header() http.Header         { return w.header }
func (w *memWriter) Write(b []byte) (int, error) { return w.body.Write(b) }
func (w *memWriter) WriteHeader(code int)        { w.code = code }

type remoteProofs struct {
	c    *http.Client
	base string
}

func (p remoteProofs) InclusionProof(ctx context.Context, leaf, treeSize uint64) (ledger.ProofJSON, error) {
	u, err := url.Parse(p.base + proofPath(leaf, treeSize))
	if err != nil {
		return ledger.ProofJSON{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return ledger.ProofJSON{}, err
	}
	resp, err := p.c.Do(req)
	if err != nil {
		return ledger.ProofJSON{}, fmt.Errorf("ledger proof: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return ledger.ProofJSON{}, fmt.Errorf("ledger proof: %w", err)
	}
	return decodeProof(resp.StatusCode, body, leaf)
}

// SettlementBalances reads balances from settlement's state: bindings is a
// table following pipelines.TopicAccounts (vehicle -> owner, Avro framed
// by serde), state one following pipelines.TopicSettlementLog (accounts by
// settlement.AccountKey). A vehicle not bound to an owner shows the holding
// account its credits wait in.
func SettlementBalances(bindings, state settlement.StateReader, serde *schemas.Serde) Balances {
	return settlementBalances{bindings: bindings, state: state, serde: serde}
}

type settlementBalances struct {
	bindings, state settlement.StateReader
	serde           *schemas.Serde
}

func (s settlementBalances) VehicleBalance(_ context.Context, vehicleID string) (Balance, error) {
	var b Balance
	if v, ok := s.bindings.Get(vehicleID); ok && v != nil {
		var x avro.AccountBinding
		if err := s.serde.Unmarshal(v, &x); err != nil {
			return b, fmt.Errorf("binding of %s: %w", vehicleID, err)
		}
		b.Owner = x.Owner
	}
	b.Account = b.Owner
	if b.Account == "" {
		b.Account = settlement.HoldAccount(vehicleID)
	}
	a, err := settlement.ReadAccount(s.state, b.Account)
	if err != nil {
		return b, fmt.Errorf("account %s: %w", b.Account, err)
	}
	b.Balance, b.Reserved, b.Available = a.Balance, a.Reserved, a.Available()
	return b, nil
}
