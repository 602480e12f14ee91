// Command scoring runs minecart's scoring stage alone: clean telemetry in,
// daily scores, watermarks and late events out. Every flag can also be set
// as MINECART_<FLAG> (e.g. MINECART_BROKERS; services/daemon).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"
	_ "time/tzdata" // day boundaries must not depend on the host's zoneinfo

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/services/daemon"
	"github.com/minecart/minecart/services/pseudonym"
	"github.com/minecart/minecart/services/scoring"
	"github.com/minecart/minecart/services/scoring/stage"
	"github.com/minecart/minecart/services/shred"
)

func main() { daemon.Main("scoring", run) }

func run(ctx context.Context, args []string) error {
	var cfg stage.Config
	var rulesFile, sealPath, pseudonymSeed string
	return daemon.Run(ctx, args, daemon.Service{
		Name: "scoring", MetricsAddr: "127.0.0.1:9102", InstanceID: true,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&cfg.DefaultTZ, "default-tz", "Asia/Shanghai", "time zone of events without one")
			fs.DurationVar(&cfg.Grace, "grace", 2*time.Hour, "how long a day stays open after its local midnight")
			fs.DurationVar(&cfg.Lateness, "lateness", stage.DefaultLateness, "how long after its close a vehicle-day is kept so that late events re-score it (negative: off; docs/scoring.md, Late data)")
			fs.DurationVar(&cfg.MarkExpiry, "mark-expiry", 10*time.Minute, "a gateway whose time mark is this far behind another's no longer holds back the log time")
			fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", 0, "fallback, off by default (0): close days on the wall clock after a task got no record for this long (not replayable; days close on the gateways' time marks)")
			fs.DurationVar(&cfg.TickEvery, "tick", 10*time.Second, "how often closed days left over by a batch are emitted (and, with -idle-timeout, idle tasks checked)")
			fs.IntVar(&cfg.Tasks, "tasks", pipelines.TelemetryPartitions, "partitions of the telemetry topic (P in watermarks)")
			fs.IntVar(&cfg.ReplayDays, "replay-days", 30, "days of trip fingerprints each task keeps for replay detection (negative: off)")
			fs.IntVar(&cfg.ReplayBudget, "replay-budget", 200000, "trip fingerprints kept per day per task")
			fs.StringVar(&rulesFile, "rules", "", "JSON file of scoring rules over the defaults (docs/scoring.md; a new Version is required)")
			fs.StringVar(&sealPath, "pseudonym-key", "", "the ledger's pseudonym-sealing key file: seal every score under its vehicle's key, made here for a vehicle seen first (crypto-shredding, docs/privacy.md; empty: scores in clear)")
			fs.StringVar(&pseudonymSeed, "pseudonym-seed", "", "TESTS AND SIMULATIONS ONLY: derive pseudonym keys from this seed, as the ledger's -pseudonym-seed (the same one)")
		},
		Prepare: func(log *slog.Logger) error {
			rules := scoring.DefaultRules()
			if rulesFile != "" {
				f, err := os.Open(rulesFile)
				if err != nil {
					return err
				}
				rules, err = scoring.LoadRules(f)
				f.Close()
				if err != nil {
					return fmt.Errorf("%s: %w", rulesFile, err)
				}
			}
			cfg.Rules = &rules
			log.Info("scoring rules", "version", rules.Version, "tasks", cfg.Tasks, "grace", cfg.Grace)
			return nil
		},
		Build: func(_ context.Context, env *daemon.Env) error {
			cfg.Serde, cfg.Registerer, cfg.Logger = env.Kafka.Serde, env.Registry, env.Log
			if sealPath != "" {
				names, seal, err := env.LoadPseudonyms(sealPath)
				if err != nil {
					return err
				}
				cfg.Shred = &shred.Keyring{Keys: names, Seal: seal}
				if pseudonymSeed != "" {
					cfg.Shred.Source = pseudonym.Derived(pseudonymSeed)
				}
			}
			st, err := stage.NewStage(cfg)
			if err == nil {
				env.Stage(st)
			}
			return err
		},
	})
}
