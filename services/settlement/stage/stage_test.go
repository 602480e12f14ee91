package stage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/pseudonym"
	"github.com/minecart/minecart/services/settlement"
	"github.com/minecart/minecart/services/settlement/api"
	"github.com/minecart/minecart/services/settlement/settletest"
	"github.com/minecart/minecart/services/settlement/stage"
	"github.com/minecart/minecart/services/shred"
)

// TestConcurrentRedemptions sends 1,000 redemptions (plus 200 retries of
// the same idempotency keys) from 64 clients through two HTTP replicas
// against balances that cover only some of them, restarts settlement in
// the middle, and checks the outcome against what the balances allow:
// never negative, every accepted one debited exactly once on the ledger,
// every rejected one released.
func TestConcurrentRedemptions(t *testing.T) {
	if testing.Short() {
		t.Skip("embedded pipeline")
	}
	env := settletest.Start(t, "acme", "zeta")
	const (
		owners   = 50
		perOwner = 20
		price    = 10
		stock    = 7
	)
	// Owner i can pay for want(i) mugs: 0..29 (some fewer than asked, some more).
	want := func(i int) int { return min(perOwner, i%30) }
	funds := func(i int) int64 { return int64(price*(i%30) + 5) }
	for i := range owners {
		env.Fund(fmt.Sprintf("o%02d", i), funds(i))
	}
	env.Fund("rich", 1_000_000)
	env.PutItem("acme", "mug", price, nil)
	env.PutItem("zeta", "pen", price, ptr(int64(stock)))
	for i := range owners {
		env.WaitBalance(fmt.Sprintf("o%02d", i), funds(i))
	}
	env.WaitBalance("rich", 1_000_000)

	type job struct {
		key  string
		body api.RedemptionBody
	}
	var jobs []job
	for n := range owners * perOwner {
		o := fmt.Sprintf("o%02d", n%owners)
		jobs = append(jobs, job{fmt.Sprintf("k%04d", n), api.RedemptionBody{Owner: o, Partner: "acme", ItemID: "mug", Quantity: 1}})
	}
	for n := range 40 { // 40 asks for 7 pens
		jobs = append(jobs, job{fmt.Sprintf("pen%02d", n), api.RedemptionBody{Owner: "rich", Partner: "zeta", ItemID: "pen", Quantity: 1}})
	}
	retries := jobs[:200]
	srvs := []*httptest.Server{env.API(2 * time.Second), env.API(2 * time.Second)}

	work := make(chan job)
	var (
		wg      sync.WaitGroup
		sent    atomic.Int64
		restart sync.Once
		errs    = make(chan error, len(jobs))
	)
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				code, _, err := settletest.Post(srvs[w%2], j.key, j.body)
				if err == nil && code != http.StatusCreated && code != http.StatusAccepted {
					err = fmt.Errorf("%s: HTTP %d", j.key, code)
				}
				if err != nil {
					errs <- err
				}
				if sent.Add(1) == int64(len(jobs)/2) {
					restart.Do(func() { // settlement restarts while requests keep coming
						env.StopSettlement()
						env.StartSettlement()
					})
				}
			}
		}()
	}
	for _, j := range append(jobs, retries...) {
		work <- j
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	ids := map[string]api.RedemptionBody{}
	for _, j := range jobs {
		ids[settlement.RedemptionID(j.body.Owner, j.key)] = j.body
	}
	env.Wait(60*time.Second, func() bool {
		for id := range ids {
			if r, ok := env.Redemption(id); !ok || r.Status == settlement.StatusPending {
				return false
			}
		}
		return true
	}, func() string {
		missing, pending := 0, 0
		for id := range ids {
			if r, ok := env.Redemption(id); !ok {
				missing++
			} else if r.Status == settlement.StatusPending {
				pending++
			}
		}
		return fmt.Sprintf("of %d redemptions, %d unknown to settlement, %d pending", len(ids), missing, pending)
	})

	confirmed := map[string]int{}
	for id, b := range ids {
		r, _ := env.Redemption(id)
		switch r.Status {
		case settlement.StatusConfirmed:
			confirmed[b.Owner]++
		case settlement.StatusRejected:
			if want := map[string]string{"mug": settlement.ReasonInsufficient, "pen": settlement.ReasonOutOfStock}[b.ItemID]; r.Reason != want {
				t.Errorf("redemption %s rejected for %q, want %q", id, r.Reason, want)
			}
		default:
			t.Errorf("redemption %s: status %s", id, r.Status)
		}
	}
	total := 0
	for i := range owners {
		o := fmt.Sprintf("o%02d", i)
		a := env.Account(o)
		// A confirmed redemption's points are held (reserved) until the
		// partner's ack: never more than the balance.
		if confirmed[o] != want(i) || a.Balance != funds(i) || a.Reserved != int64(price*want(i)) || a.Available() < 0 {
			t.Errorf("%s: %d confirmed, balance %d, reserved %d; want %d, %d, %d", o, confirmed[o], a.Balance, a.Reserved, want(i), funds(i), price*want(i))
		}
		total += confirmed[o]
	}
	if confirmed["rich"] != stock {
		t.Errorf("%d pens sold, stock was %d", confirmed["rich"], stock)
	}
	if a := env.Account("rich"); a.Balance != 1_000_000 || a.Reserved != price*stock {
		t.Errorf("rich: %+v", a)
	}

	// The ledger's own record: one hold entry per confirmed redemption.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	entries, err := kafkatest.ReadCommitted(ctx, env.Brokers, pipelines.TopicLedgerEntries)
	if err != nil {
		t.Fatal(err)
	}
	holds := map[string]int{}
	for _, rec := range entries {
		var e avro.LedgerEntry
		if err := env.Serde.Unmarshal(rec.Value, &e); err != nil {
			t.Fatal(err)
		}
		if e.Kind == avro.EntryKindTransfer {
			holds[e.ID]++
		}
	}
	n := 0
	for id, b := range ids {
		r, _ := env.Redemption(id)
		hold := settlement.RedemptionHoldID(id, b.Partner, b.ItemID, b.Quantity, price*int64(b.Quantity))
		switch d := holds[hold]; {
		case r.Status == settlement.StatusConfirmed && d != 1:
			t.Errorf("confirmed redemption %s has %d hold entries", id, d)
		case r.Status != settlement.StatusConfirmed && d != 0:
			t.Errorf("%s redemption %s has %d hold entries", r.Status, id, d)
		}
		n += holds[hold]
	}
	if n != total+stock || len(holds) != n {
		t.Errorf("%d hold entries for %d confirmed redemptions (%d ids)", n, total+stock, len(holds))
	}
	t.Logf("%d requests + %d retries: %d confirmed (%d mugs, %d pens), %d rejected; %d hold entries",
		len(jobs), len(retries), total+stock, total, stock, len(jobs)-total-stock, n)
}

func ptr[T any](v T) *T { return &v }

// clock is a test clock the stage's ticks read.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.now = t }

// TestStatementsOnTopic: with the stage's clock moved two days on, the
// statements land on the statements topic with the days' figures and the
// invariant checked.
func TestStatementsOnTopic(t *testing.T) {
	if testing.Short() {
		t.Skip("embedded pipeline")
	}
	now := time.Now().UTC()
	clk := &clock{now: now}
	// Redemptions paid by kind-2 debits (burned: the statement's
	// redeemed); holds' statements: TestRedemptionHolds and the book's.
	legacy := settlement.DefaultPolicy()
	legacy.DebitRedemptions = true
	env := settletest.StartWith(t, settletest.Options{Now: clk.Now, Policy: legacy}, "acme")
	env.Bind("v1", "alice")
	env.Credit("v1", "2026-11-01", 120)
	env.Fund("bob", 50)
	env.PutItem("acme", "mug", 30, nil)
	env.WaitBalance("alice", 120)
	env.WaitBalance("bob", 50)
	srv := env.API(2 * time.Second)
	if code, r, err := settletest.Post(srv, "k1", api.RedemptionBody{Owner: "alice", Partner: "acme", ItemID: "mug", Quantity: 2}); err != nil || code != http.StatusCreated || r.Status != settlement.StatusConfirmed {
		t.Fatalf("redeem: %d %+v %v", code, r, err)
	}
	env.WaitBalance("alice", 60)
	clk.Set(now.Add(48 * time.Hour))
	var sts []avro.Statement
	env.Wait(30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		recs, err := kafkatest.ReadCommitted(ctx, env.Brokers, pipelines.TopicStatements)
		if err != nil {
			t.Fatal(err)
		}
		sts = sts[:0]
		for _, r := range recs {
			var s avro.Statement
			if err := env.Serde.Unmarshal(r.Value, &s); err != nil {
				t.Fatal(err)
			}
			sts = append(sts, s)
		}
		return len(sts) > 0 && sts[len(sts)-1].Day >= now.Add(24*time.Hour).Format(time.DateOnly)
	}, func() string { return fmt.Sprintf("statements %+v", sts) })
	var minted, redeemed int64
	var acme avro.PartnerTotal
	for _, s := range sts {
		// Days before the stage's first tick (the credit's block is dated
		// by its window end, 2026-11-02) may be closed before the
		// redemption: each statement checks the book as it was at its close.
		if !s.InvariantOk || s.BalanceSum != s.Expected {
			t.Errorf("statement %+v: invariant", s)
		}
		minted += s.Minted
		redeemed += s.Redeemed
		for _, p := range s.Partners {
			acme.Redemptions += p.Redemptions
			acme.Points += p.Points
		}
	}
	last := sts[len(sts)-1]
	if minted != 170 || redeemed != 60 || last.Outstanding != 110 || last.BalanceSum != 110 || acme.Redemptions != 1 || acme.Points != 60 {
		t.Errorf("statements: minted %d redeemed %d outstanding %d acme %+v; want 170 60 110 {1 60}", minted, redeemed, last.Outstanding, acme)
	}
	t.Logf("%d statements, last %+v", len(sts), last)
}

// TestBadInput: records settlement cannot use are dead-lettered with their
// reason, and the good records beside them are processed.
func TestBadInput(t *testing.T) {
	if testing.Short() {
		t.Skip("embedded pipeline")
	}
	env := settletest.Start(t, "acme")
	env.Fund("alice", 100)
	env.PutItem("acme", "mug", 30, nil)
	env.WaitBalance("alice", 100)
	ack, err := env.Serde.Marshal(&avro.PartnerAck{RedemptionID: "nope", Partner: "acme", Status: avro.AckStatusFulfilled, AckedMs: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	good, err := env.Serde.Marshal(&avro.RedemptionRequest{IdempotencyKey: "k1", Owner: "alice", Partner: "acme", ItemID: "mug", Quantity: 1, RequestedMs: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	other, err := env.Serde.Marshal(&avro.RedemptionRequest{IdempotencyKey: "k1", Owner: "alice", Partner: "acme", ItemID: "mug", Quantity: 2, RequestedMs: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	kafkatest.Produce(t, env.Brokers,
		kafka.Output{Topic: pipelines.TopicRedemptions, Key: []byte("alice"), Value: []byte("not avro")},
		kafka.Output{Topic: pipelines.TopicRedemptions, Key: []byte("alice"), Value: good},
		kafka.Output{Topic: pipelines.TopicRedemptions, Key: []byte("alice"), Value: other},
		kafka.Output{Topic: pipelines.TopicPartnerAcks, Key: []byte("nope"), Value: ack},
	)
	dl := kafkatest.WaitRecords(t, env.Brokers, pipelines.TopicDeadLetter, 3, 30*time.Second)
	codes := map[string]int{}
	for _, r := range dl {
		var d avro.DeadLetter
		if err := env.Serde.Unmarshal(r.Value, &d); err != nil {
			t.Fatal(err)
		}
		if d.Stage == stage.Name {
			codes[d.ReasonCode+" "+d.SourceTopic]++
		}
	}
	want := map[string]int{"decode " + pipelines.TopicRedemptions: 1, "bad_input " + pipelines.TopicRedemptions: 1, "bad_input " + pipelines.TopicPartnerAcks: 1}
	if !reflect.DeepEqual(codes, want) {
		t.Errorf("dead letters %v, want %v", codes, want)
	}
	// The good request beside them: its hold confirmed, 30 points held.
	env.Wait(30*time.Second, func() bool {
		r, _ := env.Redemption(settlement.RedemptionID("alice", "k1"))
		a := env.Account("alice")
		return r.Status == settlement.StatusConfirmed && a.Balance == 100 && a.Reserved == 30
	}, func() string { return fmt.Sprintf("good request: alice %+v", env.Account("alice")) })

	// A cosigned checkpoint record among the entries (the publisher's,
	// docs/ledger.md): skipped by its header, never dead-lettered; the
	// entry after it settles.
	kafkatest.Produce(t, env.Brokers, kafka.Output{Topic: pipelines.TopicLedgerEntries, Key: pipelines.PartnerCheckpointKey(2),
		Value: []byte("minecart/ledger\n2\nroot\n\n— minecart/ledger sig\n"), Headers: pipelines.PartnerCheckpointHeaders(2)})
	env.Fund("bob", 7)
	env.WaitBalance("bob", 7)
	recs, err := kafkatest.ReadCommitted(context.Background(), env.Brokers, pipelines.TopicDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		var d avro.DeadLetter
		if err := env.Serde.Unmarshal(r.Value, &d); err != nil {
			t.Fatal(err)
		}
		if d.SourceTopic == pipelines.TopicLedgerEntries {
			t.Errorf("dead letter of the entries topic: %s %s: %s", d.Stage, d.ReasonCode, d.Error)
		}
	}
}

// TestLedgerTimeout: with the ledger down, a redemption's reservation is
// released after the debit timeout (stage clock); when the ledger comes
// back and appends the hold anyway, settlement voids it: the points are
// never taken and no order goes out.
func TestLedgerTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("embedded pipeline")
	}
	now := time.Now().UTC()
	clk := &clock{now: now}
	env := settletest.StartWith(t, settletest.Options{Now: clk.Now}, "acme")
	env.Fund("alice", 100)
	env.PutItem("acme", "mug", 30, nil)
	env.WaitBalance("alice", 100)
	env.StopLedger()
	srv := env.API(2 * time.Second)
	id := settlement.RedemptionID("alice", "k1")
	if code, r, err := settletest.Post(srv, "k1", api.RedemptionBody{Owner: "alice", Partner: "acme", ItemID: "mug", Quantity: 1}); err != nil || code != http.StatusAccepted || r.Status != settlement.StatusPending {
		t.Fatalf("redeem with the ledger down: %d %+v %v", code, r, err)
	}
	if a := env.Account("alice"); a.Reserved != 30 {
		t.Fatalf("reserved %d, want 30", a.Reserved)
	}
	clk.Set(time.Now().Add(settlement.DefaultPolicy().DebitTimeout + time.Second))
	env.Wait(30*time.Second, func() bool { r, _ := env.Redemption(id); return r.Status == settlement.StatusRejected },
		func() string { r, _ := env.Redemption(id); return "status " + string(r.Status) })
	if r, _ := env.Redemption(id); r.Reason != settlement.ReasonLedgerTimeout {
		t.Errorf("reason %q, want %q", r.Reason, settlement.ReasonLedgerTimeout)
	}
	if a := env.Account("alice"); a.Reserved != 0 || a.Balance != 100 {
		t.Errorf("after timeout: %+v", a)
	}
	// The ledger comes back and appends the hold settlement gave up on:
	// settlement voids it (a hold, unlike a debit, can be undone), the
	// points are never taken and no order goes out.
	env.StartLedger()
	hold := settlement.RedemptionHoldID(id, "acme", "mug", 1, 30)
	env.Wait(30*time.Second, func() bool { x, _, _ := settlement.ReadTransfer(env.State, hold); return x.Resolved },
		func() string {
			x, _, _ := settlement.ReadTransfer(env.State, hold)
			return fmt.Sprintf("late hold: %+v", x)
		})
	if x, _, _ := settlement.ReadTransfer(env.State, hold); x.Pending != settlement.PendingVoided {
		t.Errorf("late hold %s, want voided", x.Pending)
	}
	if r, _ := env.Redemption(id); r.Status != settlement.StatusRejected || r.Reason != settlement.ReasonLedgerTimeout {
		t.Errorf("after the late hold: %s %s", r.Status, r.Reason)
	}
	if a := env.Account("alice"); a.Reserved != 0 || a.Balance != 100 {
		t.Errorf("after the late hold's void: %+v", a)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if orders, err := kafkatest.ReadCommitted(ctx, env.Brokers, pipelines.PartnerRedemptionsTopic("acme")); err != nil || len(orders) != 0 {
		t.Errorf("orders to acme: %d (%v), want none", len(orders), err)
	}
}

// TestRedemptionHolds runs redemptions as holds through the real ledger
// and settlement stages on the broker: a fulfilled one is posted (the
// balance goes down once, to the partner's account), a refused one voided
// and one nobody answers expired by ledger time (balances restored), a
// late ack refused; acks are sent while settlement is down and sent again
// after each restart, and every hold resolves exactly once (one resolving
// entry each in the ledger).
func TestRedemptionHolds(t *testing.T) {
	if testing.Short() {
		t.Skip("embedded pipeline")
	}
	now := time.Now().UTC()
	clk := &clock{now: now}
	policy := settlement.DefaultPolicy()
	policy.FulfilTimeout = 10 * time.Minute
	env := settletest.StartWith(t, settletest.Options{Now: clk.Now, Policy: policy}, "acme")
	env.Fund("alice", 100)
	env.PutItem("acme", "mug", 30, nil)
	env.WaitBalance("alice", 100)
	srv := env.API(30 * time.Second)
	ids := map[string]string{}
	for _, k := range []string{"fulfil", "refuse", "silent"} {
		code, r, err := settletest.Post(srv, k, api.RedemptionBody{Owner: "alice", Partner: "acme", ItemID: "mug", Quantity: 1})
		if err != nil || code != http.StatusCreated || r.Status != settlement.StatusConfirmed {
			t.Fatalf("redeem %s: %d %+v %v", k, code, r, err)
		}
		ids[k] = settlement.RedemptionID("alice", k)
	}
	if a := env.Account("alice"); a.Balance != 100 || a.Reserved != 90 {
		t.Fatalf("three holds: %+v, want balance 100 reserved 90", a)
	}
	orders := kafkatest.WaitRecords(t, env.Brokers, pipelines.PartnerRedemptionsTopic("acme"), 3, 10*time.Second)
	for _, rec := range orders {
		var o avro.Redemption
		if err := env.Serde.Unmarshal(rec.Value, &o); err != nil || o.Debit == nil {
			t.Fatalf("order: %+v %v", o, err)
		}
	}
	ack := func(id string, st avro.AckStatus) kafka.Output {
		v, err := env.Serde.Marshal(&avro.PartnerAck{RedemptionID: id, Partner: "acme", Status: st, Reference: "ref-" + id,
			Reason: "out of mugs", AckedMs: clk.Now()})
		if err != nil {
			t.Fatal(err)
		}
		return kafka.Output{Topic: pipelines.TopicPartnerAcks, Key: []byte(id), Value: v}
	}
	acks := []kafka.Output{ack(ids["fulfil"], avro.AckStatusFulfilled), ack(ids["refuse"], avro.AckStatusFailed)}
	env.StopSettlement()
	kafkatest.Produce(t, env.Brokers, acks...)
	env.StartSettlement()
	env.Wait(30*time.Second, func() bool { a := env.Account("alice"); return a.Balance == 70 && a.Reserved == 30 },
		func() string { return fmt.Sprintf("after post and void: %+v", env.Account("alice")) })
	env.StopSettlement()
	kafkatest.Produce(t, env.Brokers, acks...) // redelivered acks
	env.StartSettlement()
	// No answer for "silent": settlement's clock passes the deadline, the
	// expiry is requested and the ledger stamps it at the deadline.
	clk.Set(now.Add(policy.FulfilTimeout + time.Minute))
	env.Wait(30*time.Second, func() bool { a := env.Account("alice"); return a.Balance == 70 && a.Reserved == 0 },
		func() string { return fmt.Sprintf("after the expiry: %+v", env.Account("alice")) })
	env.StopSettlement()
	kafkatest.Produce(t, env.Brokers, ack(ids["silent"], avro.AckStatusFulfilled)) // too late
	env.StartSettlement()
	for k, want := range map[string]settlement.Status{"fulfil": settlement.StatusFulfilled, "refuse": settlement.StatusFailed, "silent": settlement.StatusRejected} {
		id := ids[k]
		env.Wait(30*time.Second, func() bool { r, _ := env.Redemption(id); return r.Status == want },
			func() string { r, _ := env.Redemption(id); return k + ": " + string(r.Status) })
	}
	if r, _ := env.Redemption(ids["silent"]); r.Reason != settlement.ReasonPartnerTimeout {
		t.Errorf("silent: reason %q", r.Reason)
	}
	// The late ack changed nothing: a redemption after it, acked after
	// it on the same one-partition topic, is fulfilled, so settlement has
	// passed the late ack. Settlement's clock first goes back to the wall
	// time the ledger stamps: left 11 minutes ahead, it would expire the
	// next hold (deadline = its ledger stamp + 10 minutes) at its first
	// tick, before the ack below could arrive on a slow machine.
	clk.Set(time.Now().UTC())
	code, r, err := settletest.Post(srv, "after", api.RedemptionBody{Owner: "alice", Partner: "acme", ItemID: "mug", Quantity: 1})
	if err != nil || code != http.StatusCreated || r.Status != settlement.StatusConfirmed {
		t.Fatalf("redeem after: %d %+v %v", code, r, err)
	}
	ids["after"] = settlement.RedemptionID("alice", "after")
	kafkatest.Produce(t, env.Brokers, ack(ids["after"], avro.AckStatusFulfilled))
	env.Wait(30*time.Second, func() bool { a := env.Account("alice"); return a.Balance == 40 && a.Reserved == 0 },
		func() string { return fmt.Sprintf("after the last post: %+v", env.Account("alice")) })
	if r, _ := env.Redemption(ids["silent"]); r.Status != settlement.StatusRejected {
		t.Errorf("silent after its late ack: %s", r.Status)
	}
	if a := env.Account(settlement.PartnerAccount("acme")); a.Balance != 60 {
		t.Errorf("acme after everything: %+v, want 60", a)
	}
	// Exactly once in the ledger: per hold one hold entry and one resolving
	// entry (post, void, expiry), whatever was replayed.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	recs, err := kafkatest.ReadCommitted(ctx, env.Brokers, pipelines.TopicLedgerEntries)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, rec := range recs {
		var e avro.LedgerEntry
		if err := env.Serde.Unmarshal(rec.Value, &e); err != nil {
			t.Fatal(err)
		}
		count[string(e.Kind)]++
		if e.Kind == avro.EntryKindTransfer {
			count[e.ID]++
		}
	}
	if count["transfer"] != 8 || count["adjustment"] != 1 {
		t.Errorf("ledger entries by kind %v, want 8 transfers and 1 adjustment", count)
	}
	for k, id := range ids {
		hold := settlement.RedemptionHoldID(id, "acme", "mug", 1, 30)
		x, _, _ := settlement.ReadTransfer(env.State, hold)
		if count[hold] != 1 || !x.Resolved || count[x.ResolvedBy] != 1 {
			t.Errorf("%s: hold %s entered %d times, resolved by %s (%d entries)", k, hold, count[hold], x.ResolvedBy, count[x.ResolvedBy])
		}
	}
}

// TestSealedStatus: with SealStatus every redemption status of an owner
// whose account has a key leaves sealed for that account (record key =
// its pseudonym, neither key nor value naming the owner) and opens to the
// clear status; the status of an account without a key (a rejection) is
// written in clear with owner, customer and idempotency key emptied, under its redemption
// id; once the account's key is tombstoned on the pseudonyms topic (an
// erasure), its statuses are shredded: the reader skips them, not bad.
func TestSealedStatus(t *testing.T) {
	if testing.Short() {
		t.Skip("embedded pipeline")
	}
	env := settletest.StartWith(t, settletest.Options{SealStatus: true}, "acme")
	env.Fund("alice", 100)
	env.PutItem("acme", "mug", 30, nil)
	env.WaitBalance("alice", 100)
	var outs []kafka.Output
	for _, rq := range []avro.RedemptionRequest{
		{IdempotencyKey: "k1", Owner: "alice", Partner: "acme", ItemID: "mug", Quantity: 1, Customer: "alice-at-acme", RequestedMs: time.Now()},
		{IdempotencyKey: "k2", Owner: "carol", Partner: "acme", ItemID: "mug", Quantity: 1, Customer: "carol-at-acme", RequestedMs: time.Now()},
	} {
		v, err := env.Serde.Marshal(&rq)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, kafka.Output{Topic: pipelines.TopicRedemptions, Key: []byte(rq.Owner), Value: v})
	}
	kafkatest.Produce(t, env.Brokers, outs...)
	alice, carol := settlement.RedemptionID("alice", "k1"), settlement.RedemptionID("carol", "k2")
	env.Wait(30*time.Second, func() bool {
		a, _ := env.Redemption(alice)
		c, _ := env.Redemption(carol)
		return a.Status == settlement.StatusConfirmed && c.Status == settlement.StatusRejected
	}, func() string {
		a, _ := env.Redemption(alice)
		c, _ := env.Redemption(carol)
		return fmt.Sprintf("alice %s, carol %s", a.Status, c.Status)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o, err := env.Pseudonyms.Lookup(ctx, pseudonym.Account, "alice")
	if err != nil {
		t.Fatal(err)
	}
	rd := &shred.Reader{Keys: env.Pseudonyms, Serde: env.Serde}
	read := func() (opened map[string][]avro.Redemption, anonymous []avro.Redemption, shredded int) {
		recs, err := kafkatest.ReadCommitted(ctx, env.Brokers, pipelines.TopicRedemptionStatus)
		if err != nil {
			t.Fatal(err)
		}
		opened = map[string][]avro.Redemption{}
		for _, r := range recs {
			for _, who := range []string{"alice", "carol"} {
				if bytes.Contains(r.Key, []byte(who)) || bytes.Contains(r.Value, []byte(who)) {
					t.Fatalf("status offset %d names %s in clear: key %q", r.Offset, who, r.Key)
				}
			}
			op, inner, sealed, err := rd.Unseal(ctx, r.Topic, r.Key, r.Value)
			if errors.Is(err, shred.ErrShredded) {
				shredded++
				continue
			} else if err != nil {
				t.Fatalf("status offset %d: %v", r.Offset, err)
			}
			var x avro.Redemption
			if err := env.Serde.Unmarshal(inner, &x); err != nil {
				t.Fatalf("status offset %d: %v", r.Offset, err)
			}
			if !sealed {
				if x.Owner != "" || x.Customer != "" || x.IdempotencyKey != "" || string(r.Key) != x.RedemptionID {
					t.Fatalf("clear status offset %d: key %q, %+v", r.Offset, r.Key, x)
				}
				anonymous = append(anonymous, x)
				continue
			}
			if string(r.Key) != o.Pseudonym || op.ID != x.Owner {
				t.Fatalf("sealed status offset %d under %q (alice is %s) opens for %q: %+v", r.Offset, r.Key, o.Pseudonym, op.ID, x)
			}
			opened[x.Owner] = append(opened[x.Owner], x)
		}
		return opened, anonymous, shredded
	}
	opened, anonymous, shredded := read()
	if len(opened["alice"]) < 2 || len(opened) != 1 || shredded != 0 {
		t.Fatalf("sealed statuses %v, shredded %d", opened, shredded)
	}
	for _, x := range opened["alice"] {
		if x.RedemptionID != alice || x.Customer != "alice-at-acme" {
			t.Fatalf("alice's status %+v", x)
		}
	}
	if last := opened["alice"][len(opened["alice"])-1]; last.Status != avro.RedemptionStatusConfirmed {
		t.Fatalf("alice's last status %s", last.Status)
	}
	if len(anonymous) != 1 || anonymous[0].RedemptionID != carol || anonymous[0].Status != avro.RedemptionStatusRejected {
		t.Fatalf("anonymous statuses %+v", anonymous)
	}

	// The erasure's tombstone: alice's statuses are shredded.
	kafkatest.Produce(t, env.Brokers, kafka.Output{Topic: pipelines.TopicLedgerPseudonyms, Key: []byte(o.Pseudonym)})
	if err := env.Pseudonyms.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	opened2, anonymous2, shredded2 := read()
	if len(opened2) != 0 || shredded2 != len(opened["alice"]) || len(anonymous2) != 1 {
		t.Fatalf("after the tombstone: opened %v, shredded %d of %d, anonymous %d", opened2, shredded2, len(opened["alice"]), len(anonymous2))
	}
}
