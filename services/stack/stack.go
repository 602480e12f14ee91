// Package stack starts minecart's whole pipeline in one process: the
// embedded Kafka broker, every stage (ingest, scoring, ledger, settlement and,
// given a ClickHouse DSN, the firehose sink), and one HTTP server with the
// device gateway, the ledger's proofs, redemptions, the owner's API and
// /metrics. `minecart run` and the end-to-end tests use it; in production each
// service runs alone from its own main.
package stack

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/infra/broker"
	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/auth"
	campaignapi "github.com/minecart/minecart/services/campaign/api"
	"github.com/minecart/minecart/services/daemon"
	"github.com/minecart/minecart/services/gateway"
	"github.com/minecart/minecart/services/ingest"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/blocks"
	"github.com/minecart/minecart/services/ledger/proofs"
	ledgerstage "github.com/minecart/minecart/services/ledger/stage"
	"github.com/minecart/minecart/services/owner"
	"github.com/minecart/minecart/services/owner/view"
	"github.com/minecart/minecart/services/pseudonym"
	"github.com/minecart/minecart/services/pseudonym/follow"
	replaycheck "github.com/minecart/minecart/services/replaycheck/stage"
	scoringstage "github.com/minecart/minecart/services/scoring/stage"
	settleapi "github.com/minecart/minecart/services/settlement/api"
	settlestage "github.com/minecart/minecart/services/settlement/stage"
	"github.com/minecart/minecart/services/shred"
	"github.com/minecart/minecart/services/sink"
	"github.com/minecart/minecart/services/telemetry"
)

// Config configures the embedded pipeline.
type Config struct {
	// DataDir holds the broker's log (DataDir/kafka) and its SASL
	// credentials (DataDir/kafka/credentials.json), the ledger key
	// (DataDir/ledger.key) and the device-registry key
	// (DataDir/devices.key), all private (directories 0700, files 0600).
	// Empty: broker in memory, credentials and keys generated.
	DataDir string
	// KafkaAddr is the broker's listen address (default 127.0.0.1:9092;
	// 127.0.0.1:0 picks a free port).
	KafkaAddr string
	// HTTPAddr serves the gateway, the APIs and /metrics (default
	// 127.0.0.1:8080; port 0 picks a free one, see Stack.HTTPAddr).
	HTTPAddr string
	// ClickHouseDSN, when set, runs the firehose sink into it (and the
	// migrations): a writer's credentials.
	ClickHouseDSN string
	// ClickHouseReadDSN is the owner API's: a readonly user's credentials
	// (default ClickHouseDSN).
	ClickHouseReadDSN string
	// NoOwnerView serves the owner API from ClickHouse alone, without
	// its in-memory view of recent positions, tracks and scores
	// (docs/owner-api.md).
	NoOwnerView bool
	// Grace is how long after its local midnight a day stays open (scoring's
	// Grace, default 2h). The simulated fleet drives the gateway's intake
	// clock past the last day's end plus Grace, so the last day closes on
	// the time marks (docs/scoring.md, "Log time").
	Grace time.Duration
	// IdleTimeout is scoring's wall-clock idle close, a fallback that is off
	// by default (0): days close on the gateway's time marks.
	IdleTimeout time.Duration
	// MaxEventAge is ingest's horizon: older events are rejected (0: none).
	MaxEventAge time.Duration
	// SessionTimeout of the stages' consumer groups (default 6s).
	SessionTimeout time.Duration
	// Rate is each API caller's token bucket (default auth's: 20/s, burst 40).
	Rate auth.Limit
	// Witnesses are the witnesses to run in process; the stack writes
	// their policy (a majority quorum) to DataDir/witness-policy.txt and
	// publishes checkpoints only with that quorum (docs/ledger.md,
	// "Publication"). None: checkpoints are published as signed.
	Witnesses []WitnessConfig
	// WitnessPolicy, if set, is the path of a policy file of external
	// witnesses to use instead of Witnesses.
	WitnessPolicy string
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// PseudonymSeed, if set, derives the ledger's pseudonym keys from it
	// (pseudonym.Derived) so a simulated fleet's root is reproducible;
	// empty: random keys (an erasure is final only then).
	PseudonymSeed string
}

func (c Config) withDefaults() Config {
	if c.KafkaAddr == "" {
		c.KafkaAddr = "127.0.0.1:9092"
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = "127.0.0.1:8080"
	}
	if c.Grace == 0 {
		c.Grace = 2 * time.Hour
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 6 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Stack is a running embedded pipeline.
type Stack struct {
	cfg      Config
	Broker   *broker.Broker
	Registry *prometheus.Registry
	Serde    *schemas.Serde
	Producer *kafka.Producer
	// Pipelines is the runtime configuration the stages share.
	Pipelines kafka.Config
	// LedgerKey signs the ledger's blocks.
	LedgerKey ed25519.PrivateKey
	// Credentials are the broker's SASL/SCRAM users (auth.go): the
	// stages connect as the superuser.
	Credentials broker.Credentials
	// DeviceKey seals the devices' HMAC secrets on the devices topic
	// (DataDir/devices.key).
	DeviceKey *gateway.RegistryKey
	// PseudonymKey seals the keys of the pseudonyms topic
	// (DataDir/pseudonyms.key).
	PseudonymKey *pseudonym.SealKey
	// Pseudonyms follows the pseudonyms topic (settlement, the owner API).
	Pseudonyms *follow.Follower
	// Ledger follows the blocks topic and serves proofs.
	Ledger *proofs.Server
	// Policy is the witness policy (nil: none); Publisher publishes the
	// checkpoints its quorum cosigned; Witnesses are the embedded ones.
	Policy    *ledger.Policy
	Publisher *ledgerstage.Publisher
	Witnesses []EmbeddedWitness

	Gateway *gateway.Server
	// Clock is the gateway's intake clock, driven by the simulated fleet
	// (SendFleet); the gateway writes no time mark before it is set.
	Clock  *SimClock
	marker *gateway.Marker // nil while the simulated gateway is down or before the first delivery

	httpAddr string
	state    *kafka.Table // settlement's changelog

	// Auth authenticates the callers of the owner and redemption APIs.
	Auth *auth.Authenticator
	// OperatorToken is the bearer token of the operator "admin",
	// generated at every start (DataDir/operator.token, 0600).
	OperatorToken string
	creds         *kafka.Table // pipelines.TopicCredentials
	bindings      *kafka.Table // pipelines.TopicAccounts
	mux           *auth.Mux

	env    *daemon.Env     // every running part (stages, followers, the HTTP server) and what to close after them
	failed <-chan struct{} // the group's context: done once a part stopped
	unlock func()          // releases DataDir's lock
}

// embeddedInstance is the instance id (pipelines/kafka.Config.InstanceID)
// of the stages of a stack with a DataDir: stable across restarts on the
// directory, so a restarted stage fences its crashed predecessor's
// transactions at once and takes its group membership back (static
// membership) without waiting for its session to time out.
const embeddedInstance = "embedded"

// Start starts the broker, the stages and the HTTP server. Stop them with
// Close. If a stage fails, Failed is closed and Err says why.
func Start(ctx context.Context, cfg Config) (_ *Stack, err error) {
	cfg = cfg.withDefaults()
	log := cfg.Logger
	s := &Stack{cfg: cfg, Registry: daemon.NewRegistry(), Serde: schemas.SingleObject(), Clock: &SimClock{}}
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()

	kafkaDir := ""
	instance := "" // in memory: a new broker every time, no instance to restart
	if cfg.DataDir != "" {
		// Private to this user: 0700 directories, 0600 files.
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, err
		}
		if err := broker.PrivateTree(cfg.DataDir); err != nil {
			return nil, err
		}
		kafkaDir = filepath.Join(cfg.DataDir, "kafka")
		// One process per data directory (it holds one broker): so
		// the stages' instance id, the same at every start on this
		// directory, is never shared by two live processes.
		release, ok, err := daemon.LockFile(filepath.Join(cfg.DataDir, "lock"))
		if err != nil {
			return nil, fmt.Errorf("data dir: %w", err)
		}
		if !ok {
			return nil, fmt.Errorf("data dir %s is in use by another live process", cfg.DataDir)
		}
		s.unlock = release
		instance = embeddedInstance
	}
	if s.Credentials, err = credentials(kafkaDir); err != nil {
		return nil, err
	}
	users, err := BrokerUsers(s.Credentials)
	if err != nil {
		return nil, err
	}
	super, _ := s.Credentials.ByRole(broker.RoleSuperuser, "")
	if s.Broker, err = broker.Start(broker.Config{Addr: cfg.KafkaAddr, DataDir: kafkaDir, Logger: log, Users: users}); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	s.Pipelines = kafka.Config{
		Brokers: s.Broker.Addrs(), Logger: log, Registerer: s.Registry, Serde: s.Serde,
		SessionTimeout: cfg.SessionTimeout, ClientOptions: []kgo.Opt{SASL(super)}, InstanceID: instance,
	}
	if err := kafka.EnsureTopicsWith(ctx, s.Pipelines, pipelines.Topology); err != nil {
		return nil, fmt.Errorf("create topology: %w", err)
	}
	// The parts run until Close, whatever becomes of ctx.
	var runCtx context.Context
	s.env, runCtx = daemon.NewEnv(context.WithoutCancel(ctx), log, s.Registry, s.Pipelines)
	s.env.ShutdownTimeout = 5 * time.Second
	s.failed = runCtx.Done()
	if s.Producer, err = s.env.Producer(); err != nil {
		return nil, err
	}

	keyPath := ""
	if cfg.DataDir != "" {
		keyPath = filepath.Join(cfg.DataDir, "ledger.key")
		if s.DeviceKey, err = gateway.LoadOrCreateRegistryKey(filepath.Join(cfg.DataDir, "devices.key")); err != nil {
			return nil, err
		}
		if s.PseudonymKey, err = pseudonym.LoadOrCreateSealKey(filepath.Join(cfg.DataDir, "pseudonyms.key")); err != nil {
			return nil, err
		}
	} else {
		s.DeviceKey, _ = gateway.GenerateRegistryKey()
		s.PseudonymKey, _ = pseudonym.GenerateSealKey()
	}
	if s.Pseudonyms, err = follow.NewFollower(s.Pipelines, s.PseudonymKey, log); err != nil {
		return nil, err
	}
	s.env.Go("pseudonyms", s.Pseudonyms.Run)
	ps := &ledgerstage.Pseudonyms{Seal: s.PseudonymKey, Load: follow.Loader(s.Pipelines, s.PseudonymKey, log)}
	if cfg.PseudonymSeed != "" {
		ps.Keys = pseudonym.Derived(cfg.PseudonymSeed)
	}
	if keyPath != "" {
		if s.LedgerKey, err = ledger.LoadOrCreateKey(keyPath); err != nil {
			return nil, err
		}
	} else if _, s.LedgerKey, err = ed25519.GenerateKey(nil); err != nil {
		return nil, err
	}

	signer, err := ledger.NewSigner(ledgerstage.DefaultOrigin, s.LedgerKey)
	if err != nil {
		return nil, err
	}
	if s.Policy, err = s.startWitnesses(signer.VerifierKey()); err != nil {
		return nil, err
	}

	// The stages.
	ing, err := ingest.NewStage(ingest.Config{Validation: telemetry.ValidateConfig{MaxAge: cfg.MaxEventAge}, Serde: s.Serde, Registerer: s.Registry, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	// Scores are sealed under their vehicle's key (crypto-shredding,
	// docs/privacy.md): scoring makes a vehicle's pseudonym key with the
	// ledger's key source, the readers open them through the follower.
	ring := &shred.Keyring{Keys: s.Pseudonyms, Source: ps.Keys, Seal: s.PseudonymKey}
	ps.Follow = s.Pseudonyms
	sc, err := scoringstage.NewStage(scoringstage.Config{Grace: cfg.Grace, IdleTimeout: cfg.IdleTimeout, TickEvery: time.Second, Serde: s.Serde, Registerer: s.Registry, Logger: log, Shred: ring})
	if err != nil {
		return nil, fmt.Errorf("scoring: %w", err)
	}
	published, err := blocks.New(blocks.Config{Kafka: s.Pipelines})
	if err != nil {
		return nil, err
	}
	led, err := ledgerstage.NewStage(ledgerstage.Config{Key: s.LedgerKey, Serde: s.Serde, Blocks: published, Logger: log, Registerer: s.Registry, Pseudonyms: ps})
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	st, err := settlestage.NewStage(settlestage.Config{Serde: s.Serde, Logger: log, Registerer: s.Registry, EnsurePartner: s.ensurePartner, Pseudonyms: s.Pseudonyms, SealStatus: true})
	if err != nil {
		return nil, fmt.Errorf("settlement: %w", err)
	}
	rc, err := replaycheck.NewStage(replaycheck.Config{Registerer: s.Registry, Logger: log}) // docs/scoring.md, "Global replay check"
	if err != nil {
		return nil, fmt.Errorf("replaycheck: %w", err)
	}
	for _, st := range []pipelines.Stage{ing, sc, rc, led, st} {
		s.env.Stage(st)
	}
	if cfg.ClickHouseDSN != "" {
		conn, err := sink.Open(cfg.ClickHouseDSN)
		if err != nil {
			return nil, fmt.Errorf("sink: %w", err)
		}
		s.env.OnClose(conn.Close)
		sinkStage, err := sink.NewStage(sink.Config{Conn: conn, Serde: s.Serde, Registerer: s.Registry, Logger: log, Pseudonyms: s.Pseudonyms})
		if err != nil {
			return nil, fmt.Errorf("sink: %w", err)
		}
		s.env.Sink(conn, sinkStage)
	}

	// The ledger's reader (proofs) and the gateway. A record of the blocks
	// topic that does not extend the verified book is skipped, counted,
	// logged and dead-lettered (docs/ledger.md, A bad block).
	alerts, err := blocks.NewAlerts(blocks.AlertsConfig{Kafka: s.Pipelines, Producer: s.Producer})
	if err != nil {
		return nil, err
	}
	if s.Ledger, err = proofs.NewServer(proofs.Config{
		Blocks: published, PublicKey: s.LedgerKey.Public().(ed25519.PublicKey), Alerts: alerts, Policy: s.Policy, Registerer: s.Registry, Logger: log,
	}); err != nil {
		return nil, err
	}
	s.env.Go("ledger-reader", s.Ledger.Run)
	if s.Policy != nil {
		if err := s.startPublication(published); err != nil {
			return nil, fmt.Errorf("ledger publication: %w", err)
		}
	}
	if s.Gateway, err = gateway.New(runCtx, gateway.Config{Pipelines: s.Pipelines, DeviceKey: s.DeviceKey, Registerer: s.Registry, Logger: log}); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	s.env.OnClose(s.Gateway.Close)
	if s.state, err = s.env.Table(runCtx, pipelines.TopicSettlementLog); err != nil {
		return nil, err
	}
	if err := s.startAuth(runCtx); err != nil {
		return nil, err
	}
	redemptions, err := settleapi.NewHandler(settleapi.Config{Producer: s.Producer, State: s.state, Serde: s.Serde, Auth: s.Auth, Logger: log})
	if err != nil {
		return nil, err
	}
	campaigns, err := campaignapi.NewHandler(campaignapi.Config{Producer: s.Producer, Book: s.Ledger, Serde: s.Serde, Auth: s.Auth, Logger: log})
	if err != nil {
		return nil, err
	}

	// Every route declares who may call it (auth.Mux; TestRoutesRefuseStrangers).
	mux := auth.NewMux(s.Auth)
	s.mux = mux
	s.Auth.Mount(mux) // POST /v1/login, /v1/logout, GET /v1/whoami
	if cfg.ClickHouseDSN != "" {
		if err := s.mountOwner(mux); err != nil {
			return nil, err
		}
	}
	if err := s.mountWeb(mux); err != nil { // /, /explorer, /console, /assets/ (services/web)
		return nil, err
	}
	mux.Handle("/metrics", nil, daemon.MetricsHandler(s.Registry))
	mux.Mount("/v1/ledger/", s.Ledger.Handler()) // public: anyone verifies the book
	mux.Mount("/ledger/", s.Ledger.Handler())    // public: the book as C2SP tlog-tiles
	mux.Mount("/v1/redemptions", redemptions)
	mux.Mount("/v1/redemptions/", redemptions)
	mux.Mount("/v1/accounts/", redemptions)
	mux.Mount("/v1/transfers", redemptions) // POST, GET ?account= (docs/economy.md)
	mux.Mount("/v1/transfers/", redemptions)
	mux.Mount("/v1/campaigns", campaigns)  // partners: docs/campaigns.md
	mux.Mount("/v1/campaigns/", campaigns) //
	mux.Mount("/v1/partners/", campaigns)  // operators: partner keys
	mux.Mount("/", s.Gateway.Handler())    // /v1/telemetry (devices sign each request), /healthz, /readyz
	srv := daemon.NewServer(cfg.HTTPAddr, mux)
	if err := s.env.Serve("http", srv); err != nil {
		return nil, err
	}
	s.httpAddr = srv.Addr
	log.Info("minecart embedded pipeline started", "kafka", s.Broker.Addrs(), "http", s.httpAddr, "clickhouse", redactDSN(cfg.ClickHouseDSN))
	return s, nil
}

// startAuth builds the authenticator: credentials and bindings tables, the
// session key (DataDir/session.key, 0600) and a fresh operator token.
func (s *Stack) startAuth(ctx context.Context) error {
	var err error
	if s.creds, err = s.env.Table(ctx, pipelines.TopicCredentials); err != nil {
		return err
	}
	if s.bindings, err = s.env.Table(ctx, pipelines.TopicAccounts); err != nil {
		return err
	}
	key := auth.NewSecret()
	if s.cfg.DataDir != "" {
		if key, err = auth.LoadOrCreateSecret(filepath.Join(s.cfg.DataDir, "session.key")); err != nil {
			return err
		}
	}
	if s.Auth, err = auth.New(auth.Config{Credentials: s.creds, Bindings: s.bindings, Serde: s.Serde, SessionKey: []byte(key),
		Rate: s.cfg.Rate, Registerer: s.Registry, Logger: s.cfg.Logger}); err != nil {
		return err
	}
	tok, c, err := auth.NewTokenRecord(ctx, s.Producer, s.Serde, auth.RoleOperator, "admin", time.Now())
	if err != nil {
		return err
	}
	if err := s.waitCredential(ctx, c.Subject, func(got *avro.Credential) bool { return got.Generation == c.Generation }); err != nil {
		return err
	}
	if s.cfg.DataDir != "" {
		if err := auth.WriteSecret(filepath.Join(s.cfg.DataDir, "operator.token"), tok); err != nil {
			return err
		}
	}
	s.OperatorToken = tok
	return nil
}

// waitCredential waits until ok accepts the credentials table's record of
// subject (the one this process just wrote).
func (s *Stack) waitCredential(ctx context.Context, subject string, ok func(*avro.Credential) bool) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.creds.Wait(ctx, subject, func(v []byte, present bool) bool {
		var c avro.Credential
		return present && s.Serde.Unmarshal(v, &c) == nil && ok(&c)
	}); err != nil {
		return fmt.Errorf("credential %s: %w", subject, err)
	}
	return nil
}

// DemoOwner sets the password of owner (the simulated fleet's first
// owner in `minecart run`) to the one kept in DataDir/demo-owner.password
// (0600, generated once; in memory without a DataDir) and returns it once
// the APIs accept it.
func (s *Stack) DemoOwner(ctx context.Context, owner string) (string, error) {
	pw := auth.NewSecret()
	if s.cfg.DataDir != "" {
		var err error
		if pw, err = auth.LoadOrCreateSecret(filepath.Join(s.cfg.DataDir, "demo-owner.password")); err != nil {
			return "", err
		}
	}
	c, err := auth.SetPassword(ctx, s.Producer, s.Serde, owner, pw, time.Now())
	if err != nil {
		return "", err
	}
	return pw, s.waitCredential(ctx, c.Subject, func(got *avro.Credential) bool { return got.Generation == c.Generation })
}

// Routes lists every route of the HTTP server with the roles it admits
// (none: public).
func (s *Stack) Routes() []auth.Route { return s.mux.Routes() }

// mountOwner serves the owner's API from ClickHouse, with balances from
// settlement's state and proofs from the ledger's reader.
func (s *Stack) mountOwner(mux *auth.Mux) error {
	dsn := s.cfg.ClickHouseReadDSN
	if dsn == "" {
		dsn = s.cfg.ClickHouseDSN
	}
	conn, err := sink.Open(dsn)
	if err != nil {
		return fmt.Errorf("owner api: %w", err)
	}
	s.env.OnClose(conn.Close)
	var ov *view.View
	if !s.cfg.NoOwnerView {
		if ov, err = s.startOwnerView(); err != nil {
			return fmt.Errorf("owner view: %w", err)
		}
	}
	h, err := owner.NewHandler(owner.Config{
		Conn: conn, Proofs: s.Ledger, Auth: s.Auth, Pseudonyms: s.Pseudonyms, Published: s.Ledger, Policy: s.Policy,
		Balances:   owner.SettlementBalances(s.bindings, s.state, s.Serde),
		Registerer: s.Registry, Logger: s.cfg.Logger, View: ov,
	})
	if err != nil {
		return fmt.Errorf("owner api: %w", err)
	}
	mux.Mount("/v1/vehicles/", h)
	mux.Mount("/v1/fleet/", h)
	mux.Mount("GET /v1/accounts/{owner}/entries", h) // beside settlement's /v1/accounts/ (balance)
	mux.Mount("GET /v1/ledger/published", h)         // the cosigned checkpoint and the witness policy, for the owner's browser
	return nil
}

// startOwnerView starts the owner API's in-memory view: a Feed following
// the clean telemetry and the scores topics from their start with
// read_committed readers (owner.Feed.Run), the lag checked every 5 s.
func (s *Stack) startOwnerView() (*view.View, error) {
	v := view.New(view.Config{})
	feed, err := owner.NewFeed(owner.FeedConfig{View: v, Serde: s.Serde, Registerer: s.Registry, Logger: s.cfg.Logger, Pseudonyms: s.Pseudonyms})
	if err != nil {
		return nil, err
	}
	s.env.Go("owner-view", func(ctx context.Context) error {
		return feed.Run(ctx, func() (owner.TopicReader, error) { return kafka.NewReader(s.Pipelines) }, 0)
	})
	return v, nil
}

// HTTPAddr is the bound address of the HTTP server.
func (s *Stack) HTTPAddr() string { return s.httpAddr }

// Failed is closed when a component stopped (Err says why) or Close was
// called.
func (s *Stack) Failed() <-chan struct{} { return s.failed }

// Err is the first component error, if any.
func (s *Stack) Err() error { return s.env.Err() }

// Close stops the HTTP server (requests in flight finish), the stages
// (each finishes or aborts its open transaction) and the followers, then
// closes the rest, the broker last.
func (s *Stack) Close() error {
	var errs []error
	if s.env != nil {
		errs = append(errs, s.env.Close())
	}
	if s.Broker != nil {
		errs = append(errs, s.Broker.Close())
	}
	if s.cfg.DataDir != "" {
		errs = append(errs, broker.PrivateTree(s.cfg.DataDir))
	}
	if s.unlock != nil {
		s.unlock()
		s.unlock = nil
	}
	return errors.Join(errs...)
}

// redactDSN hides the password of a DSN for logs.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable DSN)"
	}
	return u.Redacted()
}
