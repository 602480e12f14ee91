// Command replaycheck runs minecart's global replay check alone: trip
// fingerprints (one record per LSH band) in, replay verdicts out to
// scoring (docs/scoring.md, "Global replay check"). Every flag can also be
// set as MINECART_<FLAG> (e.g. MINECART_BROKERS; services/daemon).
package main

import (
	"context"
	"flag"
	"log/slog"

	"github.com/minecart/minecart/services/daemon"
	"github.com/minecart/minecart/services/replaycheck/stage"
)

func main() { daemon.Main("replaycheck", run) }

func run(ctx context.Context, args []string) error {
	var cfg stage.Config
	return daemon.Run(ctx, args, daemon.Service{
		Name: "replaycheck", MetricsAddr: "127.0.0.1:9109", InstanceID: true,
		Flags: func(fs *flag.FlagSet) {
			fs.IntVar(&cfg.Days, "replay-days", 30, "days of trip fingerprints each task keeps (as scoring's -replay-days)")
			fs.IntVar(&cfg.Budget, "replay-budget", 200000, "trip fingerprints kept per day per task")
		},
		Prepare: func(log *slog.Logger) error {
			log.Info("replay check", "days", cfg.Days, "budget", cfg.Budget)
			return nil
		},
		Build: func(_ context.Context, env *daemon.Env) error {
			cfg.Registerer, cfg.Logger = env.Registry, env.Log
			st, err := stage.NewStage(cfg)
			if err == nil {
				env.Stage(st)
			}
			return err
		},
	})
}
