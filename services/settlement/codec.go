package settlement

import (
	"errors"
	"fmt"
	"time"

	"github.com/minecart/minecart/schemas"
)

// Codec turns the settlement records into Avro and back through a Serde.
type Codec struct{ serde *schemas.Serde }

// NewCodec returns a Codec over serde.
func NewCodec(serde *schemas.Serde) Codec { return Codec{serde: serde} }

// Natives of goavro: nullable unions are nil or map[string]any{type: v}.
func optString(s string) any {
	if s == "" {
		return nil
	}
	return map[string]any{"string": s}
}

func optLong(p *int64) any {
	if p == nil {
		return nil
	}
	return map[string]any{"long": *p}
}

func fromOptString(v any) string {
	if m, ok := v.(map[string]any); ok {
		s, _ := m["string"].(string)
		return s
	}
	return ""
}

func fromOptLong(v any) *int64 {
	if m, ok := v.(map[string]any); ok {
		if n, ok := m["long"].(int64); ok {
			return &n
		}
	}
	return nil
}

// fields reads typed fields of a native record, remembering the first
// missing or mistyped one.
type fields struct {
	m   map[string]any
	err error
}

func get[T any](f *fields, name string) T {
	var zero T
	v, ok := f.m[name].(T)
	if !ok && f.err == nil {
		f.err = fmt.Errorf("%w: field %s: %T, want %T", ErrBadInput, name, f.m[name], zero)
	}
	return v
}

func (f *fields) str(name string) string     { return get[string](f, name) }
func (f *fields) i64(name string) int64      { return get[int64](f, name) }
func (f *fields) i32(name string) int32      { return get[int32](f, name) }
func (f *fields) boolean(name string) bool   { return get[bool](f, name) }
func (f *fields) bytes(name string) []byte   { return get[[]byte](f, name) }
func (f *fields) time(name string) time.Time { return get[time.Time](f, name).UTC() }

func proofNative(p Proof) map[string]any {
	path := make([]any, len(p.Path))
	for i, h := range p.Path {
		path[i] = h
	}
	return map[string]any{
		"entry_id": p.EntryID, "leaf_index": p.LeafIndex, "block_height": p.BlockHeight,
		"tree_size": p.TreeSize, "root": nz(p.Root), "leaf_hash": nz(p.LeafHash), "leaf": nz(p.Leaf),
		"audit_path": path, "checkpoint": p.Checkpoint,
	}
}

func nz(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func proofFrom(m map[string]any) (Proof, error) {
	f := fields{m: m}
	p := Proof{EntryID: f.str("entry_id"), LeafIndex: f.i64("leaf_index"), BlockHeight: f.i64("block_height"),
		TreeSize: f.i64("tree_size"), Root: f.bytes("root"), LeafHash: f.bytes("leaf_hash"), Leaf: f.bytes("leaf"),
		Checkpoint: f.str("checkpoint")}
	for _, h := range get[[]any](&f, "audit_path") {
		b, ok := h.([]byte)
		if !ok {
			return p, errors.New("audit path: not bytes")
		}
		p.Path = append(p.Path, b)
	}
	return p, f.err
}

// EncodeBinding encodes an account binding.
func (c Codec) EncodeBinding(x Binding) ([]byte, error) {
	return c.serde.Encode(schemas.AccountBinding, map[string]any{
		"vehicle_id": x.VehicleID, "owner": x.Owner, "updated_ms": x.UpdatedAt})
}

// DecodeBinding decodes an account binding.
func (c Codec) DecodeBinding(b []byte) (Binding, error) {
	m, err := c.serde.DecodeAs(schemas.AccountBinding, b)
	if err != nil {
		return Binding{}, err
	}
	f := fields{m: m}
	x := Binding{VehicleID: f.str("vehicle_id"), Owner: f.str("owner"), UpdatedAt: f.time("updated_ms")}
	return x, f.err
}

// EncodeItem encodes a catalog item.
func (c Codec) EncodeItem(it CatalogItem) ([]byte, error) {
	return c.serde.Encode(schemas.CatalogItem, map[string]any{
		"partner": it.Partner, "item_id": it.ItemID, "title": it.Title, "price_points": it.PricePoints,
		"stock": optLong(it.Stock), "active": it.Active, "updated_ms": it.UpdatedAt})
}

// DecodeItem decodes a catalog item.
func (c Codec) DecodeItem(b []byte) (CatalogItem, error) {
	m, err := c.serde.DecodeAs(schemas.CatalogItem, b)
	if err != nil {
		return CatalogItem{}, err
	}
	f := fields{m: m}
	it := CatalogItem{Partner: f.str("partner"), ItemID: f.str("item_id"), Title: f.str("title"),
		PricePoints: f.i64("price_points"), Stock: fromOptLong(m["stock"]), Active: f.boolean("active"),
		UpdatedAt: f.time("updated_ms")}
	return it, f.err
}

// EncodeRequest encodes a redemption request.
func (c Codec) EncodeRequest(r RedemptionRequest) ([]byte, error) {
	return c.serde.Encode(schemas.RedemptionRequest, map[string]any{
		"idempotency_key": r.IdempotencyKey, "owner": r.Owner, "partner": r.Partner, "item_id": r.ItemID,
		"quantity": r.Quantity, "max_points": optLong(r.MaxPoints), "requested_ms": r.RequestedAt})
}

// DecodeRequest decodes a redemption request.
func (c Codec) DecodeRequest(b []byte) (RedemptionRequest, error) {
	m, err := c.serde.DecodeAs(schemas.RedemptionRequest, b)
	if err != nil {
		return RedemptionRequest{}, err
	}
	f := fields{m: m}
	r := RedemptionRequest{IdempotencyKey: f.str("idempotency_key"), Owner: f.str("owner"), Partner: f.str("partner"),
		ItemID: f.str("item_id"), Quantity: f.i32("quantity"), MaxPoints: fromOptLong(m["max_points"]),
		RequestedAt: f.time("requested_ms")}
	return r, f.err
}

// EncodeRedemption encodes a redemption (status record or partner order).
func (c Codec) EncodeRedemption(r Redemption) ([]byte, error) {
	var debit any
	if r.Debit != nil {
		debit = map[string]any{"minecart.settlement.LedgerProof": proofNative(*r.Debit)}
	}
	return c.serde.Encode(schemas.Redemption, map[string]any{
		"redemption_id": r.ID, "idempotency_key": r.IdempotencyKey, "owner": r.Owner, "partner": r.Partner,
		"item_id": r.ItemID, "quantity": r.Quantity, "points": r.Points, "status": string(r.Status),
		"reason": optString(r.Reason), "seq": r.Seq, "requested_ms": r.RequestedAt, "updated_ms": r.UpdatedAt,
		"partner_ref": optString(r.PartnerRef), "debit": debit})
}

// DecodeRedemption decodes a redemption.
func (c Codec) DecodeRedemption(b []byte) (Redemption, error) {
	m, err := c.serde.DecodeAs(schemas.Redemption, b)
	if err != nil {
		return Redemption{}, err
	}
	f := fields{m: m}
	r := Redemption{ID: f.str("redemption_id"), IdempotencyKey: f.str("idempotency_key"), Owner: f.str("owner"),
		Partner: f.str("partner"), ItemID: f.str("item_id"), Quantity: f.i32("quantity"), Points: f.i64("points"),
		Status: Status(f.str("status")), Reason: fromOptString(m["reason"]), Seq: f.i64("seq"),
		RequestedAt: f.time("requested_ms"), UpdatedAt: f.time("updated_ms"), PartnerRef: fromOptString(m["partner_ref"])}
	if d, ok := m["debit"].(map[string]any); ok {
		pm, _ := d["minecart.settlement.LedgerProof"].(map[string]any)
		p, err := proofFrom(pm)
		if err != nil {
			return r, fmt.Errorf("redemption debit proof: %w", err)
		}
		r.Debit = &p
	}
	return r, f.err
}

// EncodeCredit encodes a settled credit.
func (c Codec) EncodeCredit(x CreditSettled) ([]byte, error) {
	return c.serde.Encode(schemas.CreditSettled, map[string]any{
		"account": x.Account, "vehicle_id": x.VehicleID, "day": x.Day, "score_id": x.ScoreID, "points": x.Points,
		"settled_ms": x.SettledAt, "proof": proofNative(x.Proof)})
}

// DecodeCredit decodes a settled credit.
func (c Codec) DecodeCredit(b []byte) (CreditSettled, error) {
	m, err := c.serde.DecodeAs(schemas.CreditSettled, b)
	if err != nil {
		return CreditSettled{}, err
	}
	f := fields{m: m}
	x := CreditSettled{Account: f.str("account"), VehicleID: f.str("vehicle_id"), Day: f.str("day"),
		ScoreID: f.str("score_id"), Points: f.i64("points"), SettledAt: f.time("settled_ms")}
	pm, _ := m["proof"].(map[string]any)
	if x.Proof, err = proofFrom(pm); err != nil {
		return x, fmt.Errorf("credit proof: %w", err)
	}
	return x, f.err
}

// EncodeAck encodes a partner ack.
func (c Codec) EncodeAck(a PartnerAck) ([]byte, error) {
	return c.serde.Encode(schemas.PartnerAck, map[string]any{
		"redemption_id": a.RedemptionID, "partner": a.Partner, "status": string(a.Status),
		"reference": optString(a.Reference), "reason": optString(a.Reason), "acked_ms": a.AckedAt})
}

// DecodeAck decodes a partner ack.
func (c Codec) DecodeAck(b []byte) (PartnerAck, error) {
	m, err := c.serde.DecodeAs(schemas.PartnerAck, b)
	if err != nil {
		return PartnerAck{}, err
	}
	f := fields{m: m}
	a := PartnerAck{RedemptionID: f.str("redemption_id"), Partner: f.str("partner"), Status: AckStatus(f.str("status")),
		Reference: fromOptString(m["reference"]), Reason: fromOptString(m["reason"]), AckedAt: f.time("acked_ms")}
	return a, f.err
}

// EncodeStatement encodes a daily statement.
func (c Codec) EncodeStatement(s Statement) ([]byte, error) {
	ps := make([]any, len(s.Partners))
	for i, p := range s.Partners {
		ps[i] = map[string]any{"partner": p.Partner, "redemptions": p.Redemptions, "points": p.Points}
	}
	return c.serde.Encode(schemas.Statement, map[string]any{
		"day": s.Day, "minted": s.Minted, "redeemed": s.Redeemed, "outstanding": s.Outstanding,
		"reserved": s.Reserved, "balance_sum": s.BalanceSum, "expected": s.Expected, "invariant_ok": s.InvariantOK,
		"accounts": s.Accounts, "partners": ps, "generated_ms": s.GeneratedAt})
}

// DecodeStatement decodes a daily statement.
func (c Codec) DecodeStatement(b []byte) (Statement, error) {
	m, err := c.serde.DecodeAs(schemas.Statement, b)
	if err != nil {
		return Statement{}, err
	}
	f := fields{m: m}
	s := Statement{Day: f.str("day"), Minted: f.i64("minted"), Redeemed: f.i64("redeemed"),
		Outstanding: f.i64("outstanding"), Reserved: f.i64("reserved"), BalanceSum: f.i64("balance_sum"),
		Expected: f.i64("expected"), InvariantOK: f.boolean("invariant_ok"), Accounts: f.i64("accounts"),
		GeneratedAt: f.time("generated_ms")}
	for _, p := range get[[]any](&f, "partners") {
		pm, _ := p.(map[string]any)
		pf := fields{m: pm}
		s.Partners = append(s.Partners, PartnerTotal{Partner: pf.str("partner"), Redemptions: pf.i64("redemptions"), Points: pf.i64("points")})
		if pf.err != nil && f.err == nil {
			f.err = pf.err
		}
	}
	return s, f.err
}
