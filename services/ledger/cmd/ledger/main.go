// Command ledger runs minecart's reward ledger alone: the ledger stage
// (scores and ledger requests in; signed blocks and entries with proofs
// out) and the proof HTTP API that follows the blocks topic. Checking the
// book is `minecart ledger`. Every flag can also be set as MINECART_<FLAG>
// (services/daemon).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/services/daemon"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/blocks"
	"github.com/minecart/minecart/services/ledger/proofs"
	"github.com/minecart/minecart/services/ledger/stage"
	"github.com/minecart/minecart/services/pseudonym"
	"github.com/minecart/minecart/services/pseudonym/follow"
)

func main() { daemon.Main("ledger", run) }

func run(ctx context.Context, args []string) error {
	var cfg stage.Config
	var dataDir, keyPath, httpAddr, policyPath, sealPath, pseudonymSeed string
	var policy *ledger.Policy
	var createKey bool
	var seal *pseudonym.SealKey
	return daemon.Run(ctx, args, daemon.Service{
		Name: "ledger", MetricsAddr: "127.0.0.1:9104", InstanceID: true,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&dataDir, "data-dir", "data", "directory of the ledger key (ledger.key, created on first run)")
			fs.StringVar(&keyPath, "key", "", "ledger Ed25519 key file (default DATA_DIR/ledger.key)")
			fs.BoolVar(&createKey, "create-key", true, "create the key if the file is missing (false in production: a new key forks the book's signatures)")
			fs.StringVar(&cfg.Origin, "origin", "minecart/ledger", "log origin: first line of every checkpoint")
			fs.IntVar(&cfg.MaxBlockEntries, "max-block-entries", 1000, "most entries in one block")
			fs.StringVar(&httpAddr, "http-addr", "127.0.0.1:8084", "address of the proof API (empty: none)")
			fs.StringVar(&policyPath, "witness-policy", "", "witness policy file (docs/ledger.md, The witness policy): publish checkpoints only with its quorum of cosignatures (empty: publish them as signed)")
			fs.StringVar(&sealPath, "pseudonym-key", "", "pseudonym-sealing key file (default DATA_DIR/pseudonyms.key, created on first run; settlement, owner and the CLI need the same)")
			fs.StringVar(&pseudonymSeed, "pseudonym-seed", "", "TESTS AND SIMULATIONS ONLY: derive pseudonym keys from this seed (reproducible roots; an erasure is then not final)")
		},
		Prepare: func(log *slog.Logger) (err error) {
			if keyPath == "" {
				keyPath = filepath.Join(dataDir, "ledger.key")
			}
			if _, err := os.Stat(keyPath); errors.Is(err, os.ErrNotExist) {
				if !createKey {
					return fmt.Errorf("ledger key %s: missing, and -create-key=false", keyPath)
				}
				log.Warn("creating a new ledger key", "key", keyPath)
			}
			if cfg.Key, err = ledger.LoadOrCreateKey(keyPath); err != nil {
				return err
			}
			if policyPath != "" {
				text, err := os.ReadFile(policyPath)
				if err != nil {
					return err
				}
				if policy, err = ledger.ParsePolicy(text); err != nil {
					return err
				}
			}
			if sealPath == "" {
				sealPath = filepath.Join(dataDir, "pseudonyms.key")
			}
			seal, err = pseudonym.LoadOrCreateSealKey(sealPath)
			return err
		},
		Build: func(_ context.Context, env *daemon.Env) error {
			// The blocks topic is read like the runtime reads (SASL, TLS).
			published, err := blocks.New(blocks.Config{Kafka: env.Kafka})
			if err != nil {
				return err
			}
			cfg.Blocks, cfg.Serde, cfg.Registerer, cfg.Logger = published, env.Kafka.Serde, env.Registry, env.Log
			// The followed topic opens the scores scoring sealed (docs/privacy.md).
			names, err := env.FollowPseudonyms(seal)
			if err != nil {
				return err
			}
			cfg.Pseudonyms = &stage.Pseudonyms{Seal: seal, Load: follow.Loader(env.Kafka, seal, env.Log), Follow: names}
			if pseudonymSeed != "" {
				env.Log.Warn("pseudonym keys derived from -pseudonym-seed: for simulations only, erasures are not final")
				cfg.Pseudonyms.Keys = pseudonym.Derived(pseudonymSeed)
			}
			st, err := stage.NewStage(cfg)
			if err != nil {
				return err
			}
			signer, err := ledger.NewSigner(cfg.Origin, cfg.Key)
			if err != nil {
				return err
			}
			env.Log.Info("ledger key", "verifier_key", signer.VerifierKey())
			if policy != nil {
				if err := policy.CheckLog(signer.VerifierKey()); err != nil {
					return err
				}
				if err := publish(env, published, signer, policy); err != nil {
					return err
				}
			}
			if httpAddr != "" {
				// Bad records of the blocks topic are skipped, counted,
				// logged and dead-lettered (docs/ledger.md, A bad block).
				producer, err := env.Producer()
				if err != nil {
					return err
				}
				alerts, err := blocks.NewAlerts(blocks.AlertsConfig{Kafka: env.Kafka, Producer: producer})
				if err != nil {
					return err
				}
				srv, err := proofs.NewServer(proofs.Config{Blocks: published, PublicKey: signer.Public(), Alerts: alerts, Policy: policy, Registerer: env.Registry, Logger: env.Log})
				if err != nil {
					return err
				}
				env.Go("proofs", srv.Run)
				if policy != nil {
					if err := followCheckpoints(env, srv); err != nil {
						return err
					}
				}
				if err := env.Serve("proof api", daemon.NewServer(httpAddr, srv.Handler())); err != nil {
					return err
				}
			}
			env.Stage(st)
			return nil
		},
	})
}

// publish runs the publisher: the policy's witnesses cosign each new head
// of the blocks topic and the checkpoints with the quorum go to
// minecart.ledger.checkpoints (docs/ledger.md, Publication).
func publish(env *daemon.Env, published *blocks.Reader, signer *ledger.Signer, policy *ledger.Policy) error {
	producer, err := env.Producer()
	if err != nil {
		return err
	}
	store, err := blocks.NewCheckpointStore(env.Kafka, producer, env.Log, env.Registry)
	if err != nil {
		return err
	}
	env.OnClose(func() error { store.Close(); return nil })
	pub, err := stage.NewPublisher(stage.PublisherConfig{
		Blocks: published, PublicKey: signer.Public(), Cosign: stage.CosignConfig{Policy: policy},
		Store: store, Logger: env.Log, Registerer: env.Registry,
	})
	if err != nil {
		return err
	}
	env.Go("publisher", pub.Run)
	return nil
}

// followCheckpoints feeds the proof API the cosigned checkpoints.
func followCheckpoints(env *daemon.Env, srv *proofs.Server) error {
	rd, err := kafka.NewReader(env.Kafka)
	if err != nil {
		return err
	}
	env.OnClose(func() error { rd.Close(); return nil })
	env.Go("checkpoints", func(ctx context.Context) error {
		return rd.Follow(ctx, pipelines.TopicLedgerCheckpoints, func(rec pipelines.Record) error {
			if err := srv.AddCosigned(rec.Value); err != nil {
				env.Log.Error("published checkpoint refused", "key", string(rec.Key), "err", err)
			}
			return nil
		}, func() {})
	})
	return nil
}
