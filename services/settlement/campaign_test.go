package settlement

import (
	"testing"

	"github.com/minecart/minecart/schemas/avro"
)

// TestBonusesSettle: a campaign entry moves nothing; a bonus is minted and
// settled like a credit (to the owner, or held until the vehicle is
// bound) and goes out on the reward credits topic under its bonus id.
func TestBonusesSettle(t *testing.T) {
	f := newFixture(t)
	f.commit(f.b.Bind(Binding{VehicleID: "v1", Owner: "alice", UpdatedAt: t0}))
	f.credit("v1", 100)
	f.entry(Entry{Kind: KindCampaign, RequestID: "submit/acme/wk"})
	f.entry(Entry{Kind: KindBonus, VehicleID: "v1", Amount: 100, ScoreID: "bonus/acme/wk/aa", Day: "2026-11-24"})
	f.entry(Entry{Kind: KindBonus, VehicleID: "v2", Amount: 5, ScoreID: "bonus/acme/new/bb", Day: "2026-11-24"})
	f.entry(Entry{Kind: KindBonus, VehicleID: "v1", Amount: 0, ScoreID: "bonus/acme/wk/cc"}) // invalid: alerted, nothing moves
	if b, _ := f.balance("alice"); b != 200 {
		t.Fatalf("alice = %d, want 200 (credit + bonus)", b)
	}
	if b, _ := f.balance(HoldAccount("v2")); b != 5 {
		t.Fatalf("hold v2 = %d, want 5", b)
	}
	if len(f.out.Credits) != 2 || f.out.Credits[1].ScoreID != "bonus/acme/wk/aa" || f.out.Credits[1].Points != 100 ||
		f.out.Credits[1].Kind != KindBonus || f.out.Credits[0].Kind == KindBonus {
		t.Fatalf("credits settled %+v", f.out.Credits)
	}
	if r := f.out.Credits[1].Avro(); r.Kind != "bonus" || r.ScoreID != "bonus/acme/wk/aa" || r.Points != 100 {
		t.Errorf("bonus record %+v", r)
	}
	for id, want := range map[string][2]string{
		"bonus/acme/wk/aa": {"acme", "acme/wk"}, "bonus/acme/wk": {}, "bonus//wk/aa": {}, "acme/wk/aa": {},
		"bonus/acme/wk/aa/bb": {}, "bonus/a b/wk/aa": {},
	} {
		p, c, ok := BonusPartner(id)
		if ok != (want[0] != "") || p != want[0] || c != want[1] {
			t.Errorf("BonusPartner(%q) = %q %q %v, want %v", id, p, c, ok, want)
		}
	}
	if len(f.out.Alerts) != 1 || f.out.Alerts[0].Kind != "bad_entry" {
		t.Fatalf("alerts %+v", f.out.Alerts)
	}
	e := EntryFrom(&avro.LedgerEntry{Kind: avro.EntryKindBonus, ID: "bonus/acme/wk/aa", VehicleID: "v1", Delta: 100, Date: "2026-11-24"})
	if e.Kind != KindBonus || e.Amount != 100 || e.ScoreID != "bonus/acme/wk/aa" {
		t.Errorf("EntryFrom bonus: %+v", e)
	}
}
