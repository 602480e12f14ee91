package settlement

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"time"

	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ledger"
)

// Redemptions as pending transfers (docs/economy.md, "Redemptions"). A
// redemption reserves its points and asks the ledger for a pending
// transfer (a hold) from the owner to the partner's account, with a
// timeout in ledger time (Policy.FulfilTimeout). The hold's entry is the
// order's proof. The partner's FULFILLED ack posts the hold (the points
// move to partner:<id>), its FAILED ack voids it (the points come back),
// and a hold nobody resolved expires in ledger time (the points come
// back; an ack after that changes nothing). Every resolution is a ledger
// entry settlement decides once, in the same Kafka transaction as its
// cause, with an id derived from the hold's: a replay after a restart
// finds it decided.

// ReasonPartnerTimeout rejects a redemption whose hold expired in ledger
// time before the partner's ack.
const ReasonPartnerTimeout = "partner_timeout"

// callerSettlement is the Caller of the transfers settlement decides for
// redemptions (no API caller can have it).
const callerSettlement = "settlement:redemption"

// RedemptionHoldID is the transfer id of a redemption's hold: the first 16
// bytes, hex, of SHA-256("minecart/redemption-hold" 0x00 redemption_id 0x00
// partner 0x00 item_id 0x00 quantity (4 bytes, big-endian) points (8 bytes,
// big-endian)). A partner recomputes it from the order, so the hold entry
// (which has no item field) binds the item, quantity and points.
func RedemptionHoldID(redemptionID, partner, item string, quantity int32, points int64) string {
	h := sha256.New()
	h.Write([]byte("minecart/redemption-hold"))
	for _, s := range []string{redemptionID, partner, item} {
		h.Write([]byte{0})
		h.Write([]byte(s))
	}
	var n [12]byte
	binary.BigEndian.PutUint32(n[:4], uint32(quantity))
	binary.BigEndian.PutUint64(n[4:], uint64(points))
	h.Write(n[:])
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// RedemptionResolveID is the transfer id of the post (post true) or void
// of hold: the first 16 bytes, hex, of SHA-256("minecart/redemption-post"
// or "minecart/redemption-void", 0x00, hold).
func RedemptionResolveID(hold string, post bool) string {
	tag := "minecart/redemption-void"
	if post {
		tag = "minecart/redemption-post"
	}
	s := sha256.Sum256([]byte(tag + "\x00" + hold))
	return hex.EncodeToString(s[:16])
}

// hold decides the hold of a new redemption r (its points already
// reserved): "" or the reason to reject r.
func (t *Tx) hold(r *Redemption) string {
	id := RedemptionHoldID(r.ID, r.Partner, r.ItemID, r.Quantity, r.Points)
	if _, taken := t.transfer(id); taken {
		return ReasonInvalid // a client transfer took the id: never two effects under one id
	}
	timeout := t.b.policy.FulfilTimeout.Milliseconds()
	req := avro.TransferRequest{RequestID: id, DebitAccount: r.Owner, CreditAccount: PartnerAccount(r.Partner),
		Amount: r.Points, Flags: int64(ledger.TransferPending), TimeoutMs: timeout, RequestedAt: r.RequestedAt}
	if validAccount(r.Owner) != nil {
		return ReasonInvalid
	}
	if _, err := ledger.EntryFromTransfer(&req); err != nil {
		return ReasonInvalid
	}
	spec := TransferSpec{ID: id, Debit: req.DebitAccount, Credit: req.CreditAccount, Amount: r.Points,
		Flags: ledger.TransferPending, TimeoutMs: timeout}
	t.putTransfer(Transfer{ID: id, Debit: spec.Debit, Credit: spec.Credit, Amount: r.Points, Flags: spec.Flags,
		TimeoutMs: timeout, Digest: spec.Digest("SETTLEMENT", r.ID), Caller: callerSettlement, Status: TransferAccepted,
		RequestedAt: r.RequestedAt, Pending: PendingOpen, Redemption: r.ID})
	t.newOpen = append(t.newOpen, id)
	t.Transfers = append(t.Transfers, req)
	r.Hold = id
	return ""
}

// holdEntered handles the ledger entry of a redemption's hold x: the
// redemption is confirmed and the order goes to the partner with the
// entry's proof; a hold settlement gave up on (ledger timeout) is voided.
func (t *Tx) holdEntered(x Transfer, proof Proof, at time.Time) {
	r, ok := t.redemption(x.Redemption)
	if !ok || r.Status != StatusPending {
		t.alert("late_hold", "hold %s of redemption %s entered the ledger in status %q: voided", x.ID, x.Redemption, r.Status)
		t.resolveHold(x, false, true, at)
		return
	}
	early := r.EarlyAck
	r.Status, r.Reason, r.UpdatedAt, r.Debit, r.EarlyAck = StatusConfirmed, "", at, &proof, nil
	t.putRedemption(r)
	t.Orders = append(t.Orders, r)
	if early != nil {
		if err := t.ack(r, *early); err != nil {
			t.alert("bad_ack", "early ack of redemption %s: %v", r.ID, err)
		}
	}
}

// resolveHold decides the post or void of an open hold and requests its
// entry. released: settlement already released the reservation (the void
// entry must not release it again).
func (t *Tx) resolveHold(p Transfer, post, released bool, at time.Time) {
	id := RedemptionResolveID(p.ID, post)
	f := ledger.TransferVoidPending
	p.Pending = PendingVoided
	if post {
		f, p.Pending = ledger.TransferPostPending, PendingPosted
	}
	p.ResolvedBy = id
	t.putTransfer(p)
	spec := TransferSpec{ID: id, Amount: p.Amount, Flags: f, PendingID: p.ID}
	t.putTransfer(Transfer{ID: id, Debit: p.Debit, Credit: p.Credit, Amount: p.Amount, Flags: f, PendingID: p.ID,
		Digest: spec.Digest("SETTLEMENT", p.Redemption), Caller: callerSettlement, Status: TransferAccepted,
		RequestedAt: at, Redemption: p.Redemption, Released: released})
	t.Transfers = append(t.Transfers, avro.TransferRequest{RequestID: id, DebitAccount: p.Debit, CreditAccount: p.Credit,
		Amount: p.Amount, Flags: int64(f), PendingID: p.ID, RequestedAt: at})
}

// ackHold applies a partner's ack to a confirmed redemption with a hold:
// FULFILLED posts it, FAILED voids it. A hold whose deadline ledger time
// has passed expires instead and the ack is refused.
func (t *Tx) ackHold(r Redemption, a PartnerAck) error {
	p, ok := t.transfer(r.Hold)
	if !ok || p.Pending != PendingOpen {
		t.alert("late_ack", "ack of redemption %s: its hold is %q", r.ID, p.Pending)
		return nil
	}
	if p.ExpiresAtMs > 0 && p.ExpiresAtMs <= t.getMeta().LedgerMs {
		t.expire(p)
		t.alert("late_ack", "ack of redemption %s after its hold expired (ledger time %d >= %d): refused", r.ID, t.getMeta().LedgerMs, p.ExpiresAtMs)
		return nil
	}
	switch a.Status {
	case avro.AckStatusFulfilled:
		r.Status = StatusFulfilled
		t.resolveHold(p, true, false, a.AckedAt)
	case avro.AckStatusFailed:
		r.Status, r.Reason = StatusFailed, a.Reason
		t.resolveHold(p, false, false, a.AckedAt)
		t.unsell(r)
	default:
		return bad("ack status %q", a.Status)
	}
	r.PartnerRef, r.UpdatedAt, r.EarlyAck = a.Reference, a.AckedAt, nil
	t.putRedemption(r)
	return nil
}

// holdExpired rejects the redemption of an expiring hold.
func (t *Tx) holdExpired(p Transfer) {
	r, ok := t.redemption(p.Redemption)
	if !ok || r.Status.Terminal() {
		return
	}
	r.Status, r.Reason, r.UpdatedAt = StatusRejected, ReasonPartnerTimeout, time.UnixMilli(p.ExpiresAtMs).UTC()
	t.putRedemption(r)
	t.unsell(r)
}

// unsell gives a redemption's units back to its item's stock.
func (t *Tx) unsell(r Redemption) {
	if it, ok := t.item(ItemKey(r.Partner, r.ItemID)); ok {
		it.Sold = max(it.Sold-int64(r.Quantity), 0)
		t.items[it.Item.Key()] = &it
	}
}

// holdPosted counts a posted redemption hold in its day's partner line
// (the points moved to the partner's account: not burned, so not in the
// day's redeemed).
func (t *Tx) holdPosted(p Transfer, at time.Time) {
	partner := strings.TrimPrefix(p.Credit, PartnerPrefix)
	m := t.getMeta()
	d := t.dayOf(at)
	dt := m.Days[d]
	if dt.Partners == nil {
		dt.Partners = map[string]PartnerTotal{}
	}
	pt := dt.Partners[partner]
	pt.Partner = partner
	pt.Redemptions++
	pt.Points += p.Amount
	dt.Partners[partner] = pt
	m.Days[d] = dt
}
