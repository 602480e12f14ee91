package ledger

import (
	"fmt"
	"slices"

	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ledger/merkle"
)

// This file maps the ledger's types to and from the Avro records they
// travel as: the daily scores it credits, the requests it debits and
// adjusts, and the blocks it publishes.

// CreditFromScore makes the credit entry of a daily score: its id,
// vehicle, date, tz, window end, rules version, points, score, events hash
// and flags (sorted, duplicates dropped).
func CreditFromScore(s *avro.DailyScore) (Entry, error) {
	e := Entry{
		Kind: KindCredit, ID: s.ID, VehicleID: s.VehicleID, Date: s.Date, TZ: s.TZ, WindowEndMs: s.WindowEnd.UnixMilli(),
		ConfigVersion: s.ConfigVersion, Points: s.Points, Score: s.Score, EventsHash: s.EventsHash,
	}
	if e.ID != e.VehicleID+"/"+e.Date {
		return e, fmt.Errorf("daily score id %q is not <vehicle>/<date> (%q, %q): %w", e.ID, e.VehicleID, e.Date, ErrEntry)
	}
	if len(s.Flags) > 0 {
		e.Flags = slices.Compact(slices.Sorted(slices.Values(s.Flags)))
	}
	return e, e.Validate()
}

// EntryFromRequest makes the debit or adjustment entry of a ledger request.
func EntryFromRequest(r *avro.DebitRequest) (Entry, error) {
	e := Entry{
		ID: r.RequestID, Account: r.Account, VehicleID: r.VehicleID, Amount: r.Amount, Reason: r.Reason,
		Partner: r.Partner, Item: r.Item, RedemptionID: r.RedemptionID, RequestedAtMs: r.RequestedAt.UnixMilli(),
	}
	switch r.Kind {
	case avro.RequestKindDebit:
		e.Kind = KindDebit
		if r.Ref != "" {
			return e, fmt.Errorf("debit request %q: ref is for adjustments: %w", e.ID, ErrEntry)
		}
	case avro.RequestKindAdjustment:
		e.Kind = KindAdjustment
		e.Ref = r.Ref
		if e.Partner != "" || e.Item != "" || e.RedemptionID != "" {
			return e, fmt.Errorf("adjustment request %q: partner/item/redemption are for debits: %w", e.ID, ErrEntry)
		}
	case avro.RequestKindErasure:
		e.Kind = KindErasure
		if e.Partner != "" || e.Item != "" || e.RedemptionID != "" || r.Ref != "" {
			return e, fmt.Errorf("erasure request %q: partner/item/redemption/ref are not for erasures: %w", e.ID, ErrEntry)
		}
	default:
		return e, fmt.Errorf("request kind %q: %w", r.Kind, ErrEntry)
	}
	return e, e.Validate()
}

// Avro is the block as the blocks topic carries it. It shares the block's
// memory.
func (b *Block) Avro() *avro.LedgerBlock {
	h := &b.Header
	clock := avro.BlockClockEvent
	if h.Clock == ClockWall {
		clock = avro.BlockClockWall
	}
	return &avro.LedgerBlock{
		Height: int64(h.Height), PrevHash: h.PrevHash[:], TreeSize: int64(h.TreeSize), Root: h.Root[:],
		FirstIndex: int64(h.FirstIndex), LastIndex: int64(h.LastIndex), TimestampMs: h.TimestampMs,
		Clock: clock, Entries: b.Entries, Signature: b.Signature, Checkpoint: b.Checkpoint,
	}
}

// BlockFromAvro reads a block of the blocks topic. It checks the shape
// only; Book.Apply checks the contents.
func BlockFromAvro(r *avro.LedgerBlock) (Block, error) {
	var b Block
	if len(r.PrevHash) != merkle.HashSize || len(r.Root) != merkle.HashSize || r.Height < 0 || r.TreeSize < 0 || r.FirstIndex < 0 || r.LastIndex < 0 {
		return b, fmt.Errorf("block %d: bad hash length or negative index: %w", r.Height, ErrBlock)
	}
	switch r.Clock {
	case avro.BlockClockEvent:
		b.Header.Clock = ClockEvent
	case avro.BlockClockWall:
		b.Header.Clock = ClockWall
	default:
		return b, fmt.Errorf("block %d: clock %q: %w", r.Height, r.Clock, ErrBlock)
	}
	b.Header.Height, b.Header.TreeSize = uint64(r.Height), uint64(r.TreeSize)
	b.Header.FirstIndex, b.Header.LastIndex, b.Header.TimestampMs = uint64(r.FirstIndex), uint64(r.LastIndex), r.TimestampMs
	copy(b.Header.PrevHash[:], r.PrevHash)
	copy(b.Header.Root[:], r.Root)
	b.Entries, b.Signature, b.Checkpoint = r.Entries, r.Signature, r.Checkpoint
	return b, nil
}

// EntryFromTransfer makes the transfer entry (kind 5) of a transfer
// request; the request's not_before_ms is not part of the entry.
func EntryFromTransfer(r *avro.TransferRequest) (Entry, error) {
	e := Entry{
		Kind: KindTransfer, ID: r.RequestID, Account: r.DebitAccount, CounterAccount: r.CreditAccount,
		Amount: r.Amount, TransferFlags: TransferFlags(r.Flags), Ref: r.PendingID, TimeoutMs: r.TimeoutMs,
		RequestedAtMs: r.RequestedAt.UnixMilli(),
	}
	if r.Flags < 0 {
		return e, fmt.Errorf("transfer %q: negative flags: %w", e.ID, ErrEntry)
	}
	return e, e.Validate()
}
