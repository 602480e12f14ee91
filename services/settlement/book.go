package settlement

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/minecart/minecart/schemas/avro"
)

// Policy holds the rules of the book.
type Policy struct {
	// DebitTimeout is how long (settlement's clock) the ledger has to
	// append a redemption's hold (or, with DebitRedemptions, its debit)
	// before settlement gives up and releases the reservation. A hold
	// appended after that is voided at once. A debit cannot be undone
	// (DebitRequest has no deadline), so a late debit is honoured: the
	// order is confirmed late if the points are still free, else the
	// overdraft is alerted and settlement asks the ledger to reverse it.
	// Keep it well above the ledger's normal latency.
	DebitTimeout time.Duration
	// FulfilTimeout is the timeout, in ledger time, of a redemption's
	// hold: the partner must ack within it of the hold's block timestamp,
	// else the hold expires and the points come back.
	FulfilTimeout time.Duration
	// DebitRedemptions makes new redemptions pay with a kind-2 debit (the
	// protocol before holds, which has no deadline) instead of a hold.
	// Off by default; entries of either kind are always applied, so
	// redemptions begun before an upgrade finish as they began.
	DebitRedemptions bool
	// MaxQuantity bounds the units of one redemption.
	MaxQuantity int32
	// KeepRedemptions is how long a finished redemption (fulfilled,
	// rejected, partner-failed) stays in the state after its last change;
	// it is forgotten at the first day close after that (0: forever). Its
	// idempotency key is honoured for that long, like a payment API's.
	// The status topic keeps its history regardless.
	KeepRedemptions time.Duration
}

// DefaultPolicy is the policy used when the stage's config leaves it zero.
func DefaultPolicy() Policy {
	return Policy{DebitTimeout: 5 * time.Minute, FulfilTimeout: 7 * 24 * time.Hour, MaxQuantity: 100, KeepRedemptions: 30 * 24 * time.Hour}
}

// Validate reports a policy that cannot work.
func (p Policy) Validate() error {
	if p.DebitTimeout <= 0 {
		return errors.New("debit timeout must be positive")
	}
	if p.FulfilTimeout <= 0 || p.FulfilTimeout > MaxTransferTimeout || p.FulfilTimeout%time.Millisecond != 0 {
		return fmt.Errorf("fulfil timeout %v: want whole milliseconds in (0, %v]", p.FulfilTimeout, MaxTransferTimeout)
	}
	if p.MaxQuantity <= 0 {
		return errors.New("max quantity must be positive")
	}
	if p.KeepRedemptions < 0 {
		return errors.New("negative redemption retention")
	}
	return nil
}

// Account is one account's balance. Balance is what the ledger says the
// account holds; Reserved is what pending redemptions set aside from it.
type Account struct {
	ID       string
	Balance  int64
	Reserved int64
	// Held are the credits of a holding account ("vehicle:<id>") waiting
	// for the vehicle to be bound to an owner.
	Held []CreditSettled `json:",omitempty"`
	// Flags are set by an operator (AllowOverdraft).
	Flags AccountFlags `json:",omitempty"`
}

// Available is what the account can spend now.
func (a Account) Available() int64 { return a.Balance - a.Reserved }

// ItemState is a catalog item with the units sold since its last record.
type ItemState struct {
	Item CatalogItem
	Sold int64
}

// left is the units still for sale, or -1 for unlimited.
func (s ItemState) left() int64 {
	if s.Item.Stock == nil {
		return -1
	}
	return max(*s.Item.Stock-s.Sold, 0)
}

// DayTotals accumulates one day of a statement.
type DayTotals struct {
	Minted   int64
	Redeemed int64
	Partners map[string]PartnerTotal `json:",omitempty"`
}

// Meta is the book's totals and cursors.
type Meta struct {
	Seq         int64                // last debit request sequence number used
	NextLeaf    int64                // leaf index of the next ledger entry expected
	Minted      int64                // all-time points credited
	Redeemed    int64                // all-time points debited
	Outstanding int64                // minted - redeemed through the last closed day
	OpenDay     string               // first day without a statement ("" = none yet)
	LedgerMs    int64                `json:",omitempty"` // ledger time: the highest block timestamp applied
	Days        map[string]DayTotals `json:",omitempty"`
}

func (m Meta) clone() Meta {
	c := m
	c.Days = make(map[string]DayTotals, len(m.Days))
	for d, t := range m.Days {
		if t.Partners != nil {
			p := make(map[string]PartnerTotal, len(t.Partners))
			for k, v := range t.Partners {
				p[k] = v
			}
			t.Partners = p
		}
		c.Days[d] = t
	}
	return c
}

// Alert is an anomaly the stage must make loud (metric and error log).
type Alert struct {
	Kind string // short label: invariant, overdraft, leaf_gap, duplicate_entry, ...
	Msg  string
}

// Book is the whole settlement state of the one settlement task. It is
// not safe for concurrent use: the stage feeds it one record at a time.
//
// Every operation returns a Tx that holds the changes and the records to
// write without touching the book; Commit applies it. The stage encodes
// and emits a Tx's output before committing it, so a failure leaves the
// book as it was.
type Book struct {
	policy      Policy
	accounts    map[string]Account
	bindings    map[string]Binding
	items       map[string]ItemState
	redemptions map[string]Redemption
	meta        Meta
	pending     []string // ids of PENDING redemptions by Seq (may hold stale ids)
	transfers   map[string]Transfer
	openPending map[string]int64 // open pending transfers: id -> deadline (ExpiresAtMs; 0: none yet or none)
	nextExpiry  int64            // the lowest non-zero deadline of openPending (0: none)
}

// NewBook returns an empty book.
func NewBook(p Policy) (*Book, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("settlement policy: %w", err)
	}
	return &Book{
		policy:      p,
		accounts:    make(map[string]Account),
		bindings:    make(map[string]Binding),
		items:       make(map[string]ItemState),
		redemptions: make(map[string]Redemption),
		meta:        Meta{Days: map[string]DayTotals{}},
		transfers:   make(map[string]Transfer),
		openPending: make(map[string]int64),
	}, nil
}

// Account returns an account's state.
func (b *Book) Account(id string) (Account, bool) { a, ok := b.accounts[id]; return a, ok }

// Redemption returns a redemption's state.
func (b *Book) Redemption(id string) (Redemption, bool) { r, ok := b.redemptions[id]; return r, ok }

// Binding returns a vehicle's owner binding.
func (b *Book) Binding(vehicle string) (Binding, bool) { x, ok := b.bindings[vehicle]; return x, ok }

// Item returns a catalog item's state.
func (b *Book) Item(key string) (ItemState, bool) { x, ok := b.items[key]; return x, ok }

// Points returns the all-time points credited (minted) and debited
// (redeemed).
func (b *Book) Points() (minted, redeemed int64) { return b.meta.Minted, b.meta.Redeemed }

// Pending counts the pending redemptions (exact after Restored).
func (b *Book) Pending() int { return len(b.pending) }

// Totals sums every balance and reservation.
func (b *Book) Totals() (balances, reserved, accounts int64) {
	for _, a := range b.accounts {
		balances += a.Balance
		reserved += a.Reserved
	}
	return balances, reserved, int64(len(b.accounts))
}

// Output is what a Tx writes besides its state changes.
type Output struct {
	Status     []Redemption        // every redemption change: the status topic
	Orders     []Redemption        // confirmed redemptions: the partners' topics
	Debits     []avro.DebitRequest // to the ledger requests topic
	Credits    []CreditSettled     // to the reward credits topic
	Statements []avro.Statement
	Alerts     []Alert
	// Transfers are the transfer entries to request from the ledger (the
	// ledger requests topic), in decision order.
	Transfers []avro.TransferRequest
}

// Tx is a set of changes to a Book and what they write.
type Tx struct {
	b           *Book
	accounts    map[string]*Account // nil value: deleted
	bindings    map[string]*Binding
	items       map[string]*ItemState
	redemptions map[string]*Redemption
	transfers   map[string]*Transfer
	meta        *Meta
	newPending  []string
	newOpen     []string // pending transfers opened
	Output
}

func (b *Book) begin() *Tx {
	return &Tx{b: b, accounts: map[string]*Account{}, bindings: map[string]*Binding{},
		items: map[string]*ItemState{}, redemptions: map[string]*Redemption{}, transfers: map[string]*Transfer{}}
}

// lookup reads key through a Tx's changes to one of the book's maps (a
// nil change: deleted).
func lookup[V any](changed map[string]*V, book map[string]V, key string) (V, bool) {
	if x, ok := changed[key]; ok {
		if x == nil {
			var zero V
			return zero, false
		}
		return *x, true
	}
	x, ok := book[key]
	return x, ok
}

func (t *Tx) account(id string) Account {
	if a, ok := lookup(t.accounts, t.b.accounts, id); ok {
		return a
	}
	return Account{ID: id}
}

func (t *Tx) putAccount(a Account) { t.accounts[a.ID] = &a }

func (t *Tx) binding(vehicle string) (Binding, bool) {
	return lookup(t.bindings, t.b.bindings, vehicle)
}

func (t *Tx) item(key string) (ItemState, bool) { return lookup(t.items, t.b.items, key) }

func (t *Tx) redemption(id string) (Redemption, bool) {
	return lookup(t.redemptions, t.b.redemptions, id)
}

func (t *Tx) putRedemption(r Redemption) {
	t.redemptions[r.ID] = &r
	t.Status = append(t.Status, r)
}

func (t *Tx) getMeta() *Meta {
	if t.meta == nil {
		m := t.b.meta.clone()
		t.meta = &m
	}
	return t.meta
}

func (t *Tx) alert(kind, format string, args ...any) {
	t.Alerts = append(t.Alerts, Alert{Kind: kind, Msg: fmt.Sprintf(format, args...)})
}

// Change is one changed piece of state, keyed as in the changelog.
type Change struct {
	Key   string
	Value any // Account, Binding, ItemState, Redemption or Meta; nil = deleted
}

// Changelog keys.
const (
	keyAccount    = "a/"
	keyBinding    = "b/"
	keyItem       = "i/"
	keyRedemption = "r/"
	keyTransfer   = "t/"
	keyMeta       = "m"
)

// AccountKey is the changelog key of an account's state.
func AccountKey(id string) string { return keyAccount + id }

// ItemStateKey is the changelog key of a catalog item's state.
func ItemStateKey(partner, item string) string { return keyItem + ItemKey(partner, item) }

// RedemptionKey is the changelog key of a redemption's state.
func RedemptionKey(id string) string { return keyRedemption + id }

// Changes lists the Tx's state changes in a stable order.
func (t *Tx) Changes() []Change {
	out := changes(nil, keyAccount, t.accounts, keepAccount)
	out = changes(out, keyBinding, t.bindings, nil)
	out = changes(out, keyItem, t.items, nil)
	out = changes(out, keyRedemption, t.redemptions, nil)
	out = changes(out, keyTransfer, t.transfers, nil)
	if t.meta != nil {
		out = append(out, Change{keyMeta, *t.meta})
	}
	return out
}

// changes appends the changes to one of the book's maps by key: a nil
// value, or one keep refuses, is a deletion.
func changes[V any](out []Change, prefix string, changed map[string]*V, keep func(string, *V) bool) []Change {
	for _, k := range sortedKeys(changed) {
		if v := changed[k]; v != nil && (keep == nil || keep(k, v)) {
			out = append(out, Change{prefix + k, *v})
		} else {
			out = append(out, Change{prefix + k, nil})
		}
	}
	return out
}

// commit applies the changes to one of the book's maps, as changes lists them.
func commit[V any](book map[string]V, changed map[string]*V, keep func(string, *V) bool) {
	for k, v := range changed {
		if v != nil && (keep == nil || keep(k, v)) {
			book[k] = *v
		} else {
			delete(book, k)
		}
	}
}

// keepAccount reports whether an account is kept: an empty holding account
// is deleted.
func keepAccount(id string, a *Account) bool {
	return !isHold(id) || a.Balance != 0 || a.Reserved != 0 || len(a.Held) > 0 || a.Flags != 0
}

func isHold(id string) bool { return len(id) > len(HoldPrefix) && id[:len(HoldPrefix)] == HoldPrefix }

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Commit applies the Tx to its book.
func (t *Tx) Commit() {
	b := t.b
	commit(b.accounts, t.accounts, keepAccount)
	commit(b.bindings, t.bindings, nil)
	commit(b.items, t.items, nil)
	commit(b.redemptions, t.redemptions, nil)
	commit(b.transfers, t.transfers, nil)
	for _, id := range t.newOpen {
		b.openPending[id] = 0
	}
	stale := false // the earliest deadline left the index
	for id, x := range t.transfers {
		old, open := b.openPending[id]
		if !open {
			continue
		}
		if x == nil || x.Pending != PendingOpen {
			delete(b.openPending, id)
			stale = stale || old == b.nextExpiry
			continue
		}
		b.openPending[id] = x.ExpiresAtMs
		if d := x.ExpiresAtMs; d > 0 && (b.nextExpiry == 0 || d < b.nextExpiry) {
			b.nextExpiry = d
		}
	}
	if stale {
		b.indexExpiries()
	}
	if t.meta != nil {
		b.meta = *t.meta
	}
	b.pending = append(b.pending, t.newPending...)
	b.trimPending()
}

func (b *Book) trimPending() {
	i := 0
	for i < len(b.pending) && b.redemptions[b.pending[i]].Status != StatusPending {
		i++
	}
	if i > 0 {
		b.pending = slices.Delete(b.pending, 0, i)
	}
}

// dayOf buckets a time into a statement day: its UTC date, or the first
// open day if that date already has its statement.
func (t *Tx) dayOf(at time.Time) string {
	m := t.getMeta()
	d := at.UTC().Format(time.DateOnly)
	if m.OpenDay == "" {
		m.OpenDay = d
	}
	if d < m.OpenDay {
		d = m.OpenDay
	}
	return d
}

func (t *Tx) addMinted(at time.Time, n int64) {
	m := t.getMeta()
	d := t.dayOf(at)
	dt := m.Days[d]
	dt.Minted += n
	m.Days[d] = dt
	m.Minted += n
}

func (t *Tx) addRedeemed(at time.Time, partner string, n int64) {
	m := t.getMeta()
	d := t.dayOf(at)
	dt := m.Days[d]
	dt.Redeemed += n
	if partner != "" {
		if dt.Partners == nil {
			dt.Partners = map[string]PartnerTotal{}
		}
		p := dt.Partners[partner]
		p.Partner = partner
		p.Redemptions++
		p.Points += n
		dt.Partners[partner] = p
	}
	m.Days[d] = dt
	m.Redeemed += n
}

// ErrBadInput marks input the book refuses: the stage dead-letters it.
var ErrBadInput = errors.New("bad input")

func bad(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadInput, fmt.Sprintf(format, args...))
}

// Bind binds a vehicle to an owner (owner "" unbinds it). Credits held for
// the vehicle move to the owner's account and are settled now.
func (b *Book) Bind(x Binding) (*Tx, error) {
	if x.VehicleID == "" {
		return nil, bad("binding without vehicle id")
	}
	if isHold(x.Owner) {
		return nil, bad("owner %q uses the holding prefix %q", x.Owner, HoldPrefix)
	}
	if x.Owner != "" && ValidID(x.Owner) != nil {
		return nil, bad("binding of %s: %v", x.VehicleID, ValidID(x.Owner))
	}
	t := b.begin()
	if x.Owner == "" {
		t.bindings[x.VehicleID] = nil
		return t, nil
	}
	t.bindings[x.VehicleID] = &x
	hold := t.account(HoldAccount(x.VehicleID))
	if len(hold.Held) > 0 || hold.Balance != 0 {
		// The whole holding balance moves: the held credits, and any
		// negative late-data adjustment made while the vehicle was unbound.
		owner := t.account(x.Owner)
		for _, c := range hold.Held {
			c.Account = x.Owner
			c.SettledAt = x.UpdatedAt
			t.Credits = append(t.Credits, c)
		}
		owner.Balance += hold.Balance
		if owner.Available() < 0 {
			t.alert("overdraft", "binding %s to %s moves %d points: available %d", x.VehicleID, x.Owner, hold.Balance, owner.Available())
		}
		hold.Balance, hold.Held = 0, nil
		t.putAccount(owner)
		t.putAccount(hold)
	}
	return t, nil
}

// PutItem adds, changes or (with Active false) withdraws a catalog item.
// Its Stock restarts the count of units for sale.
func (b *Book) PutItem(it CatalogItem) (*Tx, error) {
	if ValidID(it.Partner) != nil || ValidID(it.ItemID) != nil {
		return nil, bad("catalog item %q/%q: partner and item must be ids (1-128 characters, no slash or space)", it.Partner, it.ItemID)
	}
	if it.PricePoints <= 0 {
		return nil, bad("catalog item %s: price %d points, want > 0", it.Key(), it.PricePoints)
	}
	if it.Stock != nil && *it.Stock < 0 {
		return nil, bad("catalog item %s: negative stock", it.Key())
	}
	t := b.begin()
	t.items[it.Key()] = &ItemState{Item: it}
	return t, nil
}

// DeleteItem removes a catalog item (a tombstone on the catalog topic).
func (b *Book) DeleteItem(key string) *Tx {
	t := b.begin()
	t.items[key] = nil
	return t
}

// Redeem handles a redemption request: a new one is either rejected with a
// reason or reserves the points and the stock and asks the ledger for the
// debit. A request whose id exists already changes nothing; one that
// reuses an idempotency key for a different order is bad input.
func (b *Book) Redeem(req avro.RedemptionRequest) (*Tx, error) {
	if req.Owner == "" || req.IdempotencyKey == "" {
		return nil, bad("redemption request without owner or idempotency key")
	}
	id := RedemptionID(req.Owner, req.IdempotencyKey)
	t := b.begin()
	if old, ok := t.redemption(id); ok {
		if old.Partner != req.Partner || old.ItemID != req.ItemID || old.Quantity != req.Quantity {
			return nil, bad("idempotency key %q of owner %q reused for a different order", req.IdempotencyKey, req.Owner)
		}
		return t, nil
	}
	r := Redemption{ID: id, IdempotencyKey: req.IdempotencyKey, Owner: req.Owner, Partner: req.Partner,
		ItemID: req.ItemID, Quantity: req.Quantity, RequestedAt: req.RequestedMs, UpdatedAt: req.RequestedMs}
	reject := func(reason string) (*Tx, error) {
		r.Status, r.Reason = StatusRejected, reason
		t.putRedemption(r)
		return t, nil
	}
	r.Customer = req.Customer
	if isHold(req.Owner) || req.Quantity <= 0 || req.Quantity > b.policy.MaxQuantity || ValidCustomer(req.Customer) != nil {
		r.Customer = ""
		return reject(ReasonInvalid)
	}
	it, ok := t.item(ItemKey(req.Partner, req.ItemID))
	if !ok || !it.Item.Active {
		return reject(ReasonUnknownItem)
	}
	if left := it.left(); left >= 0 && left < int64(req.Quantity) {
		return reject(ReasonOutOfStock)
	}
	if it.Item.PricePoints > math.MaxInt64/int64(req.Quantity) {
		return reject(ReasonInvalid)
	}
	r.Points = it.Item.PricePoints * int64(req.Quantity)
	if req.MaxPoints != nil && r.Points > *req.MaxPoints {
		return reject(ReasonPriceChanged)
	}
	acct := t.account(req.Owner)
	if acct.Available() < r.Points {
		return reject(ReasonInsufficient)
	}
	acct.Reserved += r.Points
	it.Sold += int64(req.Quantity)
	m := t.getMeta()
	if !b.policy.DebitRedemptions {
		if reason := t.hold(&r); reason != "" {
			return reject(reason)
		}
	}
	m.Seq++
	r.Seq = m.Seq
	r.Status = StatusPending
	t.putAccount(acct)
	t.items[it.Item.Key()] = &it
	t.putRedemption(r)
	t.newPending = append(t.newPending, id)
	if b.policy.DebitRedemptions {
		t.Debits = append(t.Debits, avro.DebitRequest{
			RequestID: id, Kind: avro.RequestKindDebit, Account: req.Owner, Amount: r.Points,
			Reason: "redemption", Partner: req.Partner, Item: req.ItemID, RedemptionID: id,
			RequestedAt: req.RequestedMs,
		})
	}
	return t, nil
}

// release rejects a pending redemption and gives back its points and stock.
func (t *Tx) release(r Redemption, reason string, at time.Time) {
	acct := t.account(r.Owner)
	acct.Reserved -= r.Points
	if acct.Reserved < 0 {
		t.alert("reserved_negative", "account %s: reserved %d after releasing %s", r.Owner, acct.Reserved, r.ID)
		acct.Reserved = 0
	}
	t.putAccount(acct)
	if it, ok := t.item(ItemKey(r.Partner, r.ItemID)); ok {
		it.Sold = max(it.Sold-int64(r.Quantity), 0)
		t.items[it.Item.Key()] = &it
	}
	r.Status, r.Reason, r.UpdatedAt = StatusRejected, reason, at
	t.putRedemption(r)
}

// Apply handles one ledger entry.
func (b *Book) Apply(e Entry) (*Tx, error) {
	t := b.begin()
	m := t.getMeta()
	switch {
	case e.Proof.LeafIndex < m.NextLeaf:
		t.alert("duplicate_entry", "ledger entry %d seen again (next expected %d): ignored", e.Proof.LeafIndex, m.NextLeaf)
		t.meta = nil
		return t, nil
	case e.Proof.LeafIndex > m.NextLeaf:
		t.alert("leaf_gap", "ledger entry %d follows %d: entries %d..%d were never seen", e.Proof.LeafIndex, m.NextLeaf-1, m.NextLeaf, e.Proof.LeafIndex-1)
	}
	m.NextLeaf = e.Proof.LeafIndex + 1
	m.LedgerMs = max(m.LedgerMs, e.AppendedAt.UnixMilli())
	switch e.Kind {
	case KindCredit:
		if e.VehicleID == "" || e.Amount < 0 {
			t.alert("bad_entry", "credit entry %d: vehicle %q amount %d", e.Proof.LeafIndex, e.VehicleID, e.Amount)
			return t, nil
		}
		t.credit(e)
	case KindBonus:
		// A campaign's bonus is minted and settled like the credit it
		// rests on: to the vehicle's owner (or held until it is bound),
		// and, kind bonus, to the campaign's partner's campaigns topic
		// (BonusPartner; docs/campaigns.md), not the reward credits topic.
		if e.VehicleID == "" || e.Amount <= 0 {
			t.alert("bad_entry", "bonus entry %d: vehicle %q amount %d", e.Proof.LeafIndex, e.VehicleID, e.Amount)
			return t, nil
		}
		t.credit(e)
	case KindCampaign:
		// A campaign action moves no points.
	case KindAdjustment:
		t.adjust(e)
	case KindRescore:
		if e.VehicleID == "" || e.ScoreID == "" {
			t.alert("bad_entry", "rescore entry %d: vehicle %q credit %q", e.Proof.LeafIndex, e.VehicleID, e.ScoreID)
			return t, nil
		}
		t.rescore(e)
	case KindDebit:
		t.debit(e)
	case KindTransfer:
		t.applyTransfer(e)
	case KindErasure:
		// Recorded in the ledger; balances do not change.
	default:
		t.alert("bad_entry", "ledger entry %d of unknown kind %q", e.Proof.LeafIndex, e.Kind)
	}
	// Ledger time moved: pending transfers whose deadline it passed expire.
	t.expireDue(m.LedgerMs)
	return t, nil
}

// credit settles a vehicle's credit into its owner's account, or holds it.
func (t *Tx) credit(e Entry) {
	c := CreditSettled{VehicleID: cmp.Or(e.VehiclePseudonym, e.VehicleID), Day: e.Day, ScoreID: e.ScoreID, Points: e.Amount, Proof: e.Proof, SettledAt: e.AppendedAt}
	if e.Kind == KindBonus {
		c.Kind = KindBonus
	}
	t.addMinted(e.AppendedAt, e.Amount)
	if x, ok := t.binding(e.VehicleID); ok {
		c.Account = x.Owner
		a := t.account(x.Owner)
		a.Balance += e.Amount
		t.putAccount(a)
		t.Credits = append(t.Credits, c)
		return
	}
	h := t.account(HoldAccount(e.VehicleID))
	h.Balance += e.Amount
	h.Held = append(slices.Clip(h.Held), c)
	t.putAccount(h)
}

// rescore applies a late-data correction of a credited vehicle-day to the
// account the vehicle's credits go to (its owner, or its holding account
// while it is unbound), whatever its sign: balance += delta. A negative
// delta may take the balance below the points already spent (the balance
// goes negative): nothing is clawed back from partners, the account just
// cannot redeem until later credits cover it (Redeem refuses when
// available < price), and an "overdraft" alert is raised. Partners get it
// on the credits topic like a credit (kind "rescore", points = the delta).
func (t *Tx) rescore(e Entry) {
	c := CreditSettled{VehicleID: cmp.Or(e.VehiclePseudonym, e.VehicleID), Day: e.Day, ScoreID: e.ScoreID, Points: e.Amount, Proof: e.Proof, SettledAt: e.AppendedAt,
		Kind: KindRescore, Revision: e.Revision, DayPoints: e.DayPoints}
	t.addMinted(e.AppendedAt, e.Amount)
	id := HoldAccount(e.VehicleID)
	if x, ok := t.binding(e.VehicleID); ok {
		id, c.Account = x.Owner, x.Owner
	}
	a := t.account(id)
	a.Balance += e.Amount
	if a.Available() < 0 {
		t.alert("overdraft", "rescore entry %d (%s revision %d, %+d points) leaves %s at %d available", e.Proof.LeafIndex, e.ScoreID, e.Revision, e.Amount, id, a.Available())
	}
	if c.Account == "" {
		a.Held = append(slices.Clip(a.Held), c)
	} else {
		t.Credits = append(t.Credits, c)
	}
	t.putAccount(a)
}

// adjust applies an adjustment: positive ones are credits, negative ones
// take points back as far as the account's available points allow.
func (t *Tx) adjust(e Entry) {
	if e.Amount >= 0 {
		if e.Account == "" {
			t.credit(e)
			return
		}
		a := t.account(e.Account)
		a.Balance += e.Amount
		t.putAccount(a)
		t.addMinted(e.AppendedAt, e.Amount)
		return
	}
	id := e.Account
	if id == "" {
		if x, ok := t.binding(e.VehicleID); ok {
			id = x.Owner
		} else {
			id = HoldAccount(e.VehicleID)
		}
	}
	a := t.account(id)
	a.Balance += e.Amount
	if a.Available() < 0 {
		t.alert("overdraft", "adjustment entry %d takes %d from %s: available %d", e.Proof.LeafIndex, -e.Amount, id, a.Available())
	}
	t.putAccount(a)
	t.addMinted(e.AppendedAt, e.Amount)
}

// debit applies a debit entry and confirms the redemption it pays for.
func (t *Tx) debit(e Entry) {
	r, ok := t.redemption(e.RedemptionID)
	if !ok || e.RedemptionID == "" {
		a := t.account(e.Account)
		a.Balance -= e.Amount
		if a.Available() < 0 {
			t.alert("overdraft", "debit entry %d of %d points on %s is no redemption of ours: available %d", e.Proof.LeafIndex, e.Amount, e.Account, a.Available())
		}
		t.putAccount(a)
		t.addRedeemed(e.AppendedAt, "", e.Amount)
		return
	}
	// The ledger appends debits in request order: pending requests sent
	// before this one that have no entry were refused by the ledger.
	for _, id := range t.pendingBefore(r.Seq) {
		p, _ := t.redemption(id)
		t.release(p, ReasonLedgerReject, e.AppendedAt)
	}
	a := t.account(e.Account)
	confirm := r.Status == StatusPending
	if confirm {
		a.Reserved -= r.Points
	}
	if e.Amount != r.Points || e.Account != r.Owner {
		t.alert("debit_mismatch", "debit entry %d: %d points on %s, redemption %s wants %d on %s", e.Proof.LeafIndex, e.Amount, e.Account, r.ID, r.Points, r.Owner)
	}
	a.Balance -= e.Amount
	if !confirm {
		// The ledger appended a debit settlement had given up on. The points
		// are gone either way: if they were still free, deliver the order.
		if r.Status == StatusRejected && a.Available() >= 0 {
			confirm = true
			if it, ok := t.item(ItemKey(r.Partner, r.ItemID)); ok {
				it.Sold += int64(r.Quantity)
				t.items[it.Item.Key()] = &it
			}
		}
		t.alert("late_debit", "debit entry %d for redemption %s in status %s (confirmed now: %v)", e.Proof.LeafIndex, r.ID, r.Status, confirm)
	}
	if a.Available() < 0 {
		t.alert("overdraft", "debit entry %d leaves %s at %d available", e.Proof.LeafIndex, e.Account, a.Available())
		if !confirm {
			t.Debits = append(t.Debits, avro.DebitRequest{
				RequestID: "reversal/" + r.ID, Kind: avro.RequestKindAdjustment, Account: r.Owner, Amount: e.Amount,
				Reason:      "reversal of the debit of redemption " + r.ID + ", appended after settlement released it",
				RequestedAt: e.AppendedAt,
			})
		}
	}
	t.putAccount(a)
	t.addRedeemed(e.AppendedAt, r.Partner, e.Amount)
	if !confirm {
		return
	}
	proof := e.Proof
	early := r.EarlyAck
	r.Status, r.Reason, r.UpdatedAt, r.Debit, r.EarlyAck = StatusConfirmed, "", e.AppendedAt, &proof, nil
	t.putRedemption(r)
	t.Orders = append(t.Orders, r)
	if early != nil {
		if err := t.ack(r, *early); err != nil {
			t.alert("bad_ack", "early ack of redemption %s: %v", r.ID, err)
		}
	}
}

// pendingBefore lists the ids of PENDING redemptions with a lower Seq.
func (t *Tx) pendingBefore(seq int64) []string {
	var ids []string
	for _, id := range t.b.pending {
		r, _ := t.redemption(id)
		if r.Seq >= seq {
			break
		}
		if r.Status == StatusPending && r.Hold == "" { // a hold is never refused by the ledger
			ids = append(ids, id)
		}
	}
	return ids
}

// Reject handles the ledger's explicit refusal of a debit request.
func (b *Book) Reject(redemptionID, reason string, at time.Time) (*Tx, error) {
	t := b.begin()
	r, ok := t.redemption(redemptionID)
	if !ok || r.Status != StatusPending {
		return t, nil
	}
	t.release(r, ReasonLedgerReject+": "+reason, at)
	return t, nil
}

// Ack handles a partner's acknowledgement of a confirmed redemption.
func (b *Book) Ack(a PartnerAck) (*Tx, error) {
	t := b.begin()
	r, ok := t.redemption(a.RedemptionID)
	if !ok {
		return nil, bad("ack for unknown redemption %q", a.RedemptionID)
	}
	if r.Partner != a.Partner {
		return nil, bad("ack from partner %q for redemption %s of partner %q", a.Partner, r.ID, r.Partner)
	}
	switch {
	case r.Status == StatusConfirmed:
	case r.Status.Terminal():
		if r.Hold != "" && r.Status == StatusRejected && r.Reason == ReasonPartnerTimeout {
			t.alert("late_ack", "ack of redemption %s after its hold expired: refused", r.ID)
		}
		return t, nil // a repeated ack, or one too late
	case r.Status == StatusPending:
		if r.EarlyAck == nil {
			r.EarlyAck = &a
			t.redemptions[r.ID] = &r // state only: no status change to publish
		}
		return t, nil
	default:
		return nil, bad("ack for redemption %s in status %s", r.ID, r.Status)
	}
	if err := t.ack(r, a); err != nil {
		return nil, err
	}
	return t, nil
}

// ack applies a partner's ack to a confirmed redemption.
func (t *Tx) ack(r Redemption, a PartnerAck) error {
	if r.Hold != "" {
		return t.ackHold(r, a)
	}
	switch a.Status {
	case avro.AckStatusFulfilled:
		r.Status = StatusFulfilled
	case avro.AckStatusFailed:
		// The points were debited; giving them back is a ledger adjustment
		// an operator makes after talking to the partner.
		r.Status, r.Reason = StatusFailed, a.Reason
		t.alert("partner_failed", "partner %s could not fulfil redemption %s: %s", a.Partner, r.ID, a.Reason)
	default:
		return bad("ack status %q", a.Status)
	}
	r.PartnerRef, r.UpdatedAt, r.EarlyAck = a.Reference, a.AckedAt, nil
	t.putRedemption(r)
	return nil
}

// Tick releases the redemptions whose debit the ledger did not append
// within the policy's DebitTimeout and writes the statements of the days
// that ended before now.
func (b *Book) Tick(now time.Time) *Tx {
	t := b.begin()
	for _, id := range b.pending {
		r := b.redemptions[id]
		if r.Status != StatusPending || !now.After(r.RequestedAt.Add(b.policy.DebitTimeout)) {
			continue
		}
		t.release(r, ReasonLedgerTimeout, now)
	}
	// A quiet ledger does not move its clock: once the deadline passes
	// here, the expiry is requested, and the ledger stamps its block at
	// or after the deadline, so it is an expiry in ledger time.
	t.expireDue(now.UnixMilli())
	t.closeDays(now)
	return t
}

// closeDays writes a statement for every open day that ended before now.
func (t *Tx) closeDays(now time.Time) {
	today := now.UTC().Format(time.DateOnly)
	open := t.b.meta.OpenDay
	if open == "" {
		t.getMeta().OpenDay = today
		return
	}
	if open >= today {
		return
	}
	m := t.getMeta()
	balances, reserved, n := t.b.Totals()
	// Totals of this Tx's own changes (releases in the same tick move
	// reservations only, never balances).
	for k, a := range t.accounts {
		old := t.b.accounts[k]
		reserved += a.Reserved - old.Reserved
	}
	expected := m.Minted - m.Redeemed
	for d := open; d < today; d = nextDay(d) {
		dt := m.Days[d]
		m.Outstanding += dt.Minted - dt.Redeemed
		st := avro.Statement{Day: d, Minted: dt.Minted, Redeemed: dt.Redeemed, Outstanding: m.Outstanding,
			Reserved: reserved, BalanceSum: balances, Expected: expected, InvariantOk: balances == expected,
			Accounts: n, GeneratedMs: now}
		for _, p := range sortedKeys(dt.Partners) {
			st.Partners = append(st.Partners, dt.Partners[p].Avro())
		}
		if !st.InvariantOk {
			t.alert("invariant", "statement %s: sum of balances %d != minted - redeemed %d (delta %d)", d, balances, expected, balances-expected)
		}
		t.Statements = append(t.Statements, st)
		delete(m.Days, d)
	}
	m.OpenDay = today
	if keep := t.b.policy.KeepRedemptions; keep > 0 {
		for id, r := range t.b.redemptions {
			if r.Status.Terminal() && r.UpdatedAt.Before(now.Add(-keep)) {
				if _, changed := t.redemptions[id]; !changed {
					t.redemptions[id] = nil
				}
			}
		}
	}
}

func nextDay(d string) string {
	t, err := time.Parse(time.DateOnly, d)
	if err != nil {
		return "9999-12-31"
	}
	return t.AddDate(0, 0, 1).Format(time.DateOnly)
}
