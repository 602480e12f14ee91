// Package settletest runs the settlement stage with the real ledger stage
// on an embedded broker, for the tests of settlement and of the partner
// example: fund and bind accounts, publish catalog items, serve the
// redemption API, wait for state.
package settletest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/auth"
	"github.com/minecart/minecart/services/ids"
	"github.com/minecart/minecart/services/ledger/blocks"
	ledgerstage "github.com/minecart/minecart/services/ledger/stage"
	"github.com/minecart/minecart/services/pseudonym"
	"github.com/minecart/minecart/services/pseudonym/follow"
	"github.com/minecart/minecart/services/settlement"
	"github.com/minecart/minecart/services/settlement/api"
	"github.com/minecart/minecart/services/settlement/stage"
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
	// Pseudonyms follows the ledger's pseudonym keys (settlement opens
	// the entries' pseudonyms with it).
	Pseudonyms *follow.Follower
	// SealKey is the raw pseudonym-sealing key (the CLI's --pseudonym-key
	// file holds it as 64 hex digits).
	SealKey []byte

	stopSettlement func()
	stopLedger     func()
	ledgerCfg      ledgerstage.Config
	tick           time.Duration
	policy         settlement.Policy
	sealStatus     bool

	// Callers of the API replicas: one session key, a credentials table
	// per replica, a session token per owner (Token).
	SessionKey []byte
	authMu     sync.Mutex
	credTables []*kafka.Table
	tokens     map[string]string
	auths      []*auth.Authenticator
}

// servers maps each API replica to its Env, for Post.
var servers sync.Map // *httptest.Server -> *Env

// StartLedger (re)starts the ledger stage (same key and origin).
func (e *Env) StartLedger() {
	e.T.Helper()
	st, err := ledgerstage.NewStage(e.ledgerCfg)
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
	// SealStatus seals the redemption status for the owner's account
	// (stage.Config.SealStatus, docs/privacy.md).
	SealStatus bool
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
		tick: 250 * time.Millisecond, policy: o.Policy, sealStatus: o.SealStatus, SessionKey: []byte(auth.NewSecret()), tokens: map[string]string{}}
	published, err := blocks.New(blocks.Config{Kafka: cfg})
	if err != nil {
		t.Fatal(err)
	}
	// Pseudonymous leaves, as in every deployment: the ledger makes the
	// keys, settlement follows them. The keys are derived from a fixed
	// seed so that two environments fed the same records make the same
	// root (tests compare books across runs).
	seal, rawSeal := pseudonym.GenerateSealKey()
	e.SealKey = rawSeal
	e.ledgerCfg = ledgerstage.Config{Key: priv, Origin: e.Origin, Serde: serde, Blocks: published, Logger: cfg.Logger,
		Pseudonyms: &ledgerstage.Pseudonyms{Seal: seal, Keys: pseudonym.Derived("settletest"), Load: follow.Loader(cfg, seal, cfg.Logger)}}
	if e.Pseudonyms, err = follow.NewFollower(cfg, seal, cfg.Logger); err != nil {
		t.Fatal(err)
	}
	fctx, fcancel := context.WithCancel(context.Background())
	fdone := make(chan struct{})
	go func() { defer close(fdone); _ = e.Pseudonyms.Run(fctx) }()
	t.Cleanup(func() { fcancel(); <-fdone })
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
	st, err := stage.NewStage(stage.Config{Serde: e.Serde, Logger: e.Cfg.Logger, TickEvery: e.tick, Policy: e.policy,
		EnsurePartner: e.ensurePartner, Pseudonyms: e.Pseudonyms, SealStatus: e.sealStatus})
	if err != nil {
		e.T.Fatal(err)
	}
	e.stopSettlement = kafkatest.Run(e.T, e.Cfg, st)
}

func (e *Env) ensurePartner(ctx context.Context, partner string) error {
	return kafka.EnsureTopicsWith(ctx, e.Cfg, settlement.PartnerTopics(partner))
}

// StopSettlement stops the settlement stage (it commits what it did).
func (e *Env) StopSettlement() { e.stopSettlement() }

func (e *Env) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

// Fund asks the ledger for an adjustment of points to owner's account.
func (e *Env) Fund(owner string, points int64) {
	e.T.Helper()
	e.produce(pipelines.TopicLedgerRequests, owner, &avro.DebitRequest{RequestID: "fund/" + owner, Kind: avro.RequestKindAdjustment,
		Account: owner, Amount: points, Reason: "test funding", RequestedAt: time.Now()})
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
	score, err := e.Serde.Marshal(&avro.DailyScore{ID: vehicle + "/" + date, VehicleID: vehicle, DeviceID: "d-" + vehicle,
		Date: date, TZ: "UTC", WindowStart: day, WindowEnd: end, ConfigVersion: "test", DistanceKm: 12.5, GpsKm: 12.5,
		OdometerKm: 12.4, DrivingS: 1800, Events: 100, Score: 90, Points: points, EventsHash: make([]byte, 32)})
	if err != nil {
		e.T.Fatal(err)
	}
	wm, err := e.Serde.Marshal(&avro.Watermark{Task: 0, Tasks: 1, ClosedThroughMs: end})
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
	if err := api.BindVehicle(ctx, e.Producer, e.Serde, vehicle, owner, time.Now()); err != nil {
		e.T.Fatal(err)
	}
}

// produce writes one record.
func (e *Env) produce(topic, key string, r schemas.Record) {
	e.T.Helper()
	v, err := e.Serde.Marshal(r)
	if err != nil {
		e.T.Fatal(err)
	}
	ctx, cancel := e.ctx()
	defer cancel()
	if err := e.Producer.ProduceSync(ctx, topic, []byte(key), v); err != nil {
		e.T.Fatal(err)
	}
}

// PublishItem writes a catalog item as it is (the partner's topics are
// left to the stage to create).
func (e *Env) PublishItem(it avro.CatalogItem) {
	e.T.Helper()
	it.UpdatedMs = time.Now()
	e.produce(pipelines.TopicCatalog, settlement.ItemKey(it.Partner, it.ItemID), &it)
}

// PutItem creates the partner's topics, publishes a catalog item and waits
// until settlement took it in.
func (e *Env) PutItem(partner, item string, price int64, stock *int64) {
	e.T.Helper()
	ctx, cancel := e.ctx()
	defer cancel()
	it := avro.CatalogItem{Partner: partner, ItemID: item, Title: item, PricePoints: price, Stock: stock, Active: true, UpdatedMs: time.Now()}
	if err := api.PutItem(ctx, e.Producer, e.Serde, &it, e.ensurePartner); err != nil {
		e.T.Fatal(err)
	}
	// Settlement reads the catalog and the requests as two topics: wait
	// until it took the item in before any request can name it.
	e.Wait(30*time.Second, func() bool { _, ok := e.State.Get(settlement.ItemStateKey(partner, item)); return ok },
		func() string { return "catalog item " + partner + "/" + item + " not taken in" })
}

// Account reads an account's state from the changelog.
func (e *Env) Account(id string) settlement.Account {
	a, err := settlement.ReadAccount(e.State, id)
	if err != nil {
		e.T.Fatal(err)
	}
	return a
}

// Redemption reads a redemption's state from the changelog.
func (e *Env) Redemption(id string) (settlement.Redemption, bool) {
	r, ok, err := settlement.ReadRedemption(e.State, id)
	if err != nil {
		e.T.Fatal(err)
	}
	return r, ok
}

// API starts a replica of the redemption API with its own producer,
// changelog and credentials tables; it answers POST after at most wait.
// Its callers' rate is unlimited (the stack's tests check limits).
func (e *Env) API(wait time.Duration) *httptest.Server {
	e.T.Helper()
	p, err := kafka.NewProducer(e.Cfg)
	if err != nil {
		e.T.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tbl, err := kafka.NewTable(ctx, e.Cfg, pipelines.TopicSettlementLog)
	if err != nil {
		cancel()
		_ = p.Close()
		e.T.Fatal(err)
	}
	creds, err := kafka.NewTable(ctx, e.Cfg, pipelines.TopicCredentials)
	if err != nil {
		cancel()
		_ = p.Close()
		e.T.Fatal(err)
	}
	a, err := auth.New(auth.Config{Credentials: creds, Serde: e.Serde, SessionKey: e.SessionKey, Logger: e.Cfg.Logger,
		Rate: auth.Limit{Rate: 1e9, Burst: 1 << 30}})
	if err != nil {
		e.T.Fatal(err)
	}
	// The API stamps a request's RequestedMs with the stage's clock: a
	// test that moves the stage's clock (timeouts) measures from the same
	// origin, never from wall time (which ran on while the test set up).
	h, err := api.NewHandler(api.Config{Producer: p, State: tbl, Serde: e.Serde, Auth: a, Logger: e.Cfg.Logger, Wait: wait, Now: e.Cfg.Now})
	if err != nil {
		e.T.Fatal(err)
	}
	e.authMu.Lock()
	e.credTables = append(e.credTables, creds)
	e.auths = append(e.auths, a)
	e.authMu.Unlock()
	srv := httptest.NewServer(h)
	servers.Store(srv, e)
	e.T.Cleanup(func() {
		servers.Delete(srv)
		srv.Close()
		cancel()
		_ = tbl.Close()
		_ = creds.Close()
		_ = p.Close()
	})
	return srv
}

// Token returns a session token of owner valid on every API replica
// started so far: the first call sets owner's password (the credential
// record on the real credentials topic) and waits until every replica
// has it.
func (e *Env) Token(owner string) string {
	e.T.Helper()
	e.authMu.Lock()
	defer e.authMu.Unlock()
	if tok, ok := e.tokens[owner]; ok {
		return tok
	}
	if len(e.auths) == 0 {
		e.T.Fatal("settletest: Token before API")
	}
	ctx, cancel := e.ctx()
	defer cancel()
	c, err := auth.SetPassword(ctx, e.Producer, e.Serde, owner, "password of "+owner, time.Now())
	if err != nil {
		e.T.Fatal(err)
	}
	for _, t := range e.credTables {
		if err := t.Wait(ctx, c.Subject, func(v []byte, ok bool) bool {
			var got avro.Credential
			return ok && e.Serde.Unmarshal(v, &got) == nil && got.Generation == c.Generation
		}); err != nil {
			e.T.Fatal(err)
		}
	}
	tok, _, err := e.auths[0].Issue(owner)
	if err != nil {
		e.T.Fatal(err)
	}
	e.tokens[owner] = tok
	return tok
}

// Post sends a redemption request with the idempotency key to an API
// replica as the owner named in the body (a session of Token); the answer
// is decoded when the status is below 300.
func Post(srv *httptest.Server, key string, body api.RedemptionBody) (int, api.RedemptionJSON, error) {
	v, ok := servers.Load(srv)
	if !ok {
		return 0, api.RedemptionJSON{}, fmt.Errorf("settletest: %s is not an API of an Env", srv.URL)
	}
	tok := ""
	if ids.Owner(body.Owner) == nil {
		tok = v.(*Env).Token(body.Owner)
	}
	return PostAs(srv, tok, key, body)
}

// PostAs is Post with the bearer token tok ("" none).
func PostAs(srv *httptest.Server, tok, key string, body api.RedemptionBody) (int, api.RedemptionJSON, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, api.RedemptionJSON{}, err
	}
	code, resp, err := Do(srv, http.MethodPost, "/v1/redemptions", tok, key, string(b))
	var r api.RedemptionJSON
	if err == nil && code < 300 {
		err = json.Unmarshal(resp, &r)
	}
	return code, r, err
}

// Do sends a request with the bearer token tok and the Idempotency-Key
// key (each "" none) and a JSON body ("" none) to an API replica.
func Do(srv *httptest.Server, method, path, tok, key, body string) (int, []byte, error) {
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, err = buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.Bytes(), err
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
