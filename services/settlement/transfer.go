package settlement

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ids"
	"github.com/minecart/minecart/services/ledger"
)

// Transfers (docs/economy.md). Settlement decides every transfer: it is
// the one task that reads every balance change in one order (its inputs
// have one partition), and it writes the decision to its changelog in the
// same Kafka transaction that consumes the request. A decided transfer
// reserves its amount on the debit account (Reserved) at once, so no later
// decision can spend it; the balances themselves change only when the
// ledger's entry comes back, so sum(balances) = minted - redeemed holds
// at every offset and equals what the book alone says.

// PartnerPrefix starts a partner's account: "partner:<partner id>".
const PartnerPrefix = "partner:"

// PartnerAccount is partner's account.
func PartnerAccount(partner string) string { return PartnerPrefix + partner }

// AccountFlags are an account's flags, set by an operator.
type AccountFlags uint64

// AllowOverdraft lets the account's debits exceed its credits: transfers
// from it may take its available points below zero. Every other account's
// debits must not exceed its credits (TigerBeetle's
// debits_must_not_exceed_credits is the default here, not a flag).
const AllowOverdraft AccountFlags = 1

const accountFlagsKnown = AllowOverdraft

// TransferStatus is where a transfer stands.
type TransferStatus string

// Transfer statuses.
const (
	TransferAccepted  TransferStatus = "ACCEPTED"  // decided; its ledger entry is requested, the amount reserved
	TransferCommitted TransferStatus = "COMMITTED" // its ledger entry is in the book (Entry: the proof)
	TransferRejected  TransferStatus = "REJECTED"  // refused (Reason); no entry, no effect, ever
)

// PendingState is the state of a pending (two-phase) transfer.
type PendingState string

// Pending states: PENDING, then exactly one of the others.
const (
	PendingOpen    PendingState = "PENDING"
	PendingPosted  PendingState = "POSTED"
	PendingVoided  PendingState = "VOIDED"
	PendingExpired PendingState = "EXPIRED"
)

// Transfer rejection reasons (the first that applies, checked in this
// order; docs/economy.md lists them).
const (
	ReasonLinkedEventFailed     = "linked_event_failed"
	ReasonLinkedChainOpen       = "linked_event_chain_open"
	ReasonExistsDifferent       = "exists_with_different_body"
	ReasonForbidden             = "forbidden"
	ReasonBadAccount            = "invalid_account"
	ReasonSameAccount           = "accounts_must_be_different"
	ReasonAmount                = "amount_must_be_positive"
	ReasonTimeout               = "invalid_timeout"
	ReasonPendingNotFound       = "pending_transfer_not_found"
	ReasonNotPending            = "pending_transfer_not_pending"
	ReasonPendingDifferent      = "pending_transfer_has_different_fields"
	ReasonAlreadyPosted         = "pending_transfer_already_posted"
	ReasonAlreadyVoided         = "pending_transfer_already_voided"
	ReasonPendingExpired        = "pending_transfer_expired"
	ReasonExceedsCredits        = "exceeds_credits"
	ReasonOverflow              = "overflows_balance"
	ReasonPendingIDOnSingle     = "pending_id_must_be_empty"
	ReasonTimeoutOnSinglePhase  = "timeout_reserved_for_pending_transfer"
	ReasonClientFlags           = "invalid_flags"
	ReasonBatchDuplicateID      = "duplicate_id_in_batch"
	ReasonPendingIDMissing      = "pending_id_required"
	ReasonPostAmountUnsupported = "partial_post_not_supported"
)

// MaxTransferTimeout bounds a pending transfer's timeout (ledger time).
const MaxTransferTimeout = 90 * 24 * time.Hour

// MaxBatch bounds the transfers of one batch.
const MaxBatch = 1000

// TransferSpec is one transfer as a client submitted it.
type TransferSpec struct {
	ID        string
	Debit     string
	Credit    string
	Amount    int64
	Flags     ledger.TransferFlags
	PendingID string
	TimeoutMs int64
}

// TransferBatch is a caller's batch of transfers, decided together.
type TransferBatch struct {
	CallerRole  string // OWNER, PARTNER or OPERATOR (auth roles)
	CallerID    string
	Transfers   []TransferSpec
	RequestedAt time.Time
}

// TransferBatchFrom is the batch a TransferBatch record carries.
func TransferBatchFrom(r *avro.TransferBatch) TransferBatch {
	b := TransferBatch{CallerRole: r.CallerRole, CallerID: r.CallerID, RequestedAt: r.RequestedMs}
	for _, s := range r.Transfers {
		b.Transfers = append(b.Transfers, TransferSpec{ID: s.ID, Debit: s.DebitAccount, Credit: s.CreditAccount,
			Amount: s.Amount, Flags: ledger.TransferFlags(s.Flags), PendingID: s.PendingID, TimeoutMs: s.TimeoutMs})
	}
	return b
}

// Avro is the batch's record.
func (b TransferBatch) Avro() *avro.TransferBatch {
	r := &avro.TransferBatch{CallerRole: b.CallerRole, CallerID: b.CallerID, RequestedMs: b.RequestedAt,
		Transfers: make([]avro.TransferSpec, 0, len(b.Transfers))}
	for _, s := range b.Transfers {
		r.Transfers = append(r.Transfers, avro.TransferSpec{ID: s.ID, DebitAccount: s.Debit, CreditAccount: s.Credit,
			Amount: s.Amount, Flags: int64(s.Flags), PendingID: s.PendingID, TimeoutMs: s.TimeoutMs})
	}
	return r
}

// Digest is the transfer's idempotency digest: hex SHA-256 over the
// caller and every field as submitted (docs/economy.md). The same id with
// another digest is a different body.
func (s TransferSpec) Digest(callerRole, callerID string) string {
	h := sha256.New()
	var n [8]byte
	for _, f := range []string{callerRole, callerID, s.ID, s.Debit, s.Credit, s.PendingID} {
		binary.BigEndian.PutUint32(n[:4], uint32(len(f)))
		h.Write(n[:4])
		h.Write([]byte(f))
	}
	for _, v := range []uint64{uint64(s.Amount), uint64(s.Flags), uint64(s.TimeoutMs)} {
		binary.BigEndian.PutUint64(n[:], v)
		h.Write(n[:])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Transfer is the state of one transfer (changelog key "t/<id>").
type Transfer struct {
	ID          string
	Debit       string
	Credit      string
	Amount      int64
	Flags       ledger.TransferFlags
	PendingID   string `json:",omitempty"`
	TimeoutMs   int64  `json:",omitempty"`
	Digest      string
	Caller      string // role:id
	Status      TransferStatus
	Reason      string `json:",omitempty"`
	RequestedAt time.Time
	CommittedAt time.Time `json:",omitzero"` // the entry's block timestamp (ledger time)
	Entry       *Proof    `json:",omitempty"`
	// Pending transfers only.
	Pending     PendingState `json:",omitempty"`
	ExpiresAtMs int64        `json:",omitempty"` // block timestamp + timeout, once the entry is in (0: no timeout)
	ResolvedBy  string       `json:",omitempty"` // the post or void transfer's id, or expire/<id>
	Resolved    bool         `json:",omitempty"` // the resolving entry is in the book
	Resolution  *Proof       `json:",omitempty"` // that entry (the only proof of an expiry)
	// Redemption is the redemption whose hold (or its post or void) this
	// is: decided by settlement, resolved only by the partner's ack or
	// by expiry.
	Redemption string `json:",omitempty"`
	// Released: settlement released the reservation before this void
	// was decided (a hold after a ledger timeout); its entry releases
	// nothing.
	Released bool `json:",omitempty"`
}

// TransferKey is the changelog key of a transfer's state.
func TransferKey(id string) string { return keyTransfer + id }

// Transfer returns a transfer's state.
func (b *Book) Transfer(id string) (Transfer, bool) { x, ok := b.transfers[id]; return x, ok }

// PendingTransfers counts the open pending transfers.
func (b *Book) PendingTransfers() int { return len(b.openPending) }

// NextLeaf is the leaf index of the next ledger entry the book expects.
func (b *Book) NextLeaf() int64 { return b.meta.NextLeaf }

// LedgerTime is the highest block timestamp settlement has applied.
func (b *Book) LedgerTime() int64 { return b.meta.LedgerMs }

func (t *Tx) transfer(id string) (Transfer, bool) { return lookup(t.transfers, t.b.transfers, id) }

func (t *Tx) putTransfer(x Transfer) { t.transfers[x.ID] = &x }

// SetAccountFlags sets an account's flags (operators only: the stage
// takes them from the transfer requests topic, which only the API's and
// CLI's operator paths write).
func (b *Book) SetAccountFlags(r avro.AccountFlags) (*Tx, error) {
	if err := validAccount(r.Account); err != nil {
		return nil, bad("account flags: %v", err)
	}
	if r.Flags < 0 || AccountFlags(r.Flags)&^accountFlagsKnown != 0 {
		return nil, bad("account flags 0x%x of %s: unknown", r.Flags, r.Account)
	}
	t := b.begin()
	a := t.account(r.Account)
	a.Flags = AccountFlags(r.Flags)
	t.putAccount(a)
	return t, nil
}

// validAccount: an owner id or partner:<partner id>; never a holding
// account.
func validAccount(id string) error {
	if p, ok := strings.CutPrefix(id, PartnerPrefix); ok {
		return ids.Partner(p)
	}
	if isHold(id) {
		return fmt.Errorf("holding account %q cannot transfer", id)
	}
	return ids.Owner(id)
}

// view is a chain's changes on top of a Tx: a failed chain drops them.
type view struct {
	t         *Tx
	accounts  map[string]Account
	transfers map[string]Transfer
	order     []string // transfer ids in decision order
	requests  []avro.TransferRequest
}

func (v *view) account(id string) Account {
	if a, ok := v.accounts[id]; ok {
		return a
	}
	return v.t.account(id)
}

func (v *view) transfer(id string) (Transfer, bool) {
	if x, ok := v.transfers[id]; ok {
		return x, true
	}
	return v.t.transfer(id)
}

func (v *view) put(x Transfer) {
	if _, ok := v.transfers[x.ID]; !ok {
		v.order = append(v.order, x.ID)
	}
	v.transfers[x.ID] = x
}

// Transfers decides a batch: each linked chain (a run of transfers with
// the linked flag, closed by the first without it) is accepted or
// rejected as a whole; every other transfer on its own. A transfer id
// already decided returns its first result and changes nothing (a
// different body under the same id is reported, never applied). Malformed
// batches (no transfers, too many, an invalid id, a repeated id) are bad
// input.
func (b *Book) Transfers(batch TransferBatch) (*Tx, []Transfer, error) {
	if len(batch.Transfers) == 0 || len(batch.Transfers) > MaxBatch {
		return nil, nil, bad("transfer batch of %d transfers, want 1..%d", len(batch.Transfers), MaxBatch)
	}
	switch batch.CallerRole {
	case string(avro.RoleOwner), string(avro.RolePartner), string(avro.RoleOperator):
	default:
		return nil, nil, bad("transfer batch from caller role %q", batch.CallerRole)
	}
	seen := make(map[string]bool, len(batch.Transfers))
	for _, s := range batch.Transfers {
		if err := ledger.ValidTransferID(s.ID); err != nil {
			return nil, nil, bad("%v", err)
		}
		if seen[s.ID] {
			return nil, nil, bad("transfer %s twice in one batch (%s)", s.ID, ReasonBatchDuplicateID)
		}
		seen[s.ID] = true
	}
	t := b.begin()
	results := make([]Transfer, len(batch.Transfers))
	for start := 0; start < len(batch.Transfers); {
		end := start
		for end < len(batch.Transfers)-1 && batch.Transfers[end].Flags&ledger.TransferLinked != 0 {
			end++
		}
		t.decideChain(batch, start, end+1, results)
		start = end + 1
	}
	return t, results, nil
}

// decideChain decides batch.Transfers[lo:hi], a chain (or one transfer).
func (t *Tx) decideChain(batch TransferBatch, lo, hi int, results []Transfer) {
	specs := batch.Transfers[lo:hi]
	caller := strings.ToLower(batch.CallerRole) + ":" + batch.CallerID
	// Ids decided before answer with their first result. A chain that is
	// wholly a replay changes nothing; one that mixes old and new ids fails
	// (the old ones keep their result).
	old := 0
	for i, s := range specs {
		if x, ok := t.transfer(s.ID); ok {
			old++
			if x.Digest != s.Digest(batch.CallerRole, batch.CallerID) {
				x = Transfer{ID: s.ID, Status: TransferRejected, Reason: ReasonExistsDifferent}
			}
			results[lo+i] = x
		}
	}
	if old == len(specs) {
		return
	}
	v := &view{t: t, accounts: map[string]Account{}, transfers: map[string]Transfer{}}
	failed := -1
	reason := ""
	if specs[len(specs)-1].Flags&ledger.TransferLinked != 0 {
		failed, reason = len(specs)-1, ReasonLinkedChainOpen
	}
	for i := 0; i < len(specs) && failed < 0; i++ {
		s := specs[i]
		if _, ok := t.transfer(s.ID); ok {
			failed, reason = i, ReasonLinkedEventFailed
			break
		}
		if r := v.decide(s, batch, caller); r != "" {
			failed, reason = i, r
		}
	}
	if failed < 0 {
		for _, id := range v.order {
			x := v.transfers[id]
			t.putTransfer(x)
			if x.Pending == PendingOpen && x.Status == TransferAccepted && x.Flags&ledger.TransferPending != 0 {
				t.newOpen = append(t.newOpen, x.ID)
			}
		}
		for id, a := range v.accounts {
			a.ID = id
			t.putAccount(a)
		}
		t.Transfers = append(t.Transfers, v.requests...)
		for i, s := range specs {
			results[lo+i] = v.transfers[s.ID]
		}
		return
	}
	// The chain fails: every new transfer of it is rejected, the failing
	// one with its reason, the others with linked_event_failed.
	for i, s := range specs {
		if _, ok := t.transfer(s.ID); ok {
			continue
		}
		r := ReasonLinkedEventFailed
		if i == failed {
			r = reason
		}
		x := Transfer{ID: s.ID, Debit: s.Debit, Credit: s.Credit, Amount: s.Amount, Flags: s.Flags, PendingID: s.PendingID,
			TimeoutMs: s.TimeoutMs, Digest: s.Digest(batch.CallerRole, batch.CallerID), Caller: caller,
			Status: TransferRejected, Reason: r, RequestedAt: batch.RequestedAt}
		if p, ok := t.transfer(s.PendingID); ok && s.PendingID != "" && x.Debit == "" && x.Credit == "" {
			x.Debit, x.Credit = p.Debit, p.Credit // a refused post or void is listed with its pending's accounts
		}
		t.putTransfer(x)
		results[lo+i] = x
	}
}

// decide checks one new transfer against the chain's view and, if it
// holds, records its effect there and returns ""; else the reason.
func (v *view) decide(s TransferSpec, batch TransferBatch, caller string) string {
	x := Transfer{ID: s.ID, Debit: s.Debit, Credit: s.Credit, Amount: s.Amount, Flags: s.Flags, PendingID: s.PendingID,
		TimeoutMs: s.TimeoutMs, Digest: s.Digest(batch.CallerRole, batch.CallerID), Caller: caller,
		Status: TransferAccepted, RequestedAt: batch.RequestedAt}
	phase := s.Flags &^ ledger.TransferLinked
	switch phase {
	case 0, ledger.TransferPending:
		if s.PendingID != "" {
			return ReasonPendingIDOnSingle
		}
		if validAccount(s.Debit) != nil || validAccount(s.Credit) != nil {
			return ReasonBadAccount
		}
		if s.Debit == s.Credit {
			return ReasonSameAccount
		}
		if !mayDebit(batch, s.Debit) {
			return ReasonForbidden
		}
		if s.Amount <= 0 {
			return ReasonAmount
		}
		if phase == 0 && s.TimeoutMs != 0 {
			return ReasonTimeoutOnSinglePhase
		}
		if s.TimeoutMs < 0 || s.TimeoutMs > MaxTransferTimeout.Milliseconds() {
			return ReasonTimeout
		}
		d := v.account(s.Debit)
		c := v.account(s.Credit)
		if d.Reserved > maxInt64-s.Amount || c.Balance > maxInt64-s.Amount {
			return ReasonOverflow
		}
		if d.Flags&AllowOverdraft == 0 && d.Available() < s.Amount {
			return ReasonExceedsCredits
		}
		d.Reserved += s.Amount
		v.accounts[s.Debit] = d
		if phase == ledger.TransferPending {
			x.Pending = PendingOpen
		}
	case ledger.TransferPostPending, ledger.TransferVoidPending:
		if s.PendingID == "" {
			return ReasonPendingIDMissing
		}
		if s.TimeoutMs != 0 {
			return ReasonTimeoutOnSinglePhase
		}
		p, ok := v.transfer(s.PendingID)
		if !ok || p.Status == TransferRejected {
			return ReasonPendingNotFound
		}
		if p.Flags&ledger.TransferPending == 0 {
			return ReasonNotPending
		}
		if s.Debit != "" && s.Debit != p.Debit || s.Credit != "" && s.Credit != p.Credit {
			return ReasonPendingDifferent
		}
		if s.Amount != 0 && s.Amount != p.Amount {
			if phase == ledger.TransferPostPending && s.Amount < p.Amount && s.Amount > 0 {
				return ReasonPostAmountUnsupported
			}
			return ReasonPendingDifferent
		}
		if !mayResolve(batch, p) || p.Redemption != "" {
			return ReasonForbidden // a redemption's hold: the partner's ack or expiry resolves it
		}
		switch p.Pending {
		case PendingPosted:
			return ReasonAlreadyPosted
		case PendingVoided:
			return ReasonAlreadyVoided
		case PendingExpired:
			return ReasonPendingExpired
		}
		if p.ExpiresAtMs > 0 && p.ExpiresAtMs <= v.t.getMeta().LedgerMs {
			return ReasonPendingExpired // Tick or the next entry expires it
		}
		x.Debit, x.Credit, x.Amount = p.Debit, p.Credit, p.Amount
		p.Pending, p.ResolvedBy = PendingPosted, s.ID
		if phase == ledger.TransferVoidPending {
			p.Pending = PendingVoided
		}
		v.put(p)
	default:
		return ReasonClientFlags
	}
	req := avro.TransferRequest{RequestID: x.ID, DebitAccount: x.Debit, CreditAccount: x.Credit, Amount: x.Amount,
		Flags: int64(x.Flags), PendingID: x.PendingID, TimeoutMs: x.TimeoutMs, RequestedAt: batch.RequestedAt}
	// What the ledger will check, checked here: an accepted transfer is
	// never refused by the ledger.
	if _, err := ledger.EntryFromTransfer(&req); err != nil {
		return ReasonClientFlags
	}
	v.put(x)
	v.requests = append(v.requests, req)
	return ""
}

const maxInt64 = 1<<63 - 1

// mayDebit: an owner debits only its own account, a partner only its
// partner account, an operator any account.
func mayDebit(b TransferBatch, account string) bool {
	switch b.CallerRole {
	case string(avro.RoleOperator):
		return true
	case string(avro.RoleOwner):
		return account == b.CallerID
	case string(avro.RolePartner):
		return account == PartnerAccount(b.CallerID)
	}
	return false
}

// mayResolve: a pending transfer is posted or voided by its credit side
// (the payee, who holds the reservation) or an operator. The payer cannot
// void a hold it gave.
func mayResolve(b TransferBatch, p Transfer) bool {
	return mayDebit(b, p.Credit)
}

// expire decides the expiry of an open pending transfer whose deadline
// passed and asks the ledger for the entry, stamped at or after it.
func (t *Tx) expire(p Transfer) {
	p.Pending, p.ResolvedBy = PendingExpired, ledger.ExpirePrefix+p.ID
	t.putTransfer(p)
	if p.Redemption != "" {
		t.holdExpired(p)
	}
	t.Transfers = append(t.Transfers, avro.TransferRequest{RequestID: ledger.ExpirePrefix + p.ID, DebitAccount: p.Debit,
		CreditAccount: p.Credit, Amount: p.Amount, Flags: int64(ledger.TransferExpirePending), PendingID: p.ID,
		NotBeforeMs: p.ExpiresAtMs, RequestedAt: time.UnixMilli(p.ExpiresAtMs).UTC()})
}

// expireDue expires every open pending transfer whose deadline is at or
// before ms: those the book knows (scanned only when the earliest
// deadline has come) and those whose deadline this Tx set.
func (t *Tx) expireDue(ms int64) {
	due := map[string]bool{}
	for id, x := range t.transfers {
		if x != nil && x.Pending == PendingOpen && x.ExpiresAtMs > 0 && x.ExpiresAtMs <= ms {
			due[id] = true
		}
	}
	if n := t.b.nextExpiry; n > 0 && n <= ms {
		for id, deadline := range t.b.openPending {
			if deadline > 0 && deadline <= ms {
				if p, ok := t.transfer(id); ok && p.Pending == PendingOpen {
					due[id] = true
				}
			}
		}
	}
	ids := make([]string, 0, len(due))
	for id := range due {
		ids = append(ids, id)
	}
	slices.Sort(ids) // the same requests in the same order on every replica
	for _, id := range ids {
		p, _ := t.transfer(id)
		t.expire(p)
	}
}

// indexExpiries recomputes the earliest deadline of the open pending
// transfers.
func (b *Book) indexExpiries() {
	b.nextExpiry = 0
	for _, d := range b.openPending {
		if d > 0 && (b.nextExpiry == 0 || d < b.nextExpiry) {
			b.nextExpiry = d
		}
	}
}

// applyTransfer applies a transfer entry (kind 5) of the book. The book is
// the truth: an entry settlement did not decide (an alert) still moves the
// balances it says.
func (t *Tx) applyTransfer(e Entry) {
	f := e.TransferFlags
	id := e.RequestID
	proof := e.Proof
	known := true
	if f&ledger.TransferExpirePending == 0 {
		x, ok := t.transfer(id)
		if !ok || x.Status == TransferRejected || x.Debit != e.Account || x.Credit != e.CounterAccount || x.Amount != e.Amount {
			t.alert("unknown_transfer", "transfer entry %d (%s): no accepted transfer of ours matches it", e.Proof.LeafIndex, id)
			known = false
		} else {
			if x.Status == TransferCommitted {
				t.alert("duplicate_entry", "transfer %s appended twice", id)
				return
			}
			x.Status, x.CommittedAt, x.Entry = TransferCommitted, e.AppendedAt, &proof
			if f&ledger.TransferPending != 0 && x.TimeoutMs > 0 {
				x.ExpiresAtMs = e.AppendedAt.UnixMilli() + x.TimeoutMs
			}
			t.putTransfer(x)
			if x.Redemption != "" && f&ledger.TransferPending != 0 {
				t.holdEntered(x, proof, e.AppendedAt)
			}
		}
	}
	if f.Resolves() {
		if p, ok := t.transfer(e.PendingID); ok && known {
			p.Resolved, p.Resolution = true, &proof
			if f&ledger.TransferExpirePending != 0 && p.Pending != PendingExpired {
				t.alert("unknown_transfer", "expiry entry %d of %s, which settlement resolved as %s", e.Proof.LeafIndex, p.ID, p.Pending)
			}
			t.putTransfer(p)
			if p.Redemption != "" && f&ledger.TransferPostPending != 0 {
				t.holdPosted(p, e.AppendedAt)
			}
		}
	}
	d := t.account(e.Account)
	c := t.account(e.CounterAccount)
	reserved := known && f&ledger.TransferPending == 0 // single, post, void, expire release the reservation
	if x, ok := t.transfer(id); ok && x.Released && f&ledger.TransferExpirePending == 0 {
		reserved = false // settlement released it already (a late hold's void)
	}
	switch {
	case f.Moves():
		d.Balance -= e.Amount
		c.Balance += e.Amount
	}
	if reserved {
		d.Reserved -= e.Amount
		if d.Reserved < 0 {
			t.alert("reserved_negative", "account %s: reserved %d after transfer entry %d", d.ID, d.Reserved, e.Proof.LeafIndex)
			d.Reserved = 0
		}
	}
	if d.Flags&AllowOverdraft == 0 && d.Available() < 0 {
		t.alert("overdraft", "transfer entry %d leaves %s at %d available", e.Proof.LeafIndex, d.ID, d.Available())
	}
	t.putAccount(d)
	t.putAccount(c)
}
