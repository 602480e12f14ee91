// Command owner runs minecart's owner API alone (services/owner): a
// vehicle's position, track, reports, condition and points, answered from
// ClickHouse, with balances from settlement's state topics and inclusion
// proofs from the ledger's proof API. Callers authenticate (services/auth:
// owners log in with their password and read only their own vehicles,
// operators read every vehicle; --session-key is required). With
// --ledger-key it also serves the web faces (services/web, docs/web.md). Every flag can also be set as MINECART_<FLAG>
// (services/daemon).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/services/auth"
	"github.com/minecart/minecart/services/daemon"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/proofs"
	"github.com/minecart/minecart/services/owner"
	"github.com/minecart/minecart/services/owner/view"
	"github.com/minecart/minecart/services/pseudonym/follow"
	"github.com/minecart/minecart/services/sink"
	"github.com/minecart/minecart/services/web"
)

func main() { daemon.Main("owner", run) }

func run(ctx context.Context, args []string) error {
	var addr, dsn, ledgerURL, ledgerKey, sealPath, policyFile string
	var withView bool
	var af auth.Flags
	return daemon.Run(ctx, args, daemon.Service{
		Name: "owner", MetricsAddr: "127.0.0.1:9107",
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&addr, "http-addr", "127.0.0.1:8086", "address of the owner API")
			fs.StringVar(&dsn, "clickhouse-dsn", sink.DefaultDSN, "ClickHouse DSN with the credentials of a readonly user: http://reader:PASSWORD@host:8123/db (embedded; users in DATA-DIR/clickhouse/users.json) or clickhouse://user:pass@host:9000/db (native); prefer MINECART_CLICKHOUSE_DSN")
			fs.StringVar(&ledgerURL, "ledger-url", "http://127.0.0.1:8084", "base URL of the ledger's proof API (empty: entries without proofs)")
			fs.StringVar(&ledgerKey, "ledger-key", "", "the ledger's public key (a file, or its text: base64, hex, verifier key or PEM): serves the web faces (/, /explorer, /console, /assets/, services/web) whose pages check proofs against it; empty: the API only")
			fs.StringVar(&policyFile, "witness-policy", "", "the ledger's witness policy file: serves GET /v1/ledger/published (the checkpoint published under the quorum, with the policy) for the owner's browser")
			fs.BoolVar(&withView, "view", false, "keep an in-memory view of recent positions, tracks and scores fed from minecart.telemetry.clean and minecart.scores, and answer the requests it covers from it (docs/owner-api.md); a ClickHouse server runs the queries in parallel and does not need it")
			af.Register(fs)
			fs.StringVar(&sealPath, "pseudonym-key", "", "the ledger's pseudonym-sealing key file (its DATA_DIR/pseudonyms.key): /points finds a vehicle's entries by its pseudonym and gives the owner the opening (empty: entries looked up by vehicle id)")
		},
		Prepare: func(*slog.Logger) error {
			_, err := af.Key()
			return err
		},
		Build: func(ctx context.Context, env *daemon.Env) error {
			conn, err := sink.Open(dsn)
			if err != nil {
				return err
			}
			env.OnClose(conn.Close)
			cfg := owner.Config{Conn: conn, Registerer: env.Registry, Logger: env.Log}
			var names *follow.Follower
			if sealPath != "" {
				var err error
				if names, _, err = env.LoadPseudonyms(sealPath); err != nil {
					return err
				}
				cfg.Pseudonyms = names
			}
			if withView {
				cfg.View = view.New(view.Config{})
				fc := owner.FeedConfig{View: cfg.View, Serde: env.Kafka.Serde, Registerer: env.Registry, Logger: env.Log}
				if names != nil {
					fc.Pseudonyms = names // opens the sealed scores (docs/privacy.md)
				}
				feed, err := owner.NewFeed(fc)
				if err != nil {
					return err
				}
				env.Go("owner-view", func(ctx context.Context) error {
					return feed.Run(ctx, func() (owner.TopicReader, error) { return kafka.NewReader(env.Kafka) }, 0)
				})
			}
			if ledgerURL != "" {
				client := proofs.NewClient(&http.Client{Timeout: 5 * time.Second}, ledgerURL)
				cfg.Proofs, cfg.Published = client, client
			}
			if policyFile != "" {
				text, err := os.ReadFile(policyFile)
				if err != nil {
					return fmt.Errorf("--witness-policy: %w", err)
				}
				if cfg.Policy, err = ledger.ParsePolicy(text); err != nil {
					return err
				}
			}
			// Balances: vehicle -> owner bindings and settlement's accounts.
			bindings, err := env.Table(ctx, pipelines.TopicAccounts)
			if err != nil {
				return err
			}
			state, err := env.Table(ctx, pipelines.TopicSettlementLog)
			if err != nil {
				return err
			}
			cfg.Balances = owner.SettlementBalances(bindings, state, env.Kafka.Serde)
			// Callers: credentials (hashes) from their compacted topic; an
			// owner's vehicles from the bindings.
			creds, err := env.Table(ctx, pipelines.TopicCredentials)
			if err != nil {
				return err
			}
			if cfg.Auth, err = af.New(creds, bindings, env.Kafka.Serde, env.Registry, env.Log); err != nil {
				return err
			}
			h, err := owner.NewHandler(cfg)
			if err != nil {
				return err
			}
			mux := auth.NewMux(cfg.Auth)
			cfg.Auth.Mount(mux) // POST /v1/login, /v1/logout, GET /v1/whoami
			if ledgerKey != "" {
				// The web faces; their pages also call the ledger's and
				// settlement's routes, which the ingress routes to them.
				load := ledger.ParsePublicKey
				if _, err := os.Stat(ledgerKey); err == nil {
					load = ledger.LoadPublicKey
				}
				pub, err := load(ledgerKey)
				if err != nil {
					return fmt.Errorf("--ledger-key: %w", err)
				}
				faces, err := web.NewHandler(web.Config{Auth: cfg.Auth, LedgerKey: pub, Vehicles: web.BoundVehicles(bindings, env.Kafka.Serde),
					Catalog: web.SettlementCatalog(state), Metrics: env.Registry, Logger: env.Log, Transfers: true})
				if err != nil {
					return err
				}
				for _, p := range web.Mounts {
					mux.Mount(p, faces)
				}
			}
			mux.Mount("/", h)
			return env.Serve("owner api", daemon.NewServer(addr, mux))
		},
	})
}
