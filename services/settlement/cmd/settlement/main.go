// Command settlement runs minecart's settlement alone: the settlement stage
// (ledger entries, bindings, catalog, redemption requests and partner acks
// in; balances, redemption statuses, partner orders, debit requests,
// settled credits and statements out) and the redemption HTTP API, whose
// callers authenticate (services/auth: owners log in with their password,
// partners and operators send tokens; --session-key is required). HTTP
// replicas may run with -stage=false: they only produce requests and read
// the stage's state. Every flag can also be set as MINECART_<FLAG>
// (services/daemon).
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/services/auth"
	"github.com/minecart/minecart/services/daemon"
	"github.com/minecart/minecart/services/settlement"
	"github.com/minecart/minecart/services/settlement/api"
	"github.com/minecart/minecart/services/settlement/stage"
)

func main() { daemon.Main("settlement", run) }

func run(ctx context.Context, args []string) error {
	cfg := stage.Config{Policy: settlement.DefaultPolicy()}
	var httpAddr string
	var runStage bool
	var maxQty int
	var wait time.Duration
	var af auth.Flags
	var sealPath string
	return daemon.Run(ctx, args, daemon.Service{
		Name: "settlement", MetricsAddr: "127.0.0.1:9105", InstanceID: true,
		Flags: func(fs *flag.FlagSet) {
			p := &cfg.Policy
			fs.StringVar(&httpAddr, "http-addr", "127.0.0.1:8085", "address of the redemption and balance API (empty: none)")
			fs.BoolVar(&runStage, "stage", true, "run the settlement stage (false: HTTP replica only)")
			fs.DurationVar(&p.DebitTimeout, "debit-timeout", p.DebitTimeout, "release a redemption's points if the ledger has not appended its debit after this long")
			fs.DurationVar(&p.KeepRedemptions, "keep-redemptions", p.KeepRedemptions, "how long finished redemptions (and their idempotency keys) stay in the state (0: forever)")
			fs.IntVar(&maxQty, "max-quantity", int(p.MaxQuantity), "most units in one redemption")
			fs.DurationVar(&wait, "http-wait", 5*time.Second, "how long POST /v1/redemptions waits for a decision before answering 202")
			af.Register(fs)
			fs.StringVar(&sealPath, "pseudonym-key", "", "the ledger's pseudonym-sealing key file (its DATA_DIR/pseudonyms.key): settlement opens the pseudonyms of the ledger's entries with it (required with -stage); it also seals the redemption status for the owner's account (docs/privacy.md)")
		},
		Prepare: func(*slog.Logger) error {
			if !runStage && httpAddr == "" {
				return errors.New("nothing to run: -stage=false and no -http-addr")
			}
			if httpAddr != "" {
				if _, err := af.Key(); err != nil {
					return err
				}
			}
			return nil
		},
		Build: func(ctx context.Context, env *daemon.Env) error {
			if runStage {
				cfg.Policy.MaxQuantity = int32(maxQty)
				cfg.Serde, cfg.Registerer, cfg.Logger = env.Kafka.Serde, env.Registry, env.Log
				if sealPath == "" {
					return errors.New("-pseudonym-key is required with -stage: the ledger's entries name vehicles and accounts by pseudonym")
				}
				names, _, err := env.LoadPseudonyms(sealPath)
				if err != nil {
					return err
				}
				cfg.Pseudonyms, cfg.SealStatus = names, true
				// Partner topics are created over the same (SASL, TLS) connection.
				cfg.EnsurePartner = func(ctx context.Context, partner string) error {
					return kafka.EnsureTopicsWith(ctx, env.Kafka, settlement.PartnerTopics(partner))
				}
				st, err := stage.NewStage(cfg)
				if err != nil {
					return err
				}
				env.Stage(st)
			}
			if httpAddr == "" {
				return nil
			}
			// The redemption API: a producer of requests, a table of the stage's state.
			prod, err := env.Producer()
			if err != nil {
				return err
			}
			state, err := env.Table(ctx, pipelines.TopicSettlementLog)
			if err != nil {
				return err
			}
			// Callers: credentials (hashes) from their compacted topic.
			creds, err := env.Table(ctx, pipelines.TopicCredentials)
			if err != nil {
				return err
			}
			a, err := af.New(creds, nil, env.Kafka.Serde, env.Registry, env.Log)
			if err != nil {
				return err
			}
			h, err := api.NewHandler(api.Config{Producer: prod, State: state, Serde: env.Kafka.Serde, Auth: a, Logger: env.Log, Wait: wait})
			if err != nil {
				return err
			}
			mux := auth.NewMux(a)
			a.Mount(mux) // POST /v1/login, /v1/logout, GET /v1/whoami
			mux.Mount("/", h)
			return env.Serve("redemption api", daemon.NewServer(httpAddr, mux))
		},
	})
}
