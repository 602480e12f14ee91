// Package settletest runs the settlement stage with the real ledger stage
// on an embedded broker, for the tests of settlement and of the partner
// example: fund and bind accounts, publish catalog items, wait for state.
package settletest

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ledger/blocks"
	"github.com/minecart/minecart/services/ledger/stage"
	"github.com/minecart/minecart/services/settlement"
)

// Env is a running ledger + settlement pipeline on an embedded broker.
type Env struct {
	T         testing.TB
	Brokers   []string
	Serde     *schemas.Serde
	Cfg       kafka.Config
	Producer  *kafka.Producer
	State     *kafka.Table // settlement's changelog
	LedgerPub ed25519.PublicKey
	Origin    string
	Codec     settlement.Codec

	stopSettlement func()
	stopLedger     func()
	ledgerCfg      stage.Config
	tick           time.Duration
	policy         settlement.Policy
}

// StartLedger (re)starts the ledger stage (same key and origin).
func (e *Env) StartLedger() {
	e.T.Helper()
	st, err := stage.NewStage(e.ledgerCfg)
	if err != nil {
		e.T.Fatal(err)
	}
	e.stopLedger = kafkatest.Run(e.T, e.Cfg, st)
}

// StopLedger stops the ledger stage.
func (e *Env) StopLedger() { e.stopLedger() }

// Options change the environment.
type Options struct {
	// Now is the settlement stage's clock (ticks: timeouts, day closes);
	// default time.Now.
	Now func() time.Time
	// Policy is settlement's policy (default settlement.DefaultPolicy()).
	Policy settlement.Policy
	// ClientOptions are given to every client of the stages and helpers
	// (SASL for a broker with ACLs).
	ClientOptions []kgo.Opt
}

// Start starts a broker with the partners' topics, the ledger stage and
// the settlement stage.
func Start(t testing.TB, partners ...string) *Env {
	t.Helper()
	return StartWith(t, Options{}, partners...)
}

// StartWith is Start with options.
func StartWith(t testing.TB, o Options, partners ...string) *Env {
	t.Helper()
	var extra []pipelines.TopicSpec
	for _, p := range partners {
		extra = append(extra, settlement.PartnerTopics(p)...)
	}
	brokers := kafkatest.Broker(t, extra...)
	return StartOn(t, brokers, o)
}

// StartOn starts the ledger and settlement stages on existing brokers.
func StartOn(t testing.TB, brokers []string, o Options) *Env {
	t.Helper()
	serde := schemas.SingleObject()
	cfg := kafkatest.Config(brokers)
	cfg.Serde = serde
	cfg.Now = o.Now
	cfg.ClientOptions = o.ClientOptions
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{T: t, Brokers: brokers, Serde: serde, Cfg: cfg, LedgerPub: pub, Origin: "minecart/test-ledger",
		Codec: settlement.NewCodec(serde), tick: 250 * time.Millisecond, policy: o.Policy}
	published, err := blocks.New(blocks.Config{Kafka: cfg})
	if err != nil {
		t.Fatal(err)
	}
	e.ledgerCfg = stage.Config{Key: priv, Origin: e.Origin, Serde: serde, Blocks: published, Logger: cfg.Logger}
	e.StartLedger()
	e.Producer, err = kafka.NewProducer(kafka.Config{Brokers: brokers, Logger: cfg.Logger, ClientOptions: o.ClientOptions})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Producer.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	e.State, err = kafka.NewTable(ctx, cfg, pipelines.TopicSettlementLog)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = e.State.Close()
	})
	e.StartSettlement()
	return e
}

// StartSettlement (re)starts the settlement stage.
func (e *Env) StartSettlement() {
	e.T.Helper()
	st := settlement.NewStage(settlement.Config{Serde: e.Serde, Logger: e.Cfg.Logger, TickEvery: e.tick, Policy: e.policy,
		EnsurePartner: settlement.PartnerTopicsEnsurer(e.Cfg)})
	e.stopSettlement = kafkatest.Run(e.T, e.Cfg, st)
}

// StopSettlement stops the settlement stage (it commits what it did).
func (e *Env) StopSettlement() { e.stopSettlement() }

func (e *Env) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

// Fund asks the ledger for an adjustment of points to owner's account.
func (e *Env) Fund(owner string, points int64) {
	e.T.Helper()
	v, err := e.Serde.Marshal(&avro.DebitRequest{
		RequestID: "fund/" + owner, Kind: avro.RequestKindAdjustment, Account: owner, Amount: points, Reason: "test funding",
		RequestedAt: time.Now().UTC().Truncate(time.Millisecond),
	})
	if err != nil {
		e.T.Fatal(err)
	}
	ctx, cancel := e.ctx()
	defer cancel()
	if err := e.Producer.ProduceSync(ctx, pipelines.TopicLedgerRequests, []byte(owner), v); err != nil {
		e.T.Fatal(err)
	}
}

// Credit writes a vehicle's DailyScore for date (UTC) and the watermark that
// lets the ledger credit it.
func (e *Env) Credit(vehicle, date string, points int64) {
	e.T.Helper()
	day, err := time.Parse(time.DateOnly, date)
	if err != nil {
		e.T.Fatal(err)
	}
	end := day.Add(24 * time.Hour)
	score, err := e.Serde.Encode(schemas.DailyScore, map[string]any{
		"id": vehicle + "/" + date, "vehicle_id": vehicle, "device_id": "d-" + vehicle, "date": date, "tz": "UTC",
		"window_start": day, "window_end": end, "config_version": "test", "distance_km": 12.5, "gps_km": 12.5,
		"odometer_km": 12.4, "driving_s": int64(1800), "harsh_brake": int32(0), "harsh_accel": int32(0),
		"harsh_corner": int32(0), "speeding_s": int64(0), "night_s": int64(0), "fatigue_events": int32(0),
		"events": int64(100), "late_events": nil, "gps_jumps": int32(0), "hdop_rejected": int64(0),
		"odometer_rollbacks": int32(0), "score": 90.0, "points": points, "flags": []any{}, "flag_reasons": []any{},
		"events_hash": make([]byte, 32),
	})
	if err != nil {
		e.T.Fatal(err)
	}
	wm, err := e.Serde.Encode(schemas.Watermark, map[string]any{"task": int32(0), "tasks": int32(1), "closed_through_ms": end})
	if err != nil {
		e.T.Fatal(err)
	}
	ctx, cancel := e.ctx()
	defer cancel()
	err = e.Producer.ProduceBatch(ctx, []kafka.Output{
		{Topic: pipelines.TopicScores, Key: []byte(vehicle), Value: score},
		{Topic: pipelines.TopicScores, Key: []byte("wm/0"), Value: wm},
	})
	if err != nil {
		e.T.Fatal(err)
	}
}

// Bind binds vehicle to owner.
func (e *Env) Bind(vehicle, owner string) {
	e.T.Helper()
	ctx, cancel := e.ctx()
	defer cancel()
	if err := settlement.BindVehicle(ctx, e.Producer, e.Serde, vehicle, owner, time.Now()); err != nil {
		e.T.Fatal(err)
	}
}

// PutItem publishes a catalog item.
func (e *Env) PutItem(partner, item string, price int64, stock *int64) {
	e.T.Helper()
	ctx, cancel := e.ctx()
	defer cancel()
	it := settlement.CatalogItem{Partner: partner, ItemID: item, Title: item, PricePoints: price, Stock: stock, Active: true}
	if err := settlement.PutCatalogItemWith(ctx, e.Producer, e.Serde, it, settlement.PartnerTopicsEnsurer(e.Cfg)); err != nil {
		e.T.Fatal(err)
	}
	// Settlement reads the catalog and the requests as two topics: wait
	// until it took the item in before any request can name it.
	e.Wait(30*time.Second, func() bool { _, ok := e.State.Get(settlement.ItemStateKey(partner, item)); return ok },
		func() string { return "catalog item " + partner + "/" + item + " not taken in" })
}

// Account reads an account's state from the changelog.
func (e *Env) Account(id string) settlement.Account {
	v, ok := e.State.Get(settlement.AccountKey(id))
	if !ok || v == nil {
		return settlement.Account{ID: id}
	}
	a, err := settlement.DecodeAccount(v)
	if err != nil {
		e.T.Fatal(err)
	}
	return a
}

// Redemption reads a redemption's state from the changelog.
func (e *Env) Redemption(id string) (settlement.Redemption, bool) {
	v, ok := e.State.Get(settlement.RedemptionKey(id))
	if !ok || v == nil {
		return settlement.Redemption{}, false
	}
	r, err := settlement.DecodeRedemption(v)
	if err != nil {
		e.T.Fatal(err)
	}
	return r, true
}

// Wait polls cond until it holds or timeout passes; then it fails the
// test with what(), which says what was still missing.
func (e *Env) Wait(timeout time.Duration, cond func() bool, what func() string) {
	e.T.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			e.T.Fatalf("timed out after %v: %s (%s)", timeout, what(), e.topicSizes())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *Env) topicSizes() string {
	ctx, cancel := e.ctx()
	defer cancel()
	var s string
	for _, tp := range []string{pipelines.TopicLedgerRequests, pipelines.TopicLedgerEntries, pipelines.TopicRedemptions,
		pipelines.TopicSettlementLog, pipelines.TopicDeadLetter} {
		recs, err := kafkatest.ReadCommitted(ctx, e.Brokers, tp)
		s += fmt.Sprintf("%s: %d records (%v); ", tp, len(recs), err)
	}
	return s
}

// WaitBalance waits until owner's balance is want.
func (e *Env) WaitBalance(owner string, want int64) {
	e.T.Helper()
	e.Wait(30*time.Second, func() bool { return e.Account(owner).Balance == want },
		func() string {
			return fmt.Sprintf("balance of %s = %d, want %d", owner, e.Account(owner).Balance, want)
		})
}
