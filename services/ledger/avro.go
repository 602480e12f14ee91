package ledger

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/minecart/minecart/services/ledger/merkle"
)

// This file maps the ledger's types to and from goavro natives of the
// schemas minecart.ledger.Block, minecart.ledger.Entry,
// minecart.ledger.DebitRequest and minecart.scoring.DailyScore / Watermark.

// errField marks a native record with a missing or mistyped field.
var errField = errors.New("avro field")

func str(m map[string]any, k string) (string, error) {
	v, ok := m[k].(string)
	if !ok {
		return "", fmt.Errorf("%s: %T: %w", k, m[k], errField)
	}
	return v, nil
}

func optStr(m map[string]any, k string) (string, error) {
	switch v := m[k].(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case map[string]any:
		if s, ok := v["string"].(string); ok {
			return s, nil
		}
	}
	return "", fmt.Errorf("%s: %T: %w", k, m[k], errField)
}

func i64(m map[string]any, k string) (int64, error) {
	switch v := m[k].(type) {
	case int64:
		return v, nil
	case int32:
		return int64(v), nil
	case int:
		return int64(v), nil
	}
	return 0, fmt.Errorf("%s: %T: %w", k, m[k], errField)
}

func millis(m map[string]any, k string) (int64, error) {
	switch v := m[k].(type) {
	case time.Time:
		return v.UnixMilli(), nil
	case int64:
		return v, nil
	}
	return 0, fmt.Errorf("%s: %T: %w", k, m[k], errField)
}

func f64(m map[string]any, k string) (float64, error) {
	v, ok := m[k].(float64)
	if !ok {
		return 0, fmt.Errorf("%s: %T: %w", k, m[k], errField)
	}
	return v, nil
}

func byts(m map[string]any, k string) ([]byte, error) {
	v, ok := m[k].([]byte)
	if !ok {
		return nil, fmt.Errorf("%s: %T: %w", k, m[k], errField)
	}
	return v, nil
}

func strs(m map[string]any, k string) ([]string, error) {
	arr, ok := m[k].([]any)
	if !ok && m[k] != nil {
		return nil, fmt.Errorf("%s: %T: %w", k, m[k], errField)
	}
	out := make([]string, 0, len(arr))
	for _, a := range arr {
		s, ok := a.(string)
		if !ok {
			return nil, fmt.Errorf("%s item: %T: %w", k, a, errField)
		}
		out = append(out, s)
	}
	return out, nil
}

// firstErr returns the first non-nil error.
func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// CreditFromScore makes the credit entry of a minecart.scoring.DailyScore
// native: its id, vehicle, date, tz, window end, rules version, points,
// score, events hash and flags (sorted, duplicates dropped).
func CreditFromScore(m map[string]any) (Entry, error) {
	e := Entry{Kind: KindCredit}
	var errs [10]error
	e.ID, errs[0] = str(m, "id")
	e.VehicleID, errs[1] = str(m, "vehicle_id")
	e.Date, errs[2] = str(m, "date")
	e.TZ, errs[3] = str(m, "tz")
	e.WindowEndMs, errs[4] = millis(m, "window_end")
	e.ConfigVersion, errs[5] = str(m, "config_version")
	e.Points, errs[6] = i64(m, "points")
	e.Score, errs[7] = f64(m, "score")
	e.EventsHash, errs[8] = byts(m, "events_hash")
	e.Flags, errs[9] = strs(m, "flags")
	if err := firstErr(errs[:]...); err != nil {
		return e, fmt.Errorf("daily score: %w", err)
	}
	if e.ID != e.VehicleID+"/"+e.Date {
		return e, fmt.Errorf("daily score id %q is not <vehicle>/<date> (%q, %q): %w", e.ID, e.VehicleID, e.Date, ErrEntry)
	}
	slices.Sort(e.Flags)
	e.Flags = slices.Compact(e.Flags)
	if len(e.Flags) == 0 {
		e.Flags = nil
	}
	return e, e.Validate()
}

// Watermark is a scoring task's closed-through mark.
type Watermark struct {
	Task, Tasks     int32
	ClosedThroughMs int64
}

// WatermarkFromNative reads a minecart.scoring.Watermark native.
func WatermarkFromNative(m map[string]any) (Watermark, error) {
	task, err1 := i64(m, "task")
	tasks, err2 := i64(m, "tasks")
	ms, err3 := millis(m, "closed_through_ms")
	if err := firstErr(err1, err2, err3); err != nil {
		return Watermark{}, fmt.Errorf("watermark: %w", err)
	}
	if tasks < 1 || task < 0 || task >= tasks || tasks > 1<<16 {
		return Watermark{}, fmt.Errorf("watermark: task %d of %d: %w", task, tasks, errField)
	}
	return Watermark{Task: int32(task), Tasks: int32(tasks), ClosedThroughMs: ms}, nil
}

// EntryFromRequest makes the debit or adjustment entry of a
// minecart.ledger.DebitRequest native.
func EntryFromRequest(m map[string]any) (Entry, error) {
	var e Entry
	var errs [10]error
	var kind string
	e.ID, errs[0] = str(m, "request_id")
	kind, errs[1] = str(m, "kind")
	e.Account, errs[2] = str(m, "account")
	e.VehicleID, errs[3] = optStr(m, "vehicle_id")
	e.Amount, errs[4] = i64(m, "amount")
	e.Reason, errs[5] = str(m, "reason")
	e.Partner, errs[6] = optStr(m, "partner")
	e.Item, errs[7] = optStr(m, "item")
	e.RedemptionID, errs[8] = optStr(m, "redemption_id")
	e.RequestedAtMs, errs[9] = millis(m, "requested_at")
	ref, err := optStr(m, "ref")
	if err := firstErr(append(errs[:], err)...); err != nil {
		return e, fmt.Errorf("debit request: %w", err)
	}
	switch kind {
	case "debit":
		e.Kind = KindDebit
		if ref != "" {
			return e, fmt.Errorf("debit request %q: ref is for adjustments: %w", e.ID, ErrEntry)
		}
	case "adjustment":
		e.Kind = KindAdjustment
		e.Ref = ref
		if e.Partner != "" || e.Item != "" || e.RedemptionID != "" {
			return e, fmt.Errorf("adjustment request %q: partner/item/redemption are for debits: %w", e.ID, ErrEntry)
		}
	default:
		return e, fmt.Errorf("request kind %q: %w", kind, ErrEntry)
	}
	return e, e.Validate()
}

// RequestNative is the minecart.ledger.DebitRequest native of a debit or
// adjustment entry (for writers: settlement, the CLI, tests).
func RequestNative(e Entry) map[string]any {
	opt := func(s string) any {
		if s == "" {
			return nil
		}
		return map[string]any{"string": s}
	}
	return map[string]any{
		"request_id": e.ID, "kind": e.Kind.String(), "account": e.Account, "vehicle_id": opt(e.VehicleID),
		"amount": e.Amount, "reason": e.Reason, "partner": opt(e.Partner), "item": opt(e.Item),
		"redemption_id": opt(e.RedemptionID), "ref": opt(e.Ref), "requested_at": time.UnixMilli(e.RequestedAtMs).UTC(),
	}
}

// BlockNative is the minecart.ledger.Block native of a block.
func BlockNative(b *Block) map[string]any {
	entries := make([]any, len(b.Entries))
	for i, e := range b.Entries {
		entries[i] = e
	}
	clock := "event"
	if b.Header.Clock == ClockWall {
		clock = "wall"
	}
	h := &b.Header
	return map[string]any{
		"height": int64(h.Height), "prev_hash": h.PrevHash[:], "tree_size": int64(h.TreeSize), "root": h.Root[:],
		"first_index": int64(h.FirstIndex), "last_index": int64(h.LastIndex), "timestamp_ms": h.TimestampMs,
		"clock": clock, "entries": entries, "signature": b.Signature, "checkpoint": b.Checkpoint,
	}
}

// BlockFromNative reads a minecart.ledger.Block native. It checks the
// shape only; Book.Apply checks the contents.
func BlockFromNative(m map[string]any) (Block, error) {
	var b Block
	var errs [11]error
	var height, size, first, last int64
	var prev, root []byte
	var clock string
	height, errs[0] = i64(m, "height")
	prev, errs[1] = byts(m, "prev_hash")
	size, errs[2] = i64(m, "tree_size")
	root, errs[3] = byts(m, "root")
	first, errs[4] = i64(m, "first_index")
	last, errs[5] = i64(m, "last_index")
	b.Header.TimestampMs, errs[6] = i64(m, "timestamp_ms")
	clock, errs[7] = str(m, "clock")
	b.Signature, errs[8] = byts(m, "signature")
	b.Checkpoint, errs[9] = str(m, "checkpoint")
	arr, ok := m["entries"].([]any)
	if !ok {
		errs[10] = fmt.Errorf("entries: %T: %w", m["entries"], errField)
	}
	if err := firstErr(errs[:]...); err != nil {
		return b, fmt.Errorf("block: %w", err)
	}
	if len(prev) != merkle.HashSize || len(root) != merkle.HashSize || height < 0 || size < 0 || first < 0 || last < 0 {
		return b, fmt.Errorf("block %d: bad hash length or negative index: %w", height, ErrBlock)
	}
	switch clock {
	case "event":
		b.Header.Clock = ClockEvent
	case "wall":
		b.Header.Clock = ClockWall
	default:
		return b, fmt.Errorf("block %d: clock %q: %w", height, clock, ErrBlock)
	}
	b.Header.Height, b.Header.TreeSize, b.Header.FirstIndex, b.Header.LastIndex = uint64(height), uint64(size), uint64(first), uint64(last)
	copy(b.Header.PrevHash[:], prev)
	copy(b.Header.Root[:], root)
	b.Entries = make([][]byte, len(arr))
	for i, a := range arr {
		if b.Entries[i], ok = a.([]byte); !ok {
			return b, fmt.Errorf("block %d entry %d: %T: %w", height, i, a, errField)
		}
	}
	return b, nil
}
