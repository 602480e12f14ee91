package settlement

import (
	"testing"
)

// TestRescores: a late-data rescore moves the balance by its signed delta
// and reaches partners as a settled credit of kind rescore (score id and
// day of the credit it corrects); one that takes back points already spent
// leaves the balance negative, raises an overdraft alert and blocks
// redemptions until later credits cover it; a rescore of an unbound
// vehicle is held and settled with its credits at binding; restore keeps
// all of it.
func TestRescores(t *testing.T) {
	f := newFixture(t)
	f.commit(f.b.Bind(Binding{VehicleID: "v1", Owner: "alice", UpdatedAt: t0}))
	f.item("acme", "mug", 40, nil)
	f.credit("v1", 50)
	rescore := func(vehicle string, rev int32, delta, day int64) *Tx {
		return f.entry(Entry{Kind: KindRescore, VehicleID: vehicle, ScoreID: vehicle + "/2026-11-24", Day: "2026-11-24",
			RequestID: "rescore/" + vehicle + "/2026-11-24/" + string(rune('0'+rev)), Amount: delta, Revision: rev, DayPoints: day})
	}
	tx := rescore("v1", 1, 30, 80)
	if b, _ := f.balance("alice"); b != 80 {
		t.Fatalf("alice = %d after +30, want 80", b)
	}
	if len(tx.Credits) != 1 {
		t.Fatalf("%d partner credits, want 1", len(tx.Credits))
	}
	c := tx.Credits[0].Avro()
	if c.Kind != "rescore" || c.Points != 30 || c.DayPoints != 80 || c.Revision != 1 || c.ScoreID != "v1/2026-11-24" || c.Day != "2026-11-24" || c.Account != "alice" {
		t.Errorf("partner record %+v", c)
	}
	r := f.redeem("alice", "k1", "acme", "mug", 1)
	for _, d := range f.out.Debits {
		if d.RedemptionID == r.ID {
			f.ledgerDebit(d, t0)
		}
	}
	if b, _ := f.balance("alice"); b != 40 {
		t.Fatalf("alice = %d after the redemption, want 40", b)
	}
	// The day is re-scored down to 10 points: -70 takes alice to -30.
	tx = rescore("v1", 2, -70, 10)
	if b, _ := f.balance("alice"); b != -30 || !hasAlert(tx.Alerts, "overdraft") {
		t.Fatalf("alice = %d after -70 (want -30), alerts %v", b, tx.Alerts)
	}
	if r := f.redeem("alice", "k2", "acme", "mug", 1); r.Status != StatusRejected || r.Reason != ReasonInsufficient {
		t.Errorf("redemption with a negative balance: %s %s", r.Status, r.Reason)
	}
	f.credit("v1", 75) // a later day covers it
	if b, _ := f.balance("alice"); b != 45 {
		t.Fatalf("alice = %d, want 45", b)
	}
	if minted, _ := f.b.Points(); minted != 50+30-70+75 {
		t.Errorf("minted %d, want 85", minted)
	}
	// Unbound vehicle: held, settled at binding with its credit.
	f.credit("v2", 20)
	rescore("v2", 1, -5, 15)
	if h, _ := f.balance(HoldAccount("v2")); h != 15 {
		t.Fatalf("hold v2 = %d, want 15", h)
	}
	f.out.Credits = nil
	f.commit(f.b.Bind(Binding{VehicleID: "v2", Owner: "bob", UpdatedAt: t0}))
	if b, _ := f.balance("bob"); b != 15 || len(f.out.Credits) != 2 || f.out.Credits[1].Kind != KindRescore || f.out.Credits[1].Account != "bob" {
		t.Fatalf("bob = %d after binding, partner records %+v", b, f.out.Credits)
	}
	// A rescore without its credit's id is bad input: an alert, no change.
	if tx := f.entry(Entry{Kind: KindRescore, VehicleID: "v1", Amount: 5}); !hasAlert(tx.Alerts, "bad_entry") {
		t.Error("rescore without a score id applied")
	}
	b2, err := NewBook(DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range f.log {
		if err := b2.Restore(k, v); err != nil {
			t.Fatal(err)
		}
	}
	b2.Restored()
	if a, _ := b2.Account("alice"); a.Balance != 45 {
		t.Errorf("restored alice = %d, want 45", a.Balance)
	}
}
