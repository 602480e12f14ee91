package settlement

import (
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/minecart/minecart/schemas/avro"
)

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// fixture is a book with the changelog it wrote, so tests can restore it.
type fixture struct {
	t    *testing.T
	b    *Book
	log  map[string][]byte
	leaf int64
	out  Output
}

// newFixture is a book whose redemptions pay with kind-2 debits (the
// protocol before holds: redeem_test.go tests holds).
func newFixture(t *testing.T) *fixture {
	t.Helper()
	p := DefaultPolicy()
	p.DebitRedemptions = true
	return newFixtureWith(t, p)
}

func newFixtureWith(t *testing.T, p Policy) *fixture {
	t.Helper()
	b, err := NewBook(p)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, b: b, log: map[string][]byte{}}
}

func (f *fixture) commit(tx *Tx, err error) *Tx {
	f.t.Helper()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, c := range tx.Changes() {
		v, err := EncodeChange(c)
		if err != nil {
			f.t.Fatal(err)
		}
		f.log[c.Key] = v
	}
	tx.Commit()
	f.out.Status = append(f.out.Status, tx.Status...)
	f.out.Orders = append(f.out.Orders, tx.Orders...)
	f.out.Debits = append(f.out.Debits, tx.Debits...)
	f.out.Transfers = append(f.out.Transfers, tx.Transfers...)
	f.out.Credits = append(f.out.Credits, tx.Credits...)
	f.out.Statements = append(f.out.Statements, tx.Statements...)
	f.out.Alerts = append(f.out.Alerts, tx.Alerts...)
	return tx
}

func (f *fixture) entry(e Entry) *Tx {
	e.Proof.LeafIndex = f.leaf
	f.leaf++
	if e.AppendedAt.IsZero() {
		e.AppendedAt = t0
	}
	return f.commit(f.b.Apply(e))
}

func (f *fixture) credit(vehicle string, pts int64) *Tx {
	return f.entry(Entry{Kind: KindCredit, VehicleID: vehicle, Amount: pts, ScoreID: vehicle + "/2026-11-24", Day: "2026-11-24"})
}

func (f *fixture) item(partner, id string, price int64, stock *int64) {
	f.commit(f.b.PutItem(CatalogItem{Partner: partner, ItemID: id, PricePoints: price, Stock: stock, Active: true, UpdatedAt: t0}))
}

func (f *fixture) redeem(owner, key, partner, item string, qty int32) Redemption {
	f.t.Helper()
	f.commit(f.b.Redeem(avro.RedemptionRequest{IdempotencyKey: key, Owner: owner, Partner: partner, ItemID: item, Quantity: qty, RequestedMs: t0}))
	r, ok := f.b.Redemption(RedemptionID(owner, key))
	if !ok {
		f.t.Fatalf("redemption %s/%s not recorded", owner, key)
	}
	return r
}

// ledgerDebit stands in for the ledger: it turns a debit request into an entry.
func (f *fixture) ledgerDebit(d avro.DebitRequest, at time.Time) *Tx {
	return f.entry(Entry{Kind: KindDebit, Account: d.Account, Amount: d.Amount, RequestID: d.RequestID, RedemptionID: d.RedemptionID, AppendedAt: at})
}

func (f *fixture) balance(id string) (bal, reserved int64) {
	a, _ := f.b.Account(id)
	return a.Balance, a.Reserved
}

func ptr[T any](v T) *T { return &v }

func TestCreditsFollowBindings(t *testing.T) {
	f := newFixture(t)
	f.commit(f.b.Bind(Binding{VehicleID: "v1", Owner: "alice", UpdatedAt: t0}))
	f.credit("v1", 100)
	f.credit("v2", 40) // no owner yet: held
	f.credit("v2", 2)
	if b, _ := f.balance("alice"); b != 100 {
		t.Fatalf("alice = %d, want 100", b)
	}
	if b, _ := f.balance(HoldAccount("v2")); b != 42 {
		t.Fatalf("hold v2 = %d, want 42", b)
	}
	if len(f.out.Credits) != 1 || f.out.Credits[0].Account != "alice" {
		t.Fatalf("credits settled = %+v, want one for alice", f.out.Credits)
	}
	f.commit(f.b.Bind(Binding{VehicleID: "v2", Owner: "alice", UpdatedAt: t0.Add(time.Hour)}))
	if b, _ := f.balance("alice"); b != 142 {
		t.Fatalf("alice after binding v2 = %d, want 142", b)
	}
	if _, ok := f.b.Account(HoldAccount("v2")); ok {
		t.Fatal("hold account of v2 still exists after binding")
	}
	if len(f.out.Credits) != 3 || f.out.Credits[1].Account != "alice" || f.out.Credits[2].Points != 2 {
		t.Fatalf("credits settled = %+v", f.out.Credits)
	}
	if f.log[AccountKey(HoldAccount("v2"))] != nil {
		t.Fatal("changelog keeps the emptied hold account, want a tombstone")
	}
	// Rebinding sends new credits to the new owner; old ones stay.
	f.commit(f.b.Bind(Binding{VehicleID: "v1", Owner: "bob", UpdatedAt: t0}))
	f.credit("v1", 7)
	if a, _ := f.balance("alice"); a != 142 {
		t.Fatalf("alice = %d after rebinding, want 142", a)
	}
	if b, _ := f.balance("bob"); b != 7 {
		t.Fatalf("bob = %d, want 7", b)
	}
	// A negative late-data adjustment of a held vehicle moves with it.
	f.credit("v3", 30)
	f.entry(Entry{Kind: KindAdjustment, VehicleID: "v3", Amount: -10})
	f.commit(f.b.Bind(Binding{VehicleID: "v3", Owner: "carol", UpdatedAt: t0}))
	if c, _ := f.balance("carol"); c != 20 {
		t.Fatalf("carol = %d, want 20", c)
	}
	if _, ok := f.b.Account(HoldAccount("v3")); ok {
		t.Fatal("hold account of v3 left behind")
	}
	// Unbinding holds again.
	f.commit(f.b.Bind(Binding{VehicleID: "v1", UpdatedAt: t0}))
	f.credit("v1", 5)
	if h, _ := f.balance(HoldAccount("v1")); h != 5 {
		t.Fatalf("hold v1 = %d, want 5", h)
	}
}

func TestRedeemRejections(t *testing.T) {
	f := newFixture(t)
	f.commit(f.b.Bind(Binding{VehicleID: "v1", Owner: "alice", UpdatedAt: t0}))
	f.credit("v1", 100)
	f.item("acme", "mug", 30, ptr(int64(2)))
	f.item("acme", "car", 1000, nil)
	f.commit(f.b.PutItem(CatalogItem{Partner: "acme", ItemID: "old", PricePoints: 1, Active: false}))
	cases := []struct {
		key, item string
		qty       int32
		max       *int64
		want      Status
		reason    string
	}{
		{"k1", "nope", 1, nil, StatusRejected, ReasonUnknownItem},
		{"k2", "old", 1, nil, StatusRejected, ReasonUnknownItem},
		{"k3", "car", 1, nil, StatusRejected, ReasonInsufficient},
		{"k4", "mug", 3, nil, StatusRejected, ReasonOutOfStock},
		{"k5", "mug", 0, nil, StatusRejected, ReasonInvalid},
		{"k6", "mug", 2, ptr(int64(59)), StatusRejected, ReasonPriceChanged},
		{"k7", "mug", 2, ptr(int64(60)), StatusPending, ""},
		{"k8", "mug", 1, nil, StatusRejected, ReasonOutOfStock},
		{"k9", "car", 1, nil, StatusRejected, ReasonInsufficient},
	}
	for _, c := range cases {
		f.commit(f.b.Redeem(avro.RedemptionRequest{IdempotencyKey: c.key, Owner: "alice", Partner: "acme", ItemID: c.item, Quantity: c.qty, MaxPoints: c.max, RequestedMs: t0}))
		r, _ := f.b.Redemption(RedemptionID("alice", c.key))
		if r.Status != c.want || r.Reason != c.reason {
			t.Errorf("%s: status %s %q, want %s %q", c.key, r.Status, r.Reason, c.want, c.reason)
		}
	}
	if b, res := f.balance("alice"); b != 100 || res != 60 {
		t.Fatalf("alice balance %d reserved %d, want 100 and 60", b, res)
	}
	if len(f.out.Debits) != 1 || f.out.Debits[0].Amount != 60 || f.out.Debits[0].Kind != avro.RequestKindDebit {
		t.Fatalf("debits = %+v", f.out.Debits)
	}
	// Holding accounts cannot redeem.
	f.commit(f.b.Redeem(avro.RedemptionRequest{IdempotencyKey: "x", Owner: HoldAccount("v9"), Partner: "acme", ItemID: "mug", Quantity: 1}))
	if r, _ := f.b.Redemption(RedemptionID(HoldAccount("v9"), "x")); r.Reason != ReasonInvalid {
		t.Fatalf("hold account redemption: %+v", r)
	}
}

func TestRedemptionLifecycle(t *testing.T) {
	f := newFixture(t)
	f.commit(f.b.Bind(Binding{VehicleID: "v1", Owner: "alice", UpdatedAt: t0}))
	f.credit("v1", 100)
	f.item("acme", "mug", 30, nil)
	r := f.redeem("alice", "k1", "acme", "mug", 1)
	if r.Status != StatusPending {
		t.Fatalf("status %s", r.Status)
	}
	// The same key again changes nothing and asks for no second debit.
	again := f.commit(f.b.Redeem(avro.RedemptionRequest{IdempotencyKey: "k1", Owner: "alice", Partner: "acme", ItemID: "mug", Quantity: 1}))
	if len(again.Debits) != 0 || len(again.Changes()) != 0 {
		t.Fatalf("replayed request changed state: %+v", again.Changes())
	}
	if _, err := f.b.Redeem(avro.RedemptionRequest{IdempotencyKey: "k1", Owner: "alice", Partner: "acme", ItemID: "other", Quantity: 1}); err == nil {
		t.Fatal("key reused for another order: no error")
	}
	f.ledgerDebit(f.out.Debits[0], t0.Add(time.Second))
	if b, res := f.balance("alice"); b != 70 || res != 0 {
		t.Fatalf("after debit: balance %d reserved %d", b, res)
	}
	r, _ = f.b.Redemption(r.ID)
	if r.Status != StatusConfirmed || r.Debit == nil || len(f.out.Orders) != 1 {
		t.Fatalf("after debit: %+v, orders %d", r, len(f.out.Orders))
	}
	if _, err := f.b.Ack(PartnerAck{RedemptionID: r.ID, Partner: "evil", Status: avro.AckStatusFulfilled}); err == nil {
		t.Fatal("ack from another partner accepted")
	}
	f.commit(f.b.Ack(PartnerAck{RedemptionID: r.ID, Partner: "acme", Status: avro.AckStatusFulfilled, Reference: "order-9", AckedAt: t0}))
	r, _ = f.b.Redemption(r.ID)
	if r.Status != StatusFulfilled || r.PartnerRef != "order-9" {
		t.Fatalf("after ack: %+v", r)
	}
	if tx := f.commit(f.b.Ack(PartnerAck{RedemptionID: r.ID, Partner: "acme", Status: avro.AckStatusFulfilled})); len(tx.Status) != 0 {
		t.Fatal("repeated ack wrote a status")
	}
	want := []Status{StatusPending, StatusConfirmed, StatusFulfilled}
	var got []Status
	for _, s := range f.out.Status {
		got = append(got, s.Status)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("status records %v, want %v", got, want)
	}
}

func TestLedgerSkipsAndTimeouts(t *testing.T) {
	f := newFixture(t)
	f.commit(f.b.Bind(Binding{VehicleID: "v1", Owner: "alice", UpdatedAt: t0}))
	f.credit("v1", 100)
	f.item("acme", "mug", 10, ptr(int64(10)))
	r1 := f.redeem("alice", "k1", "acme", "mug", 1)
	r2 := f.redeem("alice", "k2", "acme", "mug", 1)
	r3 := f.redeem("alice", "k3", "acme", "mug", 1)
	if _, res := f.balance("alice"); res != 30 {
		t.Fatalf("reserved %d, want 30", res)
	}
	// The ledger appended k2 but not k1: k1 was refused.
	f.ledgerDebit(f.out.Debits[1], t0.Add(time.Second))
	if r, _ := f.b.Redemption(r1.ID); r.Status != StatusRejected || r.Reason != ReasonLedgerReject {
		t.Fatalf("k1: %+v", r)
	}
	if r, _ := f.b.Redemption(r2.ID); r.Status != StatusConfirmed {
		t.Fatalf("k2: %+v", r)
	}
	if b, res := f.balance("alice"); b != 90 || res != 10 {
		t.Fatalf("balance %d reserved %d, want 90 and 10", b, res)
	}
	// k3 waits until its timeout.
	f.commit(f.b.Tick(t0.Add(DefaultPolicy().DebitTimeout)), nil)
	if r, _ := f.b.Redemption(r3.ID); r.Status != StatusPending {
		t.Fatalf("k3 released before its timeout: %+v", r)
	}
	f.credit("v1", 1)
	f.commit(f.b.Tick(t0.Add(DefaultPolicy().DebitTimeout+time.Millisecond)), nil)
	if r, _ := f.b.Redemption(r3.ID); r.Status != StatusRejected || r.Reason != ReasonLedgerTimeout {
		t.Fatalf("k3 after timeout: %+v", r)
	}
	if b, res := f.balance("alice"); b != 91 || res != 0 {
		t.Fatalf("balance %d reserved %d, want 91 and 0", b, res)
	}
	if it, _ := f.b.Item(ItemKey("acme", "mug")); it.Sold != 1 {
		t.Fatalf("sold %d, want 1", it.Sold)
	}
	// Should the ledger append k3 anyway, the free points pay and the order goes out.
	f.ledgerDebit(f.out.Debits[2], t0.Add(time.Hour))
	if r, _ := f.b.Redemption(r3.ID); r.Status != StatusConfirmed {
		t.Fatalf("late debit of k3: %+v", r)
	}
	if b, _ := f.balance("alice"); b != 81 {
		t.Fatalf("balance %d, want 81", b)
	}
	if !hasAlert(f.out.Alerts, "late_debit") {
		t.Fatal("late debit raised no alert")
	}
}

func hasAlert(as []Alert, kind string) bool {
	for _, a := range as {
		if a.Kind == kind {
			return true
		}
	}
	return false
}

func TestEntriesInOrder(t *testing.T) {
	f := newFixture(t)
	f.credit("v1", 5)
	tx := f.commit(f.b.Apply(Entry{Kind: KindCredit, VehicleID: "v1", Amount: 5, Proof: Proof{LeafIndex: 0}, AppendedAt: t0}))
	if !hasAlert(tx.Alerts, "duplicate_entry") || len(tx.Changes()) != 0 {
		t.Fatalf("duplicate entry: alerts %v changes %v", tx.Alerts, tx.Changes())
	}
	tx = f.commit(f.b.Apply(Entry{Kind: KindCredit, VehicleID: "v1", Amount: 5, Proof: Proof{LeafIndex: 3}, AppendedAt: t0}))
	if !hasAlert(tx.Alerts, "leaf_gap") {
		t.Fatal("leaf gap not alerted")
	}
	if h, _ := f.balance(HoldAccount("v1")); h != 10 {
		t.Fatalf("hold = %d, want 10", h)
	}
}

func TestAdjustments(t *testing.T) {
	f := newFixture(t)
	f.commit(f.b.Bind(Binding{VehicleID: "v1", Owner: "alice", UpdatedAt: t0}))
	f.credit("v1", 50)
	f.entry(Entry{Kind: KindAdjustment, VehicleID: "v1", Amount: 10})
	f.entry(Entry{Kind: KindAdjustment, Account: "alice", Amount: -20})
	f.entry(Entry{Kind: KindAdjustment, VehicleID: "v7", Amount: 3})
	if b, _ := f.balance("alice"); b != 40 {
		t.Fatalf("alice = %d, want 40", b)
	}
	if h, _ := f.balance(HoldAccount("v7")); h != 3 {
		t.Fatalf("hold v7 = %d, want 3", h)
	}
	if minted, redeemed := f.b.Points(); minted != 43 || redeemed != 0 {
		t.Fatalf("points minted %d redeemed %d, want 43 0", minted, redeemed)
	}
	tx := f.entry(Entry{Kind: KindAdjustment, Account: "alice", Amount: -100})
	if !hasAlert(tx.Alerts, "overdraft") {
		t.Fatal("adjustment below zero raised no alert")
	}
}

func TestStatements(t *testing.T) {
	f := newFixture(t)
	f.commit(f.b.Tick(t0), nil) // opens 2026-11-25
	f.commit(f.b.Bind(Binding{VehicleID: "v1", Owner: "alice", UpdatedAt: t0}))
	f.credit("v1", 100)
	f.credit("v2", 20) // held: still outstanding
	f.item("acme", "mug", 30, nil)
	f.item("zeta", "pen", 5, nil)
	f.redeem("alice", "k1", "acme", "mug", 1)
	f.redeem("alice", "k2", "zeta", "pen", 2)
	f.ledgerDebit(f.out.Debits[0], t0.Add(time.Minute))
	f.ledgerDebit(f.out.Debits[1], t0.Add(time.Minute))
	day2 := t0.Add(24 * time.Hour)
	f.entry(Entry{Kind: KindCredit, VehicleID: "v1", Amount: 1, AppendedAt: day2})
	f.commit(f.b.Tick(day2.Add(time.Hour)), nil)    // closes 11-25
	f.commit(f.b.Tick(day2.Add(48*time.Hour)), nil) // closes 11-26 and 11-27
	if len(f.out.Statements) != 3 {
		t.Fatalf("%d statements, want 3", len(f.out.Statements))
	}
	s := f.out.Statements[0]
	want := avro.Statement{Day: "2026-11-25", Minted: 120, Redeemed: 40, Outstanding: 80,
		Partners: []avro.PartnerTotal{{Partner: "acme", Redemptions: 1, Points: 30}, {Partner: "zeta", Redemptions: 1, Points: 10}}, BalanceSum: 81, Expected: 81,
		InvariantOk: true, Accounts: 2, GeneratedMs: day2.Add(time.Hour)}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("statement\n got %+v\nwant %+v", s, want)
	}
	if s := f.out.Statements[1]; s.Day != "2026-11-26" || s.Minted != 1 || s.Outstanding != 81 {
		t.Fatalf("second statement %+v", s)
	}
	if s := f.out.Statements[2]; s.Day != "2026-11-27" || s.Minted != 0 || s.Outstanding != 81 || !s.InvariantOk {
		t.Fatalf("third statement %+v", s)
	}
	if hasAlert(f.out.Alerts, "invariant") {
		t.Fatal("invariant alert on a consistent book")
	}
	if minted, redeemed := f.b.Points(); minted != 121 || redeemed != 40 {
		t.Fatalf("points minted %d redeemed %d, want 121 40", minted, redeemed)
	}
	// A corrupted balance breaks the invariant and must alert.
	a := f.b.accounts["alice"]
	a.Balance += 5
	f.b.accounts["alice"] = a
	f.commit(f.b.Tick(day2.Add(72*time.Hour)), nil)
	last := f.out.Statements[len(f.out.Statements)-1]
	if last.InvariantOk || last.BalanceSum-last.Expected != 5 || !hasAlert(f.out.Alerts, "invariant") {
		t.Fatalf("corrupted book: statement %+v alerts %v", last, f.out.Alerts)
	}
}

// TestChangelogMeta pins the changelog JSON of the book's totals, a day's
// partner totals included: Go field names of settlement's own types, as
// the changelogs already written hold them.
func TestChangelogMeta(t *testing.T) {
	m := Meta{Seq: 2, NextLeaf: 7, Minted: 50, Redeemed: 30, Outstanding: 20, OpenDay: "2026-11-25",
		Days: map[string]DayTotals{"2026-11-25": {Minted: 5, Redeemed: 30,
			Partners: map[string]PartnerTotal{"acme": {Partner: "acme", Redemptions: 1, Points: 30}}}}}
	const want = `{"Seq":2,"NextLeaf":7,"Minted":50,"Redeemed":30,"Outstanding":20,"OpenDay":"2026-11-25",` +
		`"Days":{"2026-11-25":{"Minted":5,"Redeemed":30,"Partners":{"acme":{"Partner":"acme","Redemptions":1,"Points":30}}}}}`
	got, err := EncodeChange(Change{Key: keyMeta, Value: m})
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("meta changelog\n got %s\nwant %s", got, want)
	}
	b, _ := NewBook(DefaultPolicy())
	if err := b.Restore(keyMeta, []byte(want)); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(b.meta, m) {
		t.Fatalf("restored meta %+v, want %+v", b.meta, m)
	}
}

// TestRestore replays the changelog into a new book at every step of a
// scenario and checks it equals the live one.
func TestRestore(t *testing.T) {
	f := newFixture(t)
	check := func(step string) {
		t.Helper()
		b2, _ := NewBook(DefaultPolicy())
		keys := make([]string, 0, len(f.log))
		for k := range f.log {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if err := b2.Restore(k, f.log[k]); err != nil {
				t.Fatal(err)
			}
		}
		b2.Restored()
		for _, m := range []struct {
			name      string
			got, want any
		}{{"accounts", b2.accounts, f.b.accounts}, {"bindings", b2.bindings, f.b.bindings},
			{"items", b2.items, f.b.items}, {"redemptions", b2.redemptions, f.b.redemptions},
			{"meta", b2.meta, f.b.meta}, {"pending", append([]string{}, b2.pending...), append([]string{}, f.b.pending...)}} {
			if !reflect.DeepEqual(m.got, m.want) {
				t.Fatalf("%s: restored %s\n got %v\nwant %v", step, m.name, m.got, m.want)
			}
		}
	}
	f.commit(f.b.Bind(Binding{VehicleID: "v1", Owner: "alice", UpdatedAt: t0}))
	f.credit("v1", 100)
	f.credit("v2", 9)
	check("credits")
	f.item("acme", "mug", 10, ptr(int64(5)))
	f.redeem("alice", "k1", "acme", "mug", 1)
	f.redeem("alice", "k2", "acme", "mug", 2)
	f.redeem("alice", "k3", "acme", "mug", 1)
	check("pending")
	f.ledgerDebit(f.out.Debits[1], t0)
	check("debit")
	f.commit(f.b.Bind(Binding{VehicleID: "v2", Owner: "bob", UpdatedAt: t0}))
	f.commit(f.b.Tick(t0.Add(50*time.Hour)), nil)
	check("tick")
}

// TestLateDebitOverdraft: the ledger appends a debit after settlement
// released it and the owner spent the points meanwhile: settlement alerts
// and asks the ledger to reverse the debit.
func TestLateDebitOverdraft(t *testing.T) {
	f := newFixture(t)
	f.commit(f.b.Bind(Binding{VehicleID: "v1", Owner: "alice", UpdatedAt: t0}))
	f.credit("v1", 10)
	f.item("acme", "mug", 10, nil)
	r1 := f.redeem("alice", "k1", "acme", "mug", 1)
	f.commit(f.b.Tick(t0.Add(time.Hour)), nil)
	r2 := f.redeem("alice", "k2", "acme", "mug", 1)
	if r2.Status != StatusPending {
		t.Fatalf("k2 after k1 timed out: %+v", r2)
	}
	f.ledgerDebit(f.out.Debits[1], t0.Add(time.Hour)) // k2 first
	f.ledgerDebit(f.out.Debits[0], t0.Add(time.Hour)) // then the late k1
	if r, _ := f.b.Redemption(r1.ID); r.Status != StatusRejected {
		t.Fatalf("k1: %+v", r)
	}
	if !hasAlert(f.out.Alerts, "overdraft") {
		t.Fatal("no overdraft alert")
	}
	rev := f.out.Debits[len(f.out.Debits)-1]
	if rev.Kind != avro.RequestKindAdjustment || rev.Amount != 10 || rev.Account != "alice" {
		t.Fatalf("reversal request %+v", rev)
	}
	f.entry(Entry{Kind: KindAdjustment, Account: rev.Account, Amount: rev.Amount, RequestID: rev.RequestID})
	if b, res := f.balance("alice"); b != 0 || res != 0 {
		t.Fatalf("after reversal: balance %d reserved %d", b, res)
	}
}

// TestEarlyAck: an ack seen before the debit confirms the redemption is
// kept and applied at confirmation.
func TestEarlyAck(t *testing.T) {
	f := newFixture(t)
	f.commit(f.b.Bind(Binding{VehicleID: "v1", Owner: "alice", UpdatedAt: t0}))
	f.credit("v1", 100)
	f.item("acme", "mug", 30, nil)
	r := f.redeem("alice", "k1", "acme", "mug", 1)
	tx := f.commit(f.b.Ack(PartnerAck{RedemptionID: r.ID, Partner: "acme", Status: avro.AckStatusFulfilled, Reference: "x", AckedAt: t0}))
	if len(tx.Status) != 0 {
		t.Fatal("early ack published a status")
	}
	f.ledgerDebit(f.out.Debits[0], t0)
	r, _ = f.b.Redemption(r.ID)
	if r.Status != StatusFulfilled || r.PartnerRef != "x" || r.EarlyAck != nil || len(f.out.Orders) != 1 {
		t.Fatalf("after debit: %+v", r)
	}
}

// TestForgetOldRedemptions: finished redemptions leave the state after the
// retention; pending and confirmed ones stay.
func TestForgetOldRedemptions(t *testing.T) {
	f := newFixture(t)
	f.commit(f.b.Bind(Binding{VehicleID: "v1", Owner: "alice", UpdatedAt: t0}))
	f.credit("v1", 100)
	f.item("acme", "mug", 30, nil)
	f.commit(f.b.Tick(t0), nil)
	done := f.redeem("alice", "k1", "acme", "mug", 9) // rejected
	open := f.redeem("alice", "k2", "acme", "mug", 1) // pending
	f.commit(f.b.Tick(t0.Add(DefaultPolicy().KeepRedemptions+48*time.Hour)), nil)
	if _, ok := f.b.Redemption(done.ID); ok {
		t.Fatal("old rejected redemption kept")
	}
	if v, ok := f.log[RedemptionKey(done.ID)]; !ok || v != nil {
		t.Fatal("no tombstone for the forgotten redemption")
	}
	if r, ok := f.b.Redemption(open.ID); !ok || r.Status != StatusRejected {
		t.Fatalf("pending redemption: %+v %v (want released by timeout, kept)", r, ok)
	}
}
