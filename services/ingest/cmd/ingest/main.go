// Command ingest runs minecart's ingest stage alone: raw telemetry in,
// validated and de-duplicated telemetry out, rejects to the dead-letter
// topic. Every flag can also be set as MINECART_<FLAG> (services/daemon).
package main

import (
	"context"
	"flag"
	"time"

	"github.com/minecart/minecart/services/daemon"
	"github.com/minecart/minecart/services/ingest"
)

func main() { daemon.Main("ingest", run) }

func run(ctx context.Context, args []string) error {
	var cfg ingest.Config
	return daemon.Run(ctx, args, daemon.Service{
		Name: "ingest", MetricsAddr: "127.0.0.1:9101", InstanceID: true,
		Flags: func(fs *flag.FlagSet) {
			v, d := &cfg.Validation, &cfg.Dedup
			fs.DurationVar(&v.MaxSkew, "max-skew", 5*time.Minute, "how far in the future an event may be")
			fs.DurationVar(&v.MaxAge, "max-age", 7*24*time.Hour, "how far in the past an event may be (0: no horizon)")
			fs.Float64Var(&v.MaxSpeedKmh, "max-speed-kmh", 300, "highest plausible speed")
			fs.DurationVar(&d.Horizon, "dedup-horizon", 48*time.Hour, "how far behind a vehicle's newest event a repeat is still recognised")
			fs.IntVar(&d.MaxRanges, "dedup-max-ranges", 64, "seq ranges kept per device")
			fs.DurationVar(&d.MaxGap, "dedup-max-gap", time.Hour, "longest time between consecutive seqs that still extends a range")
		},
		Build: func(_ context.Context, env *daemon.Env) error {
			cfg.Serde, cfg.Registerer, cfg.Logger = env.Kafka.Serde, env.Registry, env.Log
			st, err := ingest.NewStage(cfg)
			if err == nil {
				env.Stage(st)
			}
			return err
		},
	})
}
