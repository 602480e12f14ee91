package owner

import (
	"context"
	"errors"
	"net/http"

	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/proofs"
)

// Published gives the ledger's head with the checkpoint published under
// the witness quorum: a proofs.Server in the same process or a
// proofs.Client of a remote one.
type Published interface {
	Head(ctx context.Context) (proofs.Head, error)
}

// PublishedCheckpoint is the answer of GET /v1/ledger/published: what the
// owner's browser needs to check the book's published state itself
// (docs/ledger.md, "Clients check the quorum").
type PublishedCheckpoint struct {
	// Checkpoint is the published note: the ledger's signature and the
	// witnesses' cosignature lines.
	Checkpoint string `json:"checkpoint"`
	TreeSize   uint64 `json:"tree_size"`
	// CosignedBy are the policy names whose cosignature verified on the
	// server (the browser checks them again).
	CosignedBy []string `json:"cosigned_by"`
	// Policy is the witness policy file as the ledger uses it; Quorum
	// its top-level threshold (the k of the quorum's group: 2 for "all of
	// two groups", so not the whole rule for a nested policy);
	// QuorumText the whole rule (ledger.Policy.QuorumText: "2 of 3
	// witnesses", or for a group of groups "all of (2 of (w1, w2, w3),
	// any of (m3))"); Witnesses its witness lines; Log the ledger's
	// verifier key (the policy's log line, "" if it has none).
	Policy     string             `json:"policy"`
	Quorum     int                `json:"quorum"`
	QuorumText string             `json:"quorum_text"`
	Witnesses  []PublishedWitness `json:"witnesses"`
	Log        string             `json:"log,omitempty"`
}

// PublishedWitness is one witness of the policy.
type PublishedWitness struct {
	Name string `json:"name"`
	Key  string `json:"key"` // cosignature v1 verifier key: <key name>+<key id hex>+<base64(0x04 || Ed25519 public key)>
	URL  string `json:"url"`
}

// publishedCheckpoint serves GET /v1/ledger/published: 404 until a
// checkpoint is published with the quorum, 503 without a ledger or a
// policy configured.
func (h *handler) publishedCheckpoint(w http.ResponseWriter, r *http.Request) {
	if h.cfg.Published == nil || h.cfg.Policy == nil {
		writeError(w, http.StatusServiceUnavailable, "no witness policy: checkpoints are published as the ledger signs them (GET /v1/ledger/head)")
		return
	}
	head, err := h.cfg.Published.Head(r.Context())
	if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		h.cfg.Logger.Error("owner: ledger head", "err", err)
		writeError(w, http.StatusServiceUnavailable, "the ledger is out of reach")
		return
	}
	if err != nil || head.Cosigned == "" {
		writeError(w, http.StatusNotFound, "no checkpoint published with the witness quorum yet")
		return
	}
	p := h.cfg.Policy
	out := PublishedCheckpoint{Checkpoint: head.Cosigned, TreeSize: head.CosignedSize, CosignedBy: head.CosignedSigners,
		Policy: string(p.Text()), Quorum: p.Threshold(), QuorumText: p.QuorumText(), Log: p.Log, Witnesses: []PublishedWitness{}}
	for _, pw := range p.Witnesses {
		out.Witnesses = append(out.Witnesses, PublishedWitness{Name: pw.Name, Key: pw.VKey, URL: pw.URL})
	}
	if out.CosignedBy == nil {
		out.CosignedBy = []string{}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = writeJSON(w, out)
}
