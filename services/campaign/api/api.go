// Package api is the partners' campaign HTTP API (docs/campaigns.md): a
// partner submits a signed campaign, lists its campaigns with what their
// budgets have left, and pauses, resumes or ends one (signed); an operator
// registers a partner's Ed25519 key and lists every campaign. Requests
// are checked against the book (campaign.CheckAction, the checks the
// ledger makes again when it appends them) and written to the ledger's
// requests topic; the answers come from a follower of the book (the
// ledger's proofs.Server).
package api

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/auth"
	"github.com/minecart/minecart/services/campaign"
	"github.com/minecart/minecart/services/ledger"
)

// Producer writes one record (the runtime's Producer).
type Producer interface {
	ProduceSync(ctx context.Context, topic string, key, value []byte, headers ...pipelines.Header) error
}

// Book is the campaign state of the published book (proofs.Server).
type Book interface {
	campaign.State
	Campaigns() []ledger.CampaignInfo
}

// Config configures the campaign API.
type Config struct {
	Producer Producer
	Book     Book
	Serde    *schemas.Serde
	Auth     *auth.Authenticator
	Logger   *slog.Logger
	Now      func() time.Time // default time.Now
	// Topic is the ledger's requests topic (default pipelines.TopicLedgerRequests).
	Topic string
}

// Validate reports a config the handler cannot work with.
func (c Config) Validate() error {
	switch {
	case c.Producer == nil:
		return errors.New("campaign api: no producer")
	case c.Book == nil:
		return errors.New("campaign api: no book")
	case c.Serde == nil:
		return errors.New("campaign api: no serde")
	case c.Auth == nil:
		return errors.New("campaign api: no authenticator")
	}
	return nil
}

type handler struct{ cfg Config }

// NewHandler returns the API (an *auth.Mux):
//
//	POST /v1/campaigns                               submit a signed definition: partners, their own
//	GET  /v1/campaigns                               list campaigns: a partner its own, an operator all
//	GET  /v1/campaigns/{partner}/{name}              one campaign, with its budget left
//	POST /v1/campaigns/{partner}/{name}/{action}     pause, resume or end (signed): the partner
//	PUT  /v1/partners/{partner}/key                  register or rotate a partner's Ed25519 key: operators
func NewHandler(cfg Config) (http.Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Topic == "" {
		cfg.Topic = pipelines.TopicLedgerRequests
	}
	h := &handler{cfg: cfg}
	mux := auth.NewMux(cfg.Auth)
	partner, both := auth.Roles{auth.RolePartner}, auth.Roles{auth.RolePartner, auth.RoleOperator}
	mux.HandleFunc("POST /v1/campaigns", partner, h.submit)
	mux.HandleFunc("GET /v1/campaigns", both, h.list)
	mux.HandleFunc("GET /v1/campaigns/{partner}/{name}", both, h.get)
	mux.HandleFunc("POST /v1/campaigns/{partner}/{name}/{action}", partner, h.act)
	mux.HandleFunc("PUT /v1/partners/{partner}/key", auth.Roles{auth.RoleOperator}, h.key)
	return mux, nil
}

// SubmitBody is the body of POST /v1/campaigns: the definition and the
// partner's Ed25519 signature (base64) of
// campaign.SignedBytes("submit", id, rule_hash, "submit/"+id, canonical).
type SubmitBody struct {
	Definition campaign.Definition `json:"definition"`
	Signature  string              `json:"signature"`
}

// ActionBody is the body of POST .../{action}: a nonce (the request id is
// <action>/<campaign>/<nonce>) and the signature of
// campaign.SignedBytes(action, id, rule_hash, request id, nil).
type ActionBody struct {
	Nonce     string `json:"nonce"`
	Signature string `json:"signature"`
}

// KeyBody is the body of PUT /v1/partners/{partner}/key.
type KeyBody struct {
	PublicKey string `json:"public_key"` // base64 of the 32-byte Ed25519 key
}

// Accepted is the answer to a request written to the ledger: it is in
// the book once GET shows it (the ledger checks it again and dead-letters
// it if the book changed meanwhile).
type Accepted struct {
	RequestID string `json:"request_id"`
	Campaign  string `json:"campaign"`
	RuleHash  string `json:"rule_hash,omitempty"`
}

// Campaign is a campaign as the API shows it.
type Campaign struct {
	ID         string              `json:"id"`
	Status     string              `json:"status"` // active, paused, ended; exhausted when left is 0
	RuleHash   string              `json:"rule_hash"`
	Definition campaign.Definition `json:"definition"`
	Spent      int64               `json:"spent"`
	Left       int64               `json:"left"`
	Bonuses    int64               `json:"bonuses"`
	SubmitLeaf uint64              `json:"submit_leaf"`
}

const maxBody = 16 << 10

func (h *handler) submit(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.Caller(r.Context())
	var body SubmitBody
	if err := auth.DecodeJSON(w, r, maxBody, &body); err != nil {
		auth.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	d := body.Definition
	if d.Partner != p.ID {
		h.cfg.Auth.Forbidden(w, fmt.Errorf("partner %q submits only its own campaigns", p.ID))
		return
	}
	sig, err := base64.StdEncoding.DecodeString(body.Signature)
	if err != nil {
		auth.WriteError(w, http.StatusBadRequest, "signature: not base64")
		return
	}
	if err := d.Validate(); err != nil {
		auth.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	def := d.Canonical()
	hash := d.RuleHash()
	e := ledger.Entry{Kind: ledger.KindCampaign, ID: campaign.SubmitID(d.ID()), Partner: d.Partner, Campaign: d.ID(),
		Action: ledger.ActionSubmit, RuleHash: hash[:], Definition: def, Signature: sig, RequestedAtMs: h.cfg.Now().UnixMilli()}
	h.write(w, r, &e)
}

func (h *handler) act(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.Caller(r.Context())
	id := r.PathValue("partner") + "/" + r.PathValue("name")
	action := r.PathValue("action")
	if r.PathValue("partner") != p.ID {
		h.cfg.Auth.Forbidden(w, fmt.Errorf("partner %q acts only on its own campaigns", p.ID))
		return
	}
	if !slices.Contains([]string{ledger.ActionPause, ledger.ActionResume, ledger.ActionEnd}, action) {
		auth.WriteError(w, http.StatusNotFound, "action: pause, resume or end")
		return
	}
	var body ActionBody
	if err := auth.DecodeJSON(w, r, maxBody, &body); err != nil {
		auth.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	sig, err := base64.StdEncoding.DecodeString(body.Signature)
	if err != nil || body.Nonce == "" || len(body.Nonce) > 64 {
		auth.WriteError(w, http.StatusBadRequest, "want a nonce (1 to 64 bytes) and a base64 signature")
		return
	}
	ci, ok := h.cfg.Book.Campaign(id)
	if !ok {
		auth.WriteError(w, http.StatusNotFound, "no campaign "+id)
		return
	}
	e := ledger.Entry{Kind: ledger.KindCampaign, ID: campaign.ActionID(action, id, body.Nonce), Partner: p.ID, Campaign: id,
		Action: action, RuleHash: ci.RuleHash, Signature: sig, RequestedAtMs: h.cfg.Now().UnixMilli()}
	h.write(w, r, &e)
}

func (h *handler) key(w http.ResponseWriter, r *http.Request) {
	partner := r.PathValue("partner")
	var body KeyBody
	if err := auth.DecodeJSON(w, r, maxBody, &body); err != nil {
		auth.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	pub, err := base64.StdEncoding.DecodeString(body.PublicKey)
	if err != nil || len(pub) != 32 {
		auth.WriteError(w, http.StatusBadRequest, "public_key: base64 of 32 bytes")
		return
	}
	e := campaign.RegisterKey(partner, pub, h.cfg.Now().UnixMilli())
	h.write(w, r, &e)
}

// write checks a campaign entry against the book and writes its request.
func (h *handler) write(w http.ResponseWriter, r *http.Request, e *ledger.Entry) {
	if _, err := campaign.CheckAction(h.cfg.Book, e); err != nil {
		code := http.StatusUnprocessableEntity
		if errors.Is(err, campaign.ErrSignature) {
			code = http.StatusForbidden
		}
		auth.WriteError(w, code, err.Error())
		return
	}
	v, err := h.cfg.Serde.Marshal(campaign.Request(e))
	if err == nil {
		err = h.cfg.Producer.ProduceSync(r.Context(), h.cfg.Topic, []byte(e.Campaign), v)
	}
	if err != nil {
		h.cfg.Logger.Error("campaign request not written", "request", e.ID, "err", err)
		auth.WriteError(w, http.StatusServiceUnavailable, "the ledger's requests topic is out of reach; retry")
		return
	}
	a := Accepted{RequestID: e.ID, Campaign: e.Campaign}
	if len(e.RuleHash) > 0 {
		a.RuleHash = fmt.Sprintf("%x", e.RuleHash)
	}
	writeJSON(w, http.StatusAccepted, a)
}

func (h *handler) list(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.Caller(r.Context())
	out := []Campaign{}
	for _, ci := range h.cfg.Book.Campaigns() {
		if p.Role == auth.RoleOperator || ci.Partner == p.ID {
			out = append(out, view(ci))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *handler) get(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.Caller(r.Context())
	id := r.PathValue("partner") + "/" + r.PathValue("name")
	if p.Role != auth.RoleOperator && r.PathValue("partner") != p.ID {
		h.cfg.Auth.Forbidden(w, fmt.Errorf("partner %q reads only its own campaigns", p.ID))
		return
	}
	ci, ok := h.cfg.Book.Campaign(id)
	if !ok {
		auth.WriteError(w, http.StatusNotFound, "no campaign "+id)
		return
	}
	writeJSON(w, http.StatusOK, view(ci))
}

func view(ci ledger.CampaignInfo) Campaign {
	d, _ := campaign.ParseDefinition(ci.Definition) // the book holds only definitions that parsed
	return Campaign{ID: ci.ID, Status: ci.Status, RuleHash: fmt.Sprintf("%x", ci.RuleHash), Definition: d,
		Spent: ci.Spent, Left: max(d.Budget-ci.Spent, 0), Bonuses: ci.Bonuses, SubmitLeaf: ci.SubmitLeaf}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = jsonEncoder(w).Encode(v)
}
