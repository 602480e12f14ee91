// Package api is settlement's redemption and balance HTTP API. Replicas
// never change balances: they produce redemption requests to
// pipelines.TopicRedemptions and read the state the settlement stage wrote
// to its changelog. It depends on two small interfaces (a Producer and a
// settlement.StateReader), not on the runtime.
//
// Every route requires a caller (services/auth): only an owner redeems,
// and only from its own account; an owner reads its own balance and
// redemptions, a partner the redemptions addressed to it, an operator
// everything. No credentials is 401, someone else's account 403.
package api

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/minecart/minecart/services/auth"
	"github.com/minecart/minecart/services/ids"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/settlement"
)

// Producer writes one record and waits for the broker's ack.
// *kafka.Producer implements it.
type Producer interface {
	ProduceSync(ctx context.Context, topic string, key, value []byte, headers ...pipelines.Header) error
}

// Config configures the redemption and balance HTTP API.
type Config struct {
	Producer Producer
	State    settlement.StateReader // a table following pipelines.TopicSettlementLog
	Serde    *schemas.Serde
	// Auth authenticates callers (required).
	Auth   *auth.Authenticator
	Logger *slog.Logger
	Now    func() time.Time // default time.Now
	// Wait is how long POST /v1/redemptions waits for the stage to decide
	// before answering 202 with the pending redemption (default 5s).
	Wait time.Duration
	// Poll is how often the state is read while waiting (default 10ms).
	Poll time.Duration
}

// Validate reports a config the handler cannot work with.
func (c Config) Validate() error {
	switch {
	case c.Producer == nil:
		return errors.New("settlement api: no producer")
	case c.State == nil:
		return errors.New("settlement api: no state reader")
	case c.Serde == nil:
		return errors.New("settlement api: no serde")
	case c.Auth == nil:
		return errors.New("settlement api: no authenticator")
	case c.Wait < 0 || c.Poll < 0:
		return errors.New("settlement api: negative duration")
	}
	return nil
}

type handler struct{ cfg Config }

// NewHandler returns the HTTP API (an *auth.Mux):
//
//	POST /v1/redemptions                 (header Idempotency-Key) request a redemption: owners, from their own account
//	GET  /v1/redemptions/{id}            a redemption's state: its owner, its partner, operators
//	GET  /v1/accounts/{owner}/balance    an account's balance, reserved and available points: its owner, operators
//	POST /v1/transfers, GET /v1/transfers/{id}, GET /v1/transfers?account=   transfers (transfers.go)
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
	if cfg.Wait == 0 {
		cfg.Wait = 5 * time.Second
	}
	if cfg.Poll == 0 {
		cfg.Poll = 10 * time.Millisecond
	}
	h := &handler{cfg: cfg}
	mux := auth.NewMux(cfg.Auth)
	mux.HandleFunc("POST /v1/redemptions", auth.Roles{auth.RoleOwner}, h.redeem)
	mux.HandleFunc("GET /v1/redemptions/{id}", auth.Roles{auth.RoleOwner, auth.RolePartner, auth.RoleOperator}, h.redemption)
	mux.HandleFunc("GET /v1/accounts/{owner}/balance", auth.Roles{auth.RoleOwner, auth.RoleOperator}, h.balance)
	all := auth.Roles{auth.RoleOwner, auth.RolePartner, auth.RoleOperator}
	mux.HandleFunc("POST /v1/transfers", all, h.createTransfers)
	mux.HandleFunc("GET /v1/transfers", all, h.listTransfers)
	mux.HandleFunc("GET /v1/transfers/{id}", all, h.getTransfer)
	return mux, nil
}

// RedemptionBody is the JSON body of POST /v1/redemptions: one object,
// no other field, nothing after it, at most MaxBody bytes. Owner (the
// caller's account; empty: the caller's) is an owner id, Partner and
// ItemID are ids (services/ids); Quantity is required, at least 1 (zero is
// omitted, hence refused); MaxPoints, if given, at least 0. Customer, if
// given, is the owner's id at the partner (settlement.ValidCustomer): the
// only clear identity the partner's order carries.
type RedemptionBody struct {
	Owner     string `json:"owner,omitempty"`
	Partner   string `json:"partner"`
	ItemID    string `json:"item_id"`
	Quantity  int32  `json:"quantity,omitempty"`
	MaxPoints *int64 `json:"max_points,omitempty"`
	Customer  string `json:"customer,omitempty"`
}

// MaxBody is the largest body of POST /v1/redemptions, in bytes.
const MaxBody = 4096

// validKey: an Idempotency-Key is 1 to 255 printable ASCII characters.
func validKey(k string) bool {
	if k == "" || len(k) > 255 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] <= ' ' || k[i] > '~' {
			return false
		}
	}
	return true
}

// ProofJSON is a ledger proof in API answers (hashes in hex).
type ProofJSON struct {
	EntryID     string   `json:"entry_id"`
	LeafIndex   int64    `json:"leaf_index"`
	BlockHeight int64    `json:"block_height"`
	TreeSize    int64    `json:"tree_size"`
	Root        string   `json:"root"`
	LeafHash    string   `json:"leaf_hash"`
	AuditPath   []string `json:"audit_path"`
	Checkpoint  string   `json:"checkpoint"`
}

// RedemptionJSON is a redemption in API answers.
type RedemptionJSON struct {
	ID          string            `json:"id"`
	Owner       string            `json:"owner"`
	Partner     string            `json:"partner"`
	ItemID      string            `json:"item_id"`
	Quantity    int32             `json:"quantity"`
	Points      int64             `json:"points"`
	Status      settlement.Status `json:"status"`
	Reason      string            `json:"reason,omitempty"`
	RequestedAt time.Time         `json:"requested_at"`
	UpdatedAt   time.Time         `json:"updated_at"`
	PartnerRef  string            `json:"partner_ref,omitempty"`
	Debit       *ProofJSON        `json:"debit,omitempty"`
}

func redemptionJSON(r settlement.Redemption) RedemptionJSON {
	out := RedemptionJSON{ID: r.ID, Owner: r.Owner, Partner: r.Partner, ItemID: r.ItemID, Quantity: r.Quantity,
		Points: r.Points, Status: r.Status, Reason: r.Reason, RequestedAt: r.RequestedAt, UpdatedAt: r.UpdatedAt,
		PartnerRef: r.PartnerRef}
	if p := r.Debit; p != nil {
		pj := &ProofJSON{EntryID: p.EntryID, LeafIndex: p.LeafIndex, BlockHeight: p.BlockHeight, TreeSize: p.TreeSize,
			Root: hex.EncodeToString(p.Root), LeafHash: hex.EncodeToString(p.LeafHash), Checkpoint: p.Checkpoint}
		for _, h := range p.Path {
			pj.AuditPath = append(pj.AuditPath, hex.EncodeToString(h))
		}
		out.Debit = pj
	}
	return out
}

// BalanceJSON is the answer of GET /v1/accounts/{owner}/balance.
type BalanceJSON struct {
	Owner     string `json:"owner"`
	Balance   int64  `json:"balance"`
	Reserved  int64  `json:"reserved"`
	Available int64  `json:"available"`
}

type errorJSON struct {
	Error string `json:"error"`
}

func (h *handler) reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		h.cfg.Logger.Debug("settlement api: write answer", "err", err)
	}
}

func (h *handler) fail(w http.ResponseWriter, code int, format string, args ...any) {
	h.reply(w, code, errorJSON{Error: fmt.Sprintf(format, args...)})
}

func (h *handler) redeem(w http.ResponseWriter, req *http.Request) {
	caller, _ := auth.Caller(req.Context())
	key := req.Header.Get("Idempotency-Key")
	if !validKey(key) {
		h.fail(w, http.StatusBadRequest, "an Idempotency-Key header of 1 to 255 printable ASCII characters is required")
		return
	}
	var body RedemptionBody
	if err := auth.DecodeJSON(w, req, MaxBody, &body); err != nil {
		h.fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	if body.Owner == "" {
		body.Owner = caller.ID
	}
	if err := ids.Owner(body.Owner); err != nil {
		h.fail(w, http.StatusBadRequest, "owner: %v", err)
		return
	}
	if strings.HasPrefix(body.Owner, settlement.HoldPrefix) {
		h.fail(w, http.StatusBadRequest, "owner %q: accounts starting with %q cannot redeem", body.Owner, settlement.HoldPrefix)
		return
	}
	if err := ids.Partner(body.Partner); err != nil {
		h.fail(w, http.StatusBadRequest, "partner: %v", err)
		return
	}
	if err := ids.Valid(body.ItemID); err != nil {
		h.fail(w, http.StatusBadRequest, "item_id: %v", err)
		return
	}
	if body.Quantity < 1 {
		h.fail(w, http.StatusBadRequest, "quantity %d: an explicit quantity of at least 1 is required", body.Quantity)
		return
	}
	if body.MaxPoints != nil && *body.MaxPoints < 0 {
		h.fail(w, http.StatusBadRequest, "max_points %d: must not be negative", *body.MaxPoints)
		return
	}
	if err := settlement.ValidCustomer(body.Customer); err != nil {
		h.fail(w, http.StatusBadRequest, "customer: %v", err)
		return
	}
	if err := auth.CanSpend(caller, body.Owner); err != nil {
		h.cfg.Auth.Forbidden(w, err)
		return
	}
	id := settlement.RedemptionID(body.Owner, key)
	same := func(r settlement.Redemption) bool {
		return r.Partner == body.Partner && r.ItemID == body.ItemID && r.Quantity == body.Quantity
	}
	r, found, err := settlement.ReadRedemption(h.cfg.State, id)
	if err != nil {
		h.fail(w, http.StatusInternalServerError, "redemption state: %v", err)
		return
	}
	if !found {
		v, err := h.cfg.Serde.Marshal(&avro.RedemptionRequest{IdempotencyKey: key, Owner: body.Owner, Partner: body.Partner,
			ItemID: body.ItemID, Quantity: body.Quantity, MaxPoints: body.MaxPoints, RequestedMs: h.cfg.Now().UTC().Truncate(time.Millisecond), Customer: body.Customer})
		if err != nil {
			h.fail(w, http.StatusInternalServerError, "encode request: %v", err)
			return
		}
		if err := h.cfg.Producer.ProduceSync(req.Context(), pipelines.TopicRedemptions, []byte(body.Owner), v); err != nil {
			h.cfg.Logger.Error("settlement api: produce redemption request", "err", err)
			h.fail(w, http.StatusServiceUnavailable, "request not accepted, retry with the same Idempotency-Key")
			return
		}
		r, found, err = h.wait(req.Context(), id)
		if err != nil {
			h.fail(w, http.StatusInternalServerError, "redemption state: %v", err)
			return
		}
	}
	switch {
	case !found:
		w.Header().Set("Location", "/v1/redemptions/"+id)
		h.reply(w, http.StatusAccepted, RedemptionJSON{ID: id, Owner: body.Owner, Partner: body.Partner,
			ItemID: body.ItemID, Quantity: body.Quantity, Status: settlement.StatusPending})
	case !same(r):
		h.fail(w, http.StatusUnprocessableEntity, "Idempotency-Key %q was used for a different redemption", key)
	case r.Status == settlement.StatusPending:
		w.Header().Set("Location", "/v1/redemptions/"+id)
		h.reply(w, http.StatusAccepted, redemptionJSON(r))
	default:
		w.Header().Set("Location", "/v1/redemptions/"+id)
		h.reply(w, http.StatusCreated, redemptionJSON(r))
	}
}

// wait polls the state until the redemption is decided or Wait passes.
func (h *handler) wait(ctx context.Context, id string) (settlement.Redemption, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Wait)
	defer cancel()
	t := time.NewTicker(h.cfg.Poll)
	defer t.Stop()
	var (
		r     settlement.Redemption
		found bool
		err   error
	)
	for {
		r, found, err = settlement.ReadRedemption(h.cfg.State, id)
		if err != nil || (found && r.Status != settlement.StatusPending) {
			return r, found, err
		}
		select {
		case <-ctx.Done():
			return r, found, nil
		case <-t.C:
		}
	}
}

func (h *handler) redemption(w http.ResponseWriter, req *http.Request) {
	caller, _ := auth.Caller(req.Context())
	id := req.PathValue("id")
	if len(id) > 128 {
		h.fail(w, http.StatusBadRequest, "redemption id of %d bytes", len(id))
		return
	}
	r, found, err := settlement.ReadRedemption(h.cfg.State, id)
	switch {
	case err != nil:
		h.fail(w, http.StatusInternalServerError, "redemption state: %v", err)
	case !found && caller.Role == auth.RoleOperator:
		h.fail(w, http.StatusNotFound, "no redemption %q", id)
	case !found:
		// Not "not found": ids are derived from owner and key, and a
		// caller learns nothing about redemptions that are not theirs.
		h.cfg.Auth.Forbidden(w, fmt.Errorf("%w: redemption %q is not yours", auth.ErrForbidden, id))
	case !(caller.Role == auth.RoleOperator || caller.Role == auth.RoleOwner && r.Owner == caller.ID ||
		caller.Role == auth.RolePartner && r.Partner == caller.ID):
		h.cfg.Auth.Forbidden(w, fmt.Errorf("%w: redemption %q is not yours", auth.ErrForbidden, id))
	default:
		h.reply(w, http.StatusOK, redemptionJSON(r))
	}
}

func (h *handler) balance(w http.ResponseWriter, req *http.Request) {
	caller, _ := auth.Caller(req.Context())
	owner := req.PathValue("owner")
	if err := ids.Owner(owner); err != nil {
		h.fail(w, http.StatusBadRequest, "owner: %v", err)
		return
	}
	if err := auth.CanReadAccount(caller, owner); err != nil {
		h.cfg.Auth.Forbidden(w, err)
		return
	}
	a, err := settlement.ReadAccount(h.cfg.State, owner)
	if err != nil {
		h.fail(w, http.StatusInternalServerError, "%v", err)
		return
	}
	h.reply(w, http.StatusOK, BalanceJSON{Owner: owner, Balance: a.Balance, Reserved: a.Reserved, Available: a.Available()})
}
