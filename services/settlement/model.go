// Package settlement turns ledger entries into account balances and lets
// owners spend them: it binds vehicles to owner accounts, reserves points for
// a redemption, has the ledger append the debit, confirms the order to the
// partner once the debit is in the tree, and writes a daily statement that
// checks sum(balances) = minted - redeemed.
//
// This package is the pure domain: the Book, its model, its changelog
// encoding and the conversions of its state to and from the typed records
// of schemas/avro; no Kafka client and no clock.
// The stage (package stage) feeds it the single-partition input topics in
// order, so one task serialises every balance change, and keeps its state
// in the changelog topic; package api is the redemption HTTP API.
package settlement

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ids"
	"github.com/minecart/minecart/services/ledger"
)

// ValidID reports whether s can be an owner, vehicle, partner or item id:
// the one grammar of services/ids (1 to 64 bytes of [A-Za-z0-9._-],
// starting with a letter or digit).
func ValidID(s string) error { return ids.Valid(s) }

// Status is where a redemption stands.
type Status string

// Redemption statuses, in the order a successful one passes them.
const (
	StatusPending   Status = "PENDING"   // points reserved, debit requested from the ledger
	StatusConfirmed Status = "CONFIRMED" // debit entry in the ledger; order sent to the partner
	StatusFulfilled Status = "FULFILLED" // the partner acknowledged delivery
	StatusRejected  Status = "REJECTED"  // refused or failed; any reservation released
	StatusFailed    Status = "PARTNER_FAILED"
)

// Terminal reports whether no further change can happen to a redemption
// in status s, except a partner ack to a confirmed one.
func (s Status) Terminal() bool {
	return s == StatusFulfilled || s == StatusRejected || s == StatusFailed
}

// Reasons a redemption is rejected.
const (
	ReasonUnknownItem   = "unknown_item"
	ReasonOutOfStock    = "out_of_stock"
	ReasonInsufficient  = "insufficient_balance"
	ReasonPriceChanged  = "price_above_max_points"
	ReasonLedgerReject  = "ledger_rejected"
	ReasonLedgerTimeout = "ledger_timeout"
	ReasonInvalid       = "invalid_request"
)

// HoldPrefix starts the account that holds a vehicle's credits while the
// vehicle has no owner: "vehicle:<id>".
const HoldPrefix = "vehicle:"

// HoldAccount is the holding account of vehicle.
func HoldAccount(vehicle string) string { return HoldPrefix + vehicle }

// Binding says which owner's account a vehicle's credits go to.
type Binding struct {
	VehicleID string
	Owner     string // "" = unbound (a tombstone on the accounts topic)
	UpdatedAt time.Time
}

// CatalogItem is one thing a partner offers for points. Stock counts the
// units that can still be sold from the time of this record on: every new
// record of an item restarts the count (settlement subtracts what it sold
// since). A nil Stock is unlimited.
type CatalogItem struct {
	Partner     string
	ItemID      string
	Title       string
	PricePoints int64
	Stock       *int64
	Active      bool
	UpdatedAt   time.Time
}

// Key is the item's key on the catalog topic: "<partner>/<item>".
func (c CatalogItem) Key() string { return ItemKey(c.Partner, c.ItemID) }

// ItemKey is the catalog key of partner's item.
func ItemKey(partner, item string) string { return partner + "/" + item }

// RedemptionID derives the redemption id from the owner and the
// idempotency key: 32 hex digits of SHA-256(owner 0x00 key).
func RedemptionID(owner, key string) string {
	h := sha256.New()
	h.Write([]byte(owner))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Proof locates a ledger entry in the Merkle tree: its leaf, the tree size
// and root of the block that included it, and the RFC 6962 audit path.
type Proof struct {
	EntryID     string
	LeafIndex   int64
	BlockHeight int64
	TreeSize    int64
	Root        []byte
	LeafHash    []byte
	Leaf        []byte // the exact leaf data the ledger hashed (may be nil)
	Path        [][]byte
	Checkpoint  string // the block's signed C2SP checkpoint
}

// Redemption is the state of one redemption; its every change is written
// to the status topic, and the confirmed one is the partner's order.
type Redemption struct {
	ID             string
	IdempotencyKey string
	Owner          string
	Partner        string
	ItemID         string
	Quantity       int32
	Points         int64
	Status         Status
	Reason         string
	Seq            int64 // order of the debit requests settlement sent
	RequestedAt    time.Time
	UpdatedAt      time.Time
	PartnerRef     string // the partner's reference from its ack
	// Debit is the proof of the ledger entry the order rests on, once
	// confirmed: the hold (a kind-5 pending transfer to partner:<id>, id
	// Hold) or, for redemptions made before holds, the kind-2 debit.
	Debit *Proof
	// Hold is the id of the redemption's pending transfer ("" for a
	// redemption paid by a kind-2 debit).
	Hold string `json:",omitempty"`
	// EarlyAck is a partner ack that arrived while the redemption was
	// still pending (a partner client that shows records of aborted
	// transactions can see an order before it commits); it is applied
	// when the debit confirms the redemption.
	EarlyAck *PartnerAck `json:",omitempty"`
	// Customer is the owner's id at the partner, as the owner gave it in
	// the request ("" if not): the one clear identity the partner's order
	// carries (docs/partners.md, "Nothing personal").
	Customer string `json:",omitempty"`
}

// EntryKind is the kind of a ledger entry.
type EntryKind string

// Ledger entry kinds.
const (
	KindCredit     EntryKind = "credit"
	KindDebit      EntryKind = "debit"
	KindAdjustment EntryKind = "adjustment"
	KindRescore    EntryKind = "rescore" // a credited vehicle-day re-scored after late data (signed delta)
	KindTransfer   EntryKind = "transfer"
	KindCampaign   EntryKind = "campaign" // a campaign action: no balance effect
	KindBonus      EntryKind = "bonus"    // a campaign's bonus on a credit: settled like a credit (docs/campaigns.md)
	KindErasure    EntryKind = "erasure"  // an identity's pseudonym key destroyed: no effect on balances
)

// Entry is what settlement reads of one ledger entry.
type Entry struct {
	Kind         EntryKind
	VehicleID    string // credits and vehicle adjustments
	Account      string // debits and account adjustments
	Amount       int64  // points; adjustments may be negative
	ScoreID      string // a credit's score id; a bonus's id (bonus/<campaign>/<credit leaf hash>); rescore: the score id of the credit it corrects
	Day          string // the vehicle-day of a credit, bonus or rescore, YYYY-MM-DD
	Revision     int32  // rescore: the day's scoring revision
	DayPoints    int64  // rescore: the day's points after it
	RequestID    string // the DebitRequest that caused a debit or adjustment
	RedemptionID string
	Proof        Proof
	AppendedAt   time.Time

	// Transfers (kind 5): Account pays CounterAccount Amount.
	CounterAccount string
	TransferFlags  ledger.TransferFlags
	PendingID      string
	TimeoutMs      int64
	// VehiclePseudonym is the vehicle as the leaf names it, when settlement
	// opened it into VehicleID: the partner credits topic carries it, never
	// the vehicle id.
	VehiclePseudonym string
}

// CreditSettled tells partners that a vehicle-day credit reached an owner
// account, with the proof that the ledger includes it.
type CreditSettled struct {
	Account   string
	VehicleID string
	Day       string
	ScoreID   string
	Points    int64     // a credit's points, or a rescore's signed delta
	Kind      EntryKind `json:",omitempty"` // "" or KindCredit: a credit; KindRescore: a late-data correction of ScoreID; KindBonus: a campaign's bonus
	Revision  int32     `json:",omitempty"`
	DayPoints int64     `json:",omitempty"` // rescore: the day's points after it
	Proof     Proof
	SettledAt time.Time
}

// PartnerAck is a partner's acknowledgement of an order.
type PartnerAck struct {
	RedemptionID string
	Partner      string
	Status       avro.AckStatus
	Reference    string
	Reason       string
	AckedAt      time.Time
}

// PartnerTotal is one partner's redemptions of a day: a line of the day's
// statement (its record: Avro).
type PartnerTotal struct {
	Partner     string
	Redemptions int64
	Points      int64
}
