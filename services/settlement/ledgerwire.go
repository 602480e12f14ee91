package settlement

import (
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/minecart/minecart/schemas"
)

// DecodeEntry reads a minecart.ledger.Entry record of the entries topic.
func (c Codec) DecodeEntry(b []byte) (Entry, error) {
	m, err := c.serde.DecodeAs(schemas.LedgerEntry, b)
	if err != nil {
		return Entry{}, err
	}
	f := fields{m: m}
	leaf := f.bytes("entry")
	lh := sha256.Sum256(append([]byte{0}, leaf...))
	e := Entry{
		Kind:      EntryKind(f.str("kind")),
		VehicleID: f.str("vehicle_id"),
		Account:   f.str("account"),
		Day:       f.str("date"),
		Proof: Proof{
			EntryID: f.str("id"), LeafIndex: f.i64("leaf_index"), BlockHeight: f.i64("block_height"),
			TreeSize: f.i64("tree_size"), Root: f.bytes("root"), LeafHash: lh[:], Leaf: leaf,
			Checkpoint: f.str("checkpoint"),
		},
		RedemptionID: f.str("redemption_id"),
		AppendedAt:   time.UnixMilli(f.i64("block_timestamp_ms")).UTC(),
	}
	for _, h := range get[[]any](&f, "proof") {
		hb, ok := h.([]byte)
		if !ok {
			return e, fmt.Errorf("ledger entry proof: %T, want bytes", h)
		}
		e.Proof.Path = append(e.Proof.Path, hb)
	}
	delta := f.i64("delta")
	switch e.Kind {
	case KindCredit:
		e.ScoreID, e.Amount = e.Proof.EntryID, delta
	case KindDebit:
		e.RequestID, e.Amount = e.Proof.EntryID, -delta
	case KindAdjustment:
		e.RequestID, e.Amount = e.Proof.EntryID, delta
	}
	return e, f.err
}

// EncodeDebitRequest writes a minecart.ledger.DebitRequest.
func (c Codec) EncodeDebitRequest(d DebitRequest) ([]byte, error) {
	return c.serde.Encode(schemas.DebitRequest, map[string]any{
		"request_id": d.RequestID, "kind": string(d.Kind), "account": d.Account, "vehicle_id": nil,
		"amount": d.Amount, "reason": d.Reason, "partner": optString(d.Partner), "item": optString(d.ItemID),
		"redemption_id": optString(d.RedemptionID), "ref": nil, "requested_at": d.RequestedAt,
	})
}

// DecodeDebitRequest reads a minecart.ledger.DebitRequest (tests and tools).
func (c Codec) DecodeDebitRequest(b []byte) (DebitRequest, error) {
	m, err := c.serde.DecodeAs(schemas.DebitRequest, b)
	if err != nil {
		return DebitRequest{}, err
	}
	f := fields{m: m}
	d := DebitRequest{RequestID: f.str("request_id"), Kind: EntryKind(f.str("kind")), Account: f.str("account"),
		Amount: f.i64("amount"), Reason: f.str("reason"), Partner: fromOptString(m["partner"]),
		ItemID: fromOptString(m["item"]), RedemptionID: fromOptString(m["redemption_id"]),
		RequestedAt: f.time("requested_at")}
	return d, f.err
}
