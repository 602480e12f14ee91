package settlement

import (
	"fmt"
	"strings"
	"time"

	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/merkle"
	"github.com/minecart/minecart/services/pseudonym"
)

// The records settlement reads and writes are the typed codecs of
// schemas/avro, framed by a schemas.Serde. Requests, debit requests and
// statements are used as they are; the records whose contents are also
// settlement's state (bindings, items, acks, redemptions, settled credits,
// a statement's partner totals) have their own types here, because the
// state's JSON (the changelog) keeps their Go field names: these functions
// convert between the two.

// BindingFrom is the binding an account binding record carries.
func BindingFrom(r *avro.AccountBinding) Binding {
	return Binding{VehicleID: r.VehicleID, Owner: r.Owner, UpdatedAt: r.UpdatedMs}
}

// ItemFrom is the catalog item a catalog record carries.
func ItemFrom(r *avro.CatalogItem) CatalogItem {
	return CatalogItem{Partner: r.Partner, ItemID: r.ItemID, Title: r.Title, PricePoints: r.PricePoints,
		Stock: r.Stock, Active: r.Active, UpdatedAt: r.UpdatedMs}
}

// AckFrom is the partner ack an ack record carries.
func AckFrom(r *avro.PartnerAck) PartnerAck {
	return PartnerAck{RedemptionID: r.RedemptionID, Partner: r.Partner, Status: r.Status,
		Reference: r.Reference, Reason: r.Reason, AckedAt: r.AckedMs}
}

// EntryFrom is what settlement reads of a record of the ledger's entries
// topic: the amount as a positive number of points for credits and debits
// (the signed amount of an adjustment), and the proof with the leaf hash.
func EntryFrom(r *avro.LedgerEntry) Entry {
	lh := merkle.HashLeaf(r.Entry)
	e := Entry{
		Kind:      EntryKind(r.Kind),
		VehicleID: r.VehicleID,
		Account:   r.Account,
		Day:       r.Date,
		Proof: Proof{EntryID: r.ID, LeafIndex: r.LeafIndex, BlockHeight: r.BlockHeight, TreeSize: r.TreeSize,
			Root: r.Root, LeafHash: lh[:], Leaf: r.Entry, Path: r.Proof, Checkpoint: r.Checkpoint},
		RedemptionID: r.RedemptionID,
		AppendedAt:   time.UnixMilli(r.BlockTimestampMs).UTC(),
	}
	switch e.Kind {
	case KindCredit, KindBonus:
		e.ScoreID, e.Amount = r.ID, r.Delta
	case KindDebit:
		e.RequestID, e.Amount = r.ID, -r.Delta
	case KindAdjustment:
		e.RequestID, e.Amount = r.ID, r.Delta
	case KindRescore:
		e.RequestID, e.ScoreID, e.Amount, e.Revision, e.DayPoints = r.ID, r.Ref, r.Delta, r.Revision, r.Points
	case KindTransfer:
		// The amount, flags, pending id and timeout are in the signed
		// bytes; the accounts are the record's (docs/economy.md).
		e.RequestID, e.CounterAccount = r.ID, r.CounterAccount
		if le, err := ledger.DecodeEntry(r.Entry); err == nil && le.Kind == ledger.KindTransfer {
			e.Amount, e.TransferFlags, e.PendingID, e.TimeoutMs = le.Amount, le.TransferFlags, le.Ref, le.TimeoutMs
		} else {
			e.Kind = "bad_transfer" // alerted as an unknown kind, applied to nothing
		}
	}
	return e
}

// Avro is the proof as a record field.
func (p Proof) Avro() avro.LedgerProof {
	return avro.LedgerProof{EntryID: p.EntryID, LeafIndex: p.LeafIndex, BlockHeight: p.BlockHeight, TreeSize: p.TreeSize,
		Root: p.Root, LeafHash: p.LeafHash, Leaf: p.Leaf, AuditPath: p.Path, Checkpoint: p.Checkpoint}
}

// Avro is the redemption's record (status topic, partner orders).
func (r Redemption) Avro() *avro.Redemption {
	out := &avro.Redemption{RedemptionID: r.ID, IdempotencyKey: r.IdempotencyKey, Owner: r.Owner, Partner: r.Partner,
		ItemID: r.ItemID, Quantity: r.Quantity, Points: r.Points, Status: avro.RedemptionStatus(r.Status),
		Reason: r.Reason, Seq: r.Seq, RequestedMs: r.RequestedAt, UpdatedMs: r.UpdatedAt, PartnerRef: r.PartnerRef, Customer: r.Customer}
	if r.Debit != nil {
		p := r.Debit.Avro()
		out.Debit = &p
	}
	return out
}

// Avro is the partner's line of a statement record.
func (p PartnerTotal) Avro() avro.PartnerTotal {
	return avro.PartnerTotal{Partner: p.Partner, Redemptions: p.Redemptions, Points: p.Points}
}

// Avro is the settled credit's record.
func (c CreditSettled) Avro() *avro.CreditSettled {
	r := &avro.CreditSettled{Account: c.Account, VehicleID: c.VehicleID, Day: c.Day, ScoreID: c.ScoreID,
		Points: c.Points, SettledMs: c.SettledAt, Proof: c.Proof.Avro(), Kind: string(KindCredit), DayPoints: c.Points}
	switch c.Kind {
	case KindRescore:
		r.Kind, r.Revision, r.DayPoints = string(KindRescore), c.Revision, c.DayPoints
	case KindBonus:
		r.Kind, r.DayPoints = string(KindBonus), 0
	}
	return r
}

// BonusPartner is the partner and campaign of a bonus id
// bonus/<partner>/<name>/<credit leaf hash>; ok is false for another id.
func BonusPartner(id string) (partner, campaign string, ok bool) {
	rest, found := strings.CutPrefix(id, "bonus/")
	parts := strings.Split(rest, "/")
	if !found || len(parts) != 3 || parts[0] == "" || parts[1] == "" || ValidID(parts[0]) != nil {
		return "", "", false
	}
	return parts[0], parts[0] + "/" + parts[1], true
}

// The partner views (docs/partners.md, "What a partner gets: nothing
// personal"): partners read the credits, campaigns and order topics, so the
// records written there name nobody in clear. They carry exactly the
// identities the proof's leaf carries (pseudonyms, docs/ledger.md
// "Pseudonymous leaves"), never the owner account or vehicle id settlement
// works with.

// leafIdentities decodes the proof's leaf: its vehicle and account as the
// ledger wrote them. Both are "" if the proof has no leaf or the leaf does
// not decode.
func leafIdentities(p Proof) (vehicle, account string) {
	if len(p.Leaf) == 0 {
		return "", ""
	}
	e, err := ledger.DecodeEntry(p.Leaf)
	if err != nil {
		return "", ""
	}
	return e.VehicleID, e.Account
}

// PartnerAvro is the settled credit's record on a partner-readable topic
// (minecart.rewards.credits, minecart.partner.<partner>.campaigns):
// account is empty (which owner a credit went to is none of a partner's
// business: no credit leaf names an account) and vehicle_id is the
// vehicle as the leaf names it (its pseudonym), or "" when there is no
// leaf and the record's vehicle is not a pseudonym. PartnerKey is its
// Kafka key on the credits topic.
func (c CreditSettled) PartnerAvro() *avro.CreditSettled {
	r := c.Avro()
	r.Account = ""
	if v, _ := leafIdentities(c.Proof); v != "" {
		r.VehicleID = v
	} else if !pseudonym.Is(r.VehicleID) {
		r.VehicleID = ""
	}
	return r
}

// PartnerKey is the credit's Kafka key on minecart.rewards.credits: the
// vehicle's pseudonym (PartnerAvro's vehicle_id), never the owner.
func (c CreditSettled) PartnerKey() string { return c.PartnerAvro().VehicleID }

// PartnerAvro is the order's record on minecart.partner.<partner>.redemptions:
// owner is the account as the order's hold (or debit) leaf names it (the
// account's pseudonym: the partner matches the two), and the idempotency
// key, which only binds the clear owner to the redemption id, is empty.
// customer stays: the owner gave it for this partner.
func (r Redemption) PartnerAvro() *avro.Redemption {
	out := r.Avro()
	out.IdempotencyKey = ""
	out.Owner = ""
	if r.Debit != nil {
		if _, a := leafIdentities(*r.Debit); a != "" {
			out.Owner = a
		}
	}
	return out
}

// MaxCustomer is the longest customer id a redemption may carry, in bytes.
const MaxCustomer = 128

// ValidCustomer checks a redemption's customer id (the owner's id at the
// partner): empty, or at most MaxCustomer bytes of printable ASCII (0x20
// to 0x7e).
func ValidCustomer(s string) error {
	if len(s) > MaxCustomer {
		return fmt.Errorf("customer id of %d bytes, at most %d", len(s), MaxCustomer)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return fmt.Errorf("customer id byte %d is 0x%02x: printable ASCII only", i, s[i])
		}
	}
	return nil
}
