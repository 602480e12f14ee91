package partner_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/minecart/minecart/cmd/partner-example/partner"
	"github.com/minecart/minecart/infra/broker"
	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/settlement"
	"github.com/minecart/minecart/services/settlement/settletest"
)

// received collects what one partner saw.
type received struct {
	mu      sync.Mutex
	orders  []partner.Order
	credits []avro.CreditSettled
	errs    []error
}

func (r *received) order(o partner.Order, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.orders = append(r.orders, o)
	if err != nil {
		r.errs = append(r.errs, fmt.Errorf("order %s: %w", o.RedemptionID, err))
	}
}

func (r *received) credit(c avro.CreditSettled, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.credits = append(r.credits, c)
	if err != nil {
		r.errs = append(r.errs, fmt.Errorf("credit %s: %w", c.ScoreID, err))
	}
}

func (r *received) count() (int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.orders), len(r.credits)
}

func start(t *testing.T, env *settletest.Env, name string, credits bool, seen partner.Store, r *received) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- partner.Run(ctx, partner.Config{Brokers: env.Brokers, Partner: name, LedgerKey: env.LedgerPub,
			Credits: credits, Seen: seen, OnOrder: r.order, OnCredit: r.credit, Logger: kafkatest.Logger()})
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("partner %s: %v", name, err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// TestPartnerExample runs two partners with kafka-go against the real
// ledger and settlement stages: every order arrives once, in order, with a
// proof that verifies against the signed checkpoint; every settled credit
// verifies too; the acks make settlement mark the orders fulfilled.
func TestPartnerExample(t *testing.T) {
	if testing.Short() {
		t.Skip("embedded pipeline")
	}
	env := settletest.Start(t, "acme", "zeta")
	const owners, vehicles = 5, 10
	for v := range vehicles {
		if v%2 == 0 { // odd vehicles are bound only after their credit: held, then moved
			env.Bind(fmt.Sprintf("v%d", v), fmt.Sprintf("o%d", v%owners))
		}
	}
	for v := range vehicles {
		env.Credit(fmt.Sprintf("v%d", v), fmt.Sprintf("2026-11-%02d", 10+v), 100)
	}
	env.Wait(30*time.Second, func() bool { return env.Account("vehicle:v9").Balance == 100 }, func() string { return "v9 not held" })
	for v := range vehicles {
		if v%2 == 1 {
			env.Bind(fmt.Sprintf("v%d", v), fmt.Sprintf("o%d", v%owners))
		}
	}
	for o := range owners {
		env.WaitBalance(fmt.Sprintf("o%d", o), 200)
	}
	env.PutItem("acme", "mug", 10, nil)
	env.PutItem("zeta", "pen", 15, nil)

	var outs []kafka.Output
	want := map[string][]string{} // partner -> redemption ids
	for n := range 50 {
		p, item := "acme", "mug"
		if n%5 >= 3 {
			p, item = "zeta", "pen"
		}
		rq := avro.RedemptionRequest{IdempotencyKey: fmt.Sprintf("k%d", n), Owner: fmt.Sprintf("o%d", n%owners),
			Partner: p, ItemID: item, Quantity: 1, RequestedMs: time.Now(), Customer: fmt.Sprintf("%s-card-%d", p, n%owners)}
		v, err := env.Serde.Marshal(&rq)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, kafka.Output{Topic: pipelines.TopicRedemptions, Key: []byte(rq.Owner), Value: v})
		want[p] = append(want[p], settlement.RedemptionID(rq.Owner, rq.IdempotencyKey))
	}
	acme, zeta := &received{}, &received{}
	seen := &partner.MemStore{}
	stopAcme := start(t, env, "acme", true, seen, acme)
	start(t, env, "zeta", false, &partner.MemStore{}, zeta)
	kafkatest.Produce(t, env.Brokers, outs[:25]...)
	env.Wait(30*time.Second, func() bool { n, _ := acme.count(); return n >= 10 }, func() string { return "acme got < 10 orders" })
	stopAcme() // a partner restart: at-least-once delivery, de-duplicated by redemption id
	start(t, env, "acme", true, seen, acme)
	kafkatest.Produce(t, env.Brokers, outs[25:]...)

	for p, ids := range want {
		for _, id := range ids {
			env.Wait(60*time.Second, func() bool {
				r, ok := env.Redemption(id)
				return ok && r.Status == settlement.StatusFulfilled
			}, func() string {
				r, _ := env.Redemption(id)
				return fmt.Sprintf("%s order %s: %s %s", p, id, r.Status, r.Reason)
			})
		}
	}
	env.Wait(30*time.Second, func() bool { _, c := acme.count(); return c >= vehicles }, func() string { return "credits missing" })

	for p, got := range map[string]*received{"acme": acme, "zeta": zeta} {
		for _, err := range got.errs {
			t.Errorf("%s: %v", p, err)
		}
		if len(got.orders) != len(want[p]) {
			t.Errorf("%s received %d orders, want %d", p, len(got.orders), len(want[p]))
		}
		ids := map[string]bool{}
		for i, o := range got.orders {
			if ids[o.RedemptionID] {
				t.Errorf("%s: order %s received twice", p, o.RedemptionID)
			}
			ids[o.RedemptionID] = true
			if i > 0 && o.Seq <= got.orders[i-1].Seq {
				t.Errorf("%s: order %d (seq %d) after seq %d", p, i, o.Seq, got.orders[i-1].Seq)
			}
			r, _ := env.Redemption(o.RedemptionID)
			if r.PartnerRef != p+"-"+o.RedemptionID {
				t.Errorf("%s: order %s partner ref %q", p, o.RedemptionID, r.PartnerRef)
			}
			// The order names the owner only by the account's pseudonym,
			// which minecart (not the partner) opens to the owner.
			if o.Customer == "" || o.Customer != r.Customer || !strings.HasPrefix(o.Customer, p+"-card-") {
				t.Errorf("%s: order %s customer %q, the owner gave %q", p, o.RedemptionID, o.Customer, r.Customer)
			}
			if op, err := env.Pseudonyms.Open(context.Background(), o.Owner); err != nil || op.ID != r.Owner || o.IdempotencyKey != "" {
				t.Errorf("%s: order %s names owner %q (opens to %q, %v; idempotency key %q), want the pseudonym of %s",
					p, o.RedemptionID, o.Owner, op.ID, err, o.IdempotencyKey, r.Owner)
			}
		}
		for _, id := range want[p] {
			if !ids[id] {
				t.Errorf("%s never received %s", p, id)
			}
		}
	}
	if len(acme.credits) != vehicles {
		t.Errorf("%d settled credits, want %d", len(acme.credits), vehicles)
	}
	for _, c := range acme.credits {
		// The record names the vehicle by its pseudonym, as the leaf
		// does; minecart (not the partner) can open it.
		o, err := env.Pseudonyms.Open(context.Background(), c.VehicleID)
		if err != nil {
			t.Fatalf("credit of %s: %v", c.VehicleID, err)
		}
		// No credit names its owner to a partner (docs/partners.md,
		// "Nothing personal"); minecart settled it to the vehicle's owner.
		if c.Account != "" {
			t.Errorf("credit of %s (%s) names account %q", c.VehicleID, o.ID, c.Account)
		}
	}
	// The posts of the holds moved the points to the partners' accounts:
	// 30 mugs at 10, 20 pens at 15.
	for acct, want := range map[string]int64{settlement.PartnerAccount("acme"): 300, settlement.PartnerAccount("zeta"): 300} {
		env.Wait(30*time.Second, func() bool { a := env.Account(acct); return a.Balance == want && a.Reserved == 0 },
			func() string { return fmt.Sprintf("%s: %+v, want balance %d", acct, env.Account(acct), want) })
	}
	testVerifyOrder(t, acme.orders[0], env)
	t.Logf("acme: %d orders, %d credits; zeta: %d orders; all proofs verified against signed checkpoints",
		len(acme.orders), len(acme.credits), len(zeta.orders))
}

// testVerifyOrder: a real order (its hold's entry and proof) verifies, and
// changing any field of the order, or verifying it as another partner,
// does not: the hold id binds item, quantity and points, the entry binds
// owner, partner and points.
func testVerifyOrder(t *testing.T, o partner.Order, env *settletest.Env) {
	t.Helper()
	if err := partner.VerifyOrder(o, "acme", env.LedgerPub); err != nil {
		t.Fatalf("real order: %v", err)
	}
	if d, err := partner.HoldDeadline(o); err != nil || !d.Equal(o.UpdatedMs.Add(settlement.DefaultPolicy().FulfilTimeout)) {
		t.Errorf("hold deadline %v (%v), want updated_ms + %v", d, err, settlement.DefaultPolicy().FulfilTimeout)
	}
	for name, tamper := range map[string]func(*partner.Order){
		"item":       func(o *partner.Order) { o.ItemID = "pen" },
		"quantity":   func(o *partner.Order) { o.Quantity = 2 },
		"points":     func(o *partner.Order) { o.Points++ },
		"owner":      func(o *partner.Order) { o.Owner = "mallory" },
		"redemption": func(o *partner.Order) { o.RedemptionID = settlement.RedemptionID("o1", "other") },
		"partner":    func(o *partner.Order) { o.Partner = "zeta" },
	} {
		x := o
		tamper(&x)
		if err := partner.VerifyOrder(x, x.Partner, env.LedgerPub); err == nil {
			t.Errorf("order with another %s verified", name)
		}
	}
}

// TestPartnerExampleWithACLs runs the whole flow on a broker that enforces
// SASL/SCRAM and the partner ACLs: the services as the superuser
// "minecart", the partner as "partner-acme" with only
// settlement.PartnerACLs("acme") — it can consume its orders and the
// credits in its consumer groups and write its acks, and that is enough.
func TestPartnerExampleWithACLs(t *testing.T) {
	if testing.Short() {
		t.Skip("embedded pipeline")
	}
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0", MinSessionTimeout: 100 * time.Millisecond, Logger: kafkatest.Logger(),
		Users: []broker.User{
			{Name: "minecart", Password: "svc-pw", Super: true},
			{Name: settlement.PartnerUser("acme"), Password: "acme-pw", ACLs: settlement.PartnerACLs("acme")},
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	svc := kgo.SASL(scram.Auth{User: "minecart", Pass: "svc-pw"}.AsSha512Mechanism())
	tctx, tcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer tcancel()
	if err := kafka.EnsureTopicsWith(tctx, kafka.Config{Brokers: b.Addrs(), ClientOptions: []kgo.Opt{svc}},
		slices.Concat(pipelines.Topology, settlement.PartnerTopics("acme"))); err != nil {
		t.Fatal(err)
	}
	env := settletest.StartOn(t, b.Addrs(), settletest.Options{ClientOptions: []kgo.Opt{svc}})
	env.Bind("v1", "alice")
	env.Credit("v1", "2026-11-20", 100)
	env.PutItem("acme", "mug", 10, nil)
	env.WaitBalance("alice", 100)

	got := &received{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- partner.Run(ctx, partner.Config{Brokers: env.Brokers, Partner: "acme", LedgerKey: env.LedgerPub,
			User: "partner-acme", Password: "acme-pw", Credits: true, OnOrder: got.order, OnCredit: got.credit, Logger: kafkatest.Logger()})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("partner: %v", err)
		}
	}()
	var ids []string
	for n := range 5 {
		rq := avro.RedemptionRequest{IdempotencyKey: fmt.Sprintf("k%d", n), Owner: "alice", Partner: "acme", ItemID: "mug", Quantity: 1, RequestedMs: time.Now()}
		v, err := env.Serde.Marshal(&rq)
		if err != nil {
			t.Fatal(err)
		}
		pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
		err = env.Producer.ProduceSync(pctx, pipelines.TopicRedemptions, []byte("alice"), v)
		pcancel()
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, settlement.RedemptionID("alice", rq.IdempotencyKey))
	}
	for _, id := range ids {
		env.Wait(30*time.Second, func() bool { r, ok := env.Redemption(id); return ok && r.Status == settlement.StatusFulfilled },
			func() string { r, _ := env.Redemption(id); return fmt.Sprintf("order %s: %s", id, r.Status) })
	}
	env.Wait(30*time.Second, func() bool { _, n := got.count(); return n == 1 }, func() string { return "credit not received" })
	if n, _ := got.count(); n != len(ids) || len(got.errs) != 0 {
		t.Errorf("partner got %d orders (want %d), errors %v", n, len(ids), got.errs)
	}
	// FULFILLED is decided with the ack; the points move when the post's
	// entry comes back.
	env.Wait(30*time.Second, func() bool { a := env.Account("alice"); return a.Balance == 50 && a.Reserved == 0 },
		func() string { return fmt.Sprintf("alice %+v, want balance 50", env.Account("alice")) })
}

// TestPartnerExampleLegacyDebits: orders of redemptions paid by kind-2
// debits (settlement.Policy.DebitRedemptions, the protocol before holds)
// still verify in the example and are fulfilled; the points are burned
// (no partner account), and a debit order with another item does not
// verify.
func TestPartnerExampleLegacyDebits(t *testing.T) {
	if testing.Short() {
		t.Skip("embedded pipeline")
	}
	p := settlement.DefaultPolicy()
	p.DebitRedemptions = true
	env := settletest.StartWith(t, settletest.Options{Policy: p}, "acme")
	env.Fund("alice", 100)
	env.PutItem("acme", "mug", 10, nil)
	env.WaitBalance("alice", 100)
	got := &received{}
	start(t, env, "acme", false, &partner.MemStore{}, got)
	var outs []kafka.Output
	var ids []string
	for n := range 3 {
		rq := avro.RedemptionRequest{IdempotencyKey: fmt.Sprintf("k%d", n), Owner: "alice", Partner: "acme", ItemID: "mug", Quantity: 1, RequestedMs: time.Now()}
		v, err := env.Serde.Marshal(&rq)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, kafka.Output{Topic: pipelines.TopicRedemptions, Key: []byte("alice"), Value: v})
		ids = append(ids, settlement.RedemptionID("alice", rq.IdempotencyKey))
	}
	kafkatest.Produce(t, env.Brokers, outs...)
	for _, id := range ids {
		env.Wait(30*time.Second, func() bool { r, ok := env.Redemption(id); return ok && r.Status == settlement.StatusFulfilled },
			func() string {
				r, _ := env.Redemption(id)
				return fmt.Sprintf("order %s: %s %s", id, r.Status, r.Reason)
			})
	}
	got.mu.Lock()
	defer got.mu.Unlock()
	if len(got.orders) != 3 || len(got.errs) != 0 {
		t.Fatalf("%d orders, errors %v", len(got.orders), got.errs)
	}
	if a := env.Account("alice"); a.Balance != 70 || a.Reserved != 0 || env.Account(settlement.PartnerAccount("acme")).Balance != 0 {
		t.Errorf("alice %+v, acme %+v: want 70 burned-from balance, nothing in acme's account", a, env.Account(settlement.PartnerAccount("acme")))
	}
	o := got.orders[0]
	if err := partner.VerifyOrder(o, "acme", env.LedgerPub); err != nil {
		t.Fatalf("debit order: %v", err)
	}
	if d, err := partner.HoldDeadline(o); err != nil || !d.IsZero() {
		t.Errorf("debit order deadline %v %v, want none", d, err)
	}
	o.ItemID = "pen"
	if err := partner.VerifyOrder(o, "acme", env.LedgerPub); err == nil {
		t.Error("debit order with another item verified")
	}
}
