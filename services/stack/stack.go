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
	"net/http"
	"net/url"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/minecart/minecart/infra/broker"
	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/daemon"
	"github.com/minecart/minecart/services/gateway"
	"github.com/minecart/minecart/services/ingest"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/blocks"
	"github.com/minecart/minecart/services/ledger/proofs"
	ledgerstage "github.com/minecart/minecart/services/ledger/stage"
	"github.com/minecart/minecart/services/owner"
	scoringstage "github.com/minecart/minecart/services/scoring/stage"
	settleapi "github.com/minecart/minecart/services/settlement/api"
	settlestage "github.com/minecart/minecart/services/settlement/stage"
	"github.com/minecart/minecart/services/sink"
	"github.com/minecart/minecart/services/telemetry"
)

// Config configures the embedded pipeline.
type Config struct {
	// DataDir holds the broker's log (DataDir/kafka) and the ledger key
	// (DataDir/ledger.key). Empty: broker in memory, key generated.
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
	// IdleTimeout is scoring's idle close: a partition without records for
	// this long closes its days on the wall clock (default 10s here: the
	// simulated fleet uploads history, and the run should settle soon after
	// the last upload).
	IdleTimeout time.Duration
	// MaxEventAge is ingest's horizon: older events are rejected (0: none).
	MaxEventAge time.Duration
	// SessionTimeout of the stages' consumer groups (default 6s).
	SessionTimeout time.Duration
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.KafkaAddr == "" {
		c.KafkaAddr = "127.0.0.1:9092"
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = "127.0.0.1:8080"
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 10 * time.Second
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
	// Ledger follows the blocks topic and serves proofs.
	Ledger  *proofs.Server
	Gateway *gateway.Server

	httpAddr string
	state    *kafka.Table // settlement's changelog

	env    *daemon.Env     // every running part (stages, followers, the HTTP server) and what to close after them
	failed <-chan struct{} // the group's context: done once a part stopped
}

// Start starts the broker, the stages and the HTTP server. Stop them with
// Close. If a stage fails, Failed is closed and Err says why.
func Start(ctx context.Context, cfg Config) (_ *Stack, err error) {
	cfg = cfg.withDefaults()
	log := cfg.Logger
	s := &Stack{cfg: cfg, Registry: daemon.NewRegistry(), Serde: schemas.SingleObject()}
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()

	kafkaDir := ""
	if cfg.DataDir != "" {
		kafkaDir = filepath.Join(cfg.DataDir, "kafka")
	}
	if s.Broker, err = broker.Start(broker.Config{Addr: cfg.KafkaAddr, DataDir: kafkaDir, Logger: log}); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	if err := kafka.EnsureTopics(ctx, s.Broker.Addrs(), pipelines.Topology); err != nil {
		return nil, fmt.Errorf("create topology: %w", err)
	}

	s.Pipelines = kafka.Config{
		Brokers: s.Broker.Addrs(), Logger: log, Registerer: s.Registry, Serde: s.Serde,
		SessionTimeout: cfg.SessionTimeout,
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
	}
	if keyPath != "" {
		if s.LedgerKey, err = ledger.LoadOrCreateKey(keyPath); err != nil {
			return nil, err
		}
	} else if _, s.LedgerKey, err = ed25519.GenerateKey(nil); err != nil {
		return nil, err
	}

	// The stages.
	ing, err := ingest.NewStage(ingest.Config{Validation: telemetry.ValidateConfig{MaxAge: cfg.MaxEventAge}, Serde: s.Serde, Registerer: s.Registry, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	sc, err := scoringstage.NewStage(scoringstage.Config{IdleTimeout: cfg.IdleTimeout, TickEvery: time.Second, Serde: s.Serde, Registerer: s.Registry, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("scoring: %w", err)
	}
	published, err := blocks.New(blocks.Config{Kafka: s.Pipelines})
	if err != nil {
		return nil, err
	}
	led, err := ledgerstage.NewStage(ledgerstage.Config{Key: s.LedgerKey, Serde: s.Serde, Blocks: published, Logger: log, Registerer: s.Registry})
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	st, err := settlestage.NewStage(settlestage.Config{Serde: s.Serde, Logger: log, Registerer: s.Registry, EnsurePartner: s.ensurePartner})
	if err != nil {
		return nil, fmt.Errorf("settlement: %w", err)
	}
	for _, st := range []pipelines.Stage{ing, sc, led, st} {
		s.env.Stage(st)
	}
	if cfg.ClickHouseDSN != "" {
		conn, err := sink.Open(cfg.ClickHouseDSN)
		if err != nil {
			return nil, fmt.Errorf("sink: %w", err)
		}
		s.env.OnClose(conn.Close)
		sinkStage, err := sink.NewStage(sink.Config{Conn: conn, Serde: s.Serde, Registerer: s.Registry, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("sink: %w", err)
		}
		s.env.Sink(conn, sinkStage)
	}

	// The ledger's reader (proofs) and the gateway.
	if s.Ledger, err = proofs.NewServer(proofs.Config{
		Blocks: published, PublicKey: s.LedgerKey.Public().(ed25519.PublicKey), Logger: log,
	}); err != nil {
		return nil, err
	}
	s.env.Go("ledger-reader", s.Ledger.Run)
	if s.Gateway, err = gateway.New(runCtx, gateway.Config{Pipelines: s.Pipelines, Registerer: s.Registry, Logger: log}); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	s.env.OnClose(s.Gateway.Close)
	if s.state, err = s.env.Table(runCtx, pipelines.TopicSettlementLog); err != nil {
		return nil, err
	}
	redemptions, err := settleapi.NewHandler(settleapi.Config{Producer: s.Producer, State: s.state, Serde: s.Serde, Logger: log})
	if err != nil {
		return nil, err
	}

	mux := http.NewServeMux()
	if cfg.ClickHouseDSN != "" {
		if err := s.mountOwner(runCtx, mux); err != nil {
			return nil, err
		}
	}
	mux.Handle("/metrics", daemon.MetricsHandler(s.Registry))
	mux.Handle("/v1/ledger/", s.Ledger.Handler())
	mux.Handle("/v1/redemptions", redemptions)
	mux.Handle("/v1/redemptions/", redemptions)
	mux.Handle("/v1/accounts/", redemptions)
	mux.Handle("/", s.Gateway.Handler()) // /v1/telemetry, /healthz, /readyz
	srv := &http.Server{Addr: cfg.HTTPAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if err := s.env.Serve("http", srv); err != nil {
		return nil, err
	}
	s.httpAddr = srv.Addr
	log.Info("minecart embedded pipeline started", "kafka", s.Broker.Addrs(), "http", s.httpAddr, "clickhouse", redactDSN(cfg.ClickHouseDSN))
	return s, nil
}

// mountOwner serves the owner's API from ClickHouse, with balances from
// settlement's state and proofs from the ledger's reader.
func (s *Stack) mountOwner(ctx context.Context, mux *http.ServeMux) error {
	dsn := s.cfg.ClickHouseReadDSN
	if dsn == "" {
		dsn = s.cfg.ClickHouseDSN
	}
	conn, err := sink.Open(dsn)
	if err != nil {
		return fmt.Errorf("owner api: %w", err)
	}
	s.env.OnClose(conn.Close)
	bindings, err := s.env.Table(ctx, pipelines.TopicAccounts)
	if err != nil {
		return err
	}
	h, err := owner.NewHandler(owner.Config{
		Conn: conn, Proofs: s.Ledger,
		Balances:   owner.SettlementBalances(bindings, s.state, s.Serde),
		Registerer: s.Registry, Logger: s.cfg.Logger,
	})
	if err != nil {
		return fmt.Errorf("owner api: %w", err)
	}
	mux.Handle("/v1/vehicles/", h)
	return nil
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
