package api

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/auth"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/settlement"
)

// The transfer API (docs/economy.md):
//
//	POST /v1/transfers           one transfer object, or {"transfers": [...]} (a batch; linked chains inside)
//	GET  /v1/transfers/{id}      a transfer: either side's owner or partner, operators
//	GET  /v1/transfers?account=  every transfer of an account (operators; an owner its own), newest first
//
// Replicas decide nothing: they write the batch to
// pipelines.TopicTransfers and read the decision settlement wrote to its
// changelog.

// TransferBody is one transfer in a request body. Flags are names:
// linked, pending, post_pending, void_pending. A post or void names the
// pending transfer (pending_id) and may leave the accounts and amount out.
type TransferBody struct {
	ID        string   `json:"id"`
	Debit     string   `json:"debit_account,omitempty"`
	Credit    string   `json:"credit_account,omitempty"`
	Amount    int64    `json:"amount,omitempty"`
	Flags     []string `json:"flags,omitempty"`
	PendingID string   `json:"pending_id,omitempty"`
	TimeoutMs int64    `json:"timeout_ms,omitempty"`
}

// batchBody is a batch request body.
type batchBody struct {
	Transfers []TransferBody `json:"transfers"`
}

// MaxTransferBody is the largest body of POST /v1/transfers, in bytes.
const MaxTransferBody = 1 << 20

// TransferJSON is a transfer in API answers.
type TransferJSON struct {
	ID          string                    `json:"id"`
	Debit       string                    `json:"debit_account,omitempty"`
	Credit      string                    `json:"credit_account,omitempty"`
	Amount      int64                     `json:"amount"`
	Flags       []string                  `json:"flags,omitempty"`
	PendingID   string                    `json:"pending_id,omitempty"`
	TimeoutMs   int64                     `json:"timeout_ms,omitempty"`
	Status      settlement.TransferStatus `json:"status"`
	Reason      string                    `json:"reason,omitempty"`
	Pending     settlement.PendingState   `json:"pending_state,omitempty"`
	ExpiresAtMs int64                     `json:"expires_at_ms,omitempty"`
	ResolvedBy  string                    `json:"resolved_by,omitempty"`
	RequestedAt time.Time                 `json:"requested_at,omitzero"`
	CommittedAt time.Time                 `json:"committed_at,omitzero"`
	Entry       *ProofJSON                `json:"entry,omitempty"`
	// Resolution is the entry that posted, voided or expired a pending
	// transfer (the only proof of an expiry).
	Resolution *ProofJSON `json:"resolution,omitempty"`
}

var flagNames = []struct {
	f    ledger.TransferFlags
	name string
}{{ledger.TransferLinked, "linked"}, {ledger.TransferPending, "pending"}, {ledger.TransferPostPending, "post_pending"},
	{ledger.TransferVoidPending, "void_pending"}, {ledger.TransferExpirePending, "expire_pending"}}

// ParseFlags reads flag names (the client's: not expire_pending).
func ParseFlags(names []string) (ledger.TransferFlags, error) {
	var f ledger.TransferFlags
	for _, n := range names {
		i := slices.IndexFunc(flagNames, func(x struct {
			f    ledger.TransferFlags
			name string
		}) bool {
			return x.name == n
		})
		if i < 0 || flagNames[i].f == ledger.TransferExpirePending {
			return 0, fmt.Errorf("unknown transfer flag %q (linked, pending, post_pending, void_pending)", n)
		}
		f |= flagNames[i].f
	}
	return f, nil
}

// FlagNames names the flags.
func FlagNames(f ledger.TransferFlags) []string {
	var out []string
	for _, x := range flagNames {
		if f&x.f != 0 {
			out = append(out, x.name)
		}
	}
	return out
}

func proofJSON(p *settlement.Proof) *ProofJSON {
	if p == nil {
		return nil
	}
	pj := &ProofJSON{EntryID: p.EntryID, LeafIndex: p.LeafIndex, BlockHeight: p.BlockHeight, TreeSize: p.TreeSize,
		Root: hex.EncodeToString(p.Root), LeafHash: hex.EncodeToString(p.LeafHash), Checkpoint: p.Checkpoint}
	for _, h := range p.Path {
		pj.AuditPath = append(pj.AuditPath, hex.EncodeToString(h))
	}
	return pj
}

// TransferAnswer is a transfer's state as the API shows it.
func TransferAnswer(x settlement.Transfer) TransferJSON {
	return TransferJSON{ID: x.ID, Debit: x.Debit, Credit: x.Credit, Amount: x.Amount, Flags: FlagNames(x.Flags),
		PendingID: x.PendingID, TimeoutMs: x.TimeoutMs, Status: x.Status, Reason: x.Reason, Pending: x.Pending,
		ExpiresAtMs: x.ExpiresAtMs, ResolvedBy: x.ResolvedBy, RequestedAt: x.RequestedAt, CommittedAt: x.CommittedAt,
		Entry: proofJSON(x.Entry), Resolution: proofJSON(x.Resolution)}
}

// ErrConflict: a transfer id was used before with a different body.
var ErrConflict = errors.New("transfer id exists with a different body")

// SpecFrom checks a transfer body's shape and makes the spec.
func SpecFrom(b TransferBody) (settlement.TransferSpec, error) {
	if err := ledger.ValidTransferID(b.ID); err != nil {
		return settlement.TransferSpec{}, err
	}
	f, err := ParseFlags(b.Flags)
	if err != nil {
		return settlement.TransferSpec{}, fmt.Errorf("transfer %s: %w", b.ID, err)
	}
	if b.PendingID != "" {
		if err := ledger.ValidTransferID(b.PendingID); err != nil {
			return settlement.TransferSpec{}, fmt.Errorf("transfer %s: pending_id: %w", b.ID, err)
		}
	}
	if b.Amount < 0 || b.TimeoutMs < 0 {
		return settlement.TransferSpec{}, fmt.Errorf("transfer %s: negative amount or timeout", b.ID)
	}
	return settlement.TransferSpec{ID: b.ID, Debit: b.Debit, Credit: b.Credit, Amount: b.Amount, Flags: f,
		PendingID: b.PendingID, TimeoutMs: b.TimeoutMs}, nil
}

// Submit writes a batch for settlement to decide (unless every id is
// decided already) and waits up to wait for the decisions and, within
// the same time, for their ledger entries. It returns the transfers' states
// in batch order; a transfer not decided yet has an empty Status. An id
// decided before for a different body is ErrConflict (nothing is
// written). Used by the HTTP API and the CLI.
func Submit(ctx context.Context, p Producer, serde *schemas.Serde, state settlement.StateReader, b settlement.TransferBatch, wait, poll time.Duration) ([]settlement.Transfer, error) {
	out := make([]settlement.Transfer, len(b.Transfers))
	raw := make([][]byte, len(b.Transfers)) // the state last decoded, per transfer
	final := func(x settlement.Transfer) bool {
		return x.Status == settlement.TransferCommitted || x.Status == settlement.TransferRejected
	}
	// load decodes transfer i's state if it changed since the last load.
	load := func(i int, v []byte, present bool) error {
		if !present || v == nil || bytes.Equal(v, raw[i]) {
			return nil
		}
		var x settlement.Transfer
		if err := json.Unmarshal(v, &x); err != nil {
			return fmt.Errorf("transfer state: %w", err)
		}
		s := b.Transfers[i]
		if x.Digest != s.Digest(b.CallerRole, b.CallerID) {
			return fmt.Errorf("%w: %s", ErrConflict, s.ID)
		}
		out[i], raw[i] = x, bytes.Clone(v)
		return nil
	}
	all := true
	for i, s := range b.Transfers {
		v, ok := state.Get(settlement.TransferKey(s.ID))
		if err := load(i, v, ok); err != nil {
			return nil, err
		}
		all = all && out[i].Status != ""
	}
	if !all {
		v, err := serde.Marshal(b.Avro())
		if err != nil {
			return nil, fmt.Errorf("encode transfer batch: %w", err)
		}
		if err := p.ProduceSync(ctx, pipelines.TopicTransfers, []byte(b.CallerID), v); err != nil {
			return nil, fmt.Errorf("transfer batch not accepted, retry with the same ids: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	w, canWait := state.(Waiter)
	t := time.NewTicker(poll)
	defer t.Stop()
	for i, s := range b.Transfers {
		key := settlement.TransferKey(s.ID)
		for !final(out[i]) {
			if canWait {
				// Wake when the state's bytes change; decode outside the lock.
				last := raw[i]
				if err := w.Wait(ctx, key, func(v []byte, present bool) bool { return present && v != nil && !bytes.Equal(v, last) }); err != nil {
					if ctx.Err() != nil {
						return out, nil
					}
					return nil, err
				}
			} else {
				select {
				case <-ctx.Done():
					return out, nil
				case <-t.C:
				}
			}
			v, ok := state.Get(key)
			if err := load(i, v, ok); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// Waiter is a state reader that can wait for a key to change (a
// *kafka.Table).
type Waiter interface {
	Wait(ctx context.Context, key string, ok func(value []byte, present bool) bool) error
}

func (h *handler) createTransfers(w http.ResponseWriter, req *http.Request) {
	caller, _ := auth.Caller(req.Context())
	var raw json.RawMessage
	if err := auth.DecodeJSON(w, req, MaxTransferBody, &raw); err != nil {
		h.fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	var bodies []TransferBody
	batch := false
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(raw, &probe); err != nil {
		h.fail(w, http.StatusBadRequest, "body: %v", err)
		return
	}
	dec := func(v any) error {
		d := json.NewDecoder(strings.NewReader(string(raw)))
		d.DisallowUnknownFields()
		return d.Decode(v)
	}
	if _, ok := probe["transfers"]; ok {
		var bb batchBody
		if err := dec(&bb); err != nil {
			h.fail(w, http.StatusBadRequest, "body: %v", err)
			return
		}
		bodies, batch = bb.Transfers, true
	} else {
		var one TransferBody
		if err := dec(&one); err != nil {
			h.fail(w, http.StatusBadRequest, "body: %v", err)
			return
		}
		bodies = []TransferBody{one}
	}
	if len(bodies) == 0 || len(bodies) > settlement.MaxBatch {
		h.fail(w, http.StatusBadRequest, "%d transfers, want 1..%d", len(bodies), settlement.MaxBatch)
		return
	}
	b := settlement.TransferBatch{CallerRole: string(caller.Role), CallerID: caller.ID, RequestedAt: h.cfg.Now().UTC().Truncate(time.Millisecond)}
	seen := map[string]bool{}
	for _, body := range bodies {
		s, err := SpecFrom(body)
		if err != nil {
			h.fail(w, http.StatusBadRequest, "%v", err)
			return
		}
		if seen[s.ID] {
			h.fail(w, http.StatusBadRequest, "transfer %s twice in one batch", s.ID)
			return
		}
		seen[s.ID] = true
		// An owner debits only its own account (settlement checks again,
		// and checks who may post or void a pending transfer).
		if caller.Role == auth.RoleOwner && s.Flags&(ledger.TransferPostPending|ledger.TransferVoidPending) == 0 && s.Debit != caller.ID {
			h.cfg.Auth.Forbidden(w, fmt.Errorf("%w: %s may not debit account %q", auth.ErrForbidden, caller.Subject(), s.Debit))
			return
		}
		b.Transfers = append(b.Transfers, s)
	}
	res, err := Submit(req.Context(), h.cfg.Producer, h.cfg.Serde, h.cfg.State, b, h.cfg.Wait, h.cfg.Poll)
	switch {
	case errors.Is(err, ErrConflict):
		h.fail(w, http.StatusConflict, "%v: the same id must carry the same transfer; choose a new id for a new transfer", err)
		return
	case err != nil:
		h.cfg.Logger.Error("settlement api: transfers", "err", err)
		h.fail(w, http.StatusServiceUnavailable, "%v", err)
		return
	}
	answers := make([]TransferJSON, len(res))
	code := http.StatusCreated
	for i, x := range res {
		if x.Status == "" {
			s := b.Transfers[i]
			x = settlement.Transfer{ID: s.ID, Debit: s.Debit, Credit: s.Credit, Amount: s.Amount, Flags: s.Flags, PendingID: s.PendingID, TimeoutMs: s.TimeoutMs}
			code = http.StatusAccepted
		}
		answers[i] = TransferAnswer(x)
	}
	if batch {
		// Per-transfer results: 200 once every transfer is decided.
		if code == http.StatusCreated {
			code = http.StatusOK
		}
		h.reply(w, code, map[string][]TransferJSON{"transfers": answers})
		return
	}
	if res[0].Status == settlement.TransferRejected {
		code = http.StatusUnprocessableEntity
	}
	w.Header().Set("Location", "/v1/transfers/"+b.Transfers[0].ID)
	h.reply(w, code, answers[0])
}

// mayRead: operators read every transfer; owners and partners those with
// their account on either side.
func mayRead(p auth.Principal, x settlement.Transfer) bool {
	acct := p.ID
	switch p.Role {
	case auth.RoleOperator:
		return true
	case auth.RolePartner:
		acct = settlement.PartnerAccount(p.ID)
	case auth.RoleOwner:
	default:
		return false
	}
	return x.Debit == acct || x.Credit == acct
}

func (h *handler) getTransfer(w http.ResponseWriter, req *http.Request) {
	caller, _ := auth.Caller(req.Context())
	id := req.PathValue("id")
	if err := ledger.ValidTransferID(id); err != nil {
		h.fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	x, found, err := settlement.ReadTransfer(h.cfg.State, id)
	switch {
	case err != nil:
		h.fail(w, http.StatusInternalServerError, "%v", err)
	case !found && caller.Role == auth.RoleOperator:
		h.fail(w, http.StatusNotFound, "no transfer %s", id)
	case !found || !mayRead(caller, x):
		h.cfg.Auth.Forbidden(w, fmt.Errorf("%w: transfer %s is not yours", auth.ErrForbidden, id))
	default:
		h.reply(w, http.StatusOK, TransferAnswer(x))
	}
}

// Ranger is a state reader that can list its keys (a *kafka.Table).
type Ranger interface {
	Range(fn func(key string, value []byte) bool)
}

// ListTransfers lists the transfers with account on either side (every
// transfer for ""), newest request first. It reads the whole state.
func ListTransfers(s Ranger, account string) ([]settlement.Transfer, error) {
	var out []settlement.Transfer
	var err error
	s.Range(func(key string, value []byte) bool {
		if !strings.HasPrefix(key, settlement.TransferKey("")) || value == nil {
			return true
		}
		var x settlement.Transfer
		if e := json.Unmarshal(value, &x); e != nil {
			err = fmt.Errorf("transfer state %s: %w", key, e)
			return false
		}
		if account == "" || x.Debit == account || x.Credit == account {
			out = append(out, x)
		}
		return true
	})
	slices.SortFunc(out, func(a, b settlement.Transfer) int {
		if c := b.RequestedAt.Compare(a.RequestedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, err
}

func (h *handler) listTransfers(w http.ResponseWriter, req *http.Request) {
	caller, _ := auth.Caller(req.Context())
	account := req.URL.Query().Get("account")
	r, ok := h.cfg.State.(Ranger)
	if !ok {
		h.fail(w, http.StatusNotImplemented, "this replica's state cannot be listed")
		return
	}
	if caller.Role != auth.RoleOperator {
		mine := caller.ID
		if caller.Role == auth.RolePartner {
			mine = settlement.PartnerAccount(caller.ID)
		}
		if account != mine {
			h.cfg.Auth.Forbidden(w, fmt.Errorf("%w: %s may list only account %s", auth.ErrForbidden, caller.Subject(), mine))
			return
		}
	}
	list, err := ListTransfers(r, account)
	if err != nil {
		h.fail(w, http.StatusInternalServerError, "%v", err)
		return
	}
	out := make([]TransferJSON, len(list))
	for i, x := range list {
		out[i] = TransferAnswer(x)
	}
	h.reply(w, http.StatusOK, map[string][]TransferJSON{"transfers": out})
}

// SetAccountFlags publishes an operator's setting of an account's flags.
func SetAccountFlags(ctx context.Context, p Producer, serde *schemas.Serde, account string, flags settlement.AccountFlags, operator string, at time.Time) error {
	v, err := serde.Marshal(&avro.AccountFlags{Account: account, Flags: int64(flags), Operator: operator, UpdatedMs: at})
	if err == nil {
		err = p.ProduceSync(ctx, pipelines.TopicTransfers, []byte(account), v)
	}
	if err != nil {
		return fmt.Errorf("account flags of %s: %w", account, err)
	}
	return nil
}
