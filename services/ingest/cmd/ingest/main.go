// Command ingest runs minecart's ingest stage alone: raw telemetry in,
// validated and de-duplicated telemetry out, rejects to the dead-letter
// topic. Every flag can also be set as MINECART_<FLAG> (services/daemon).
package main

import (
	"context"
	"flag"
	"time"

	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/services/daemon"
	"github.com/minecart/minecart/services/ingest"
	"github.com/minecart/minecart/services/telemetry"
)

func main() { daemon.Main("ingest", run) }

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	var kf daemon.Kafka
	var proc daemon.Process
	kf.Register(fs)
	kf.RegisterInstanceID(fs)
	proc.Register(fs, "127.0.0.1:9101")
	maxSkew := fs.Duration("max-skew", 5*time.Minute, "how far in the future an event may be")
	maxAge := fs.Duration("max-age", 7*24*time.Hour, "how far in the past an event may be (0: no horizon)")
	maxSpeed := fs.Float64("max-speed-kmh", 300, "highest plausible speed")
	horizon := fs.Duration("dedup-horizon", 48*time.Hour, "how far behind a vehicle's newest event a repeat is still recognised")
	maxRanges := fs.Int("dedup-max-ranges", 64, "seq ranges kept per device")
	maxGap := fs.Duration("dedup-max-gap", time.Hour, "longest time between consecutive seqs that still extends a range")
	if err := daemon.Parse(fs, args); err != nil {
		return err
	}
	log := proc.Logger()
	reg := daemon.NewRegistry()
	pcfg, serde, err := kf.Config(ctx, log, reg)
	if err != nil {
		return err
	}
	st, err := ingest.NewStage(ingest.Config{
		Validation: telemetry.ValidateConfig{MaxSkew: *maxSkew, MaxAge: *maxAge, MaxSpeedKmh: *maxSpeed},
		Dedup:      telemetry.DedupConfig{Horizon: *horizon, MaxRanges: *maxRanges, MaxGap: *maxGap},
		Serde:      serde, Registerer: reg, Logger: log,
	})
	if err != nil {
		return err
	}
	g, _ := daemon.NewGroup(ctx)
	if err := g.ServeMetrics(proc.MetricsAddr, reg); err != nil {
		return err
	}
	// Run returns once it has committed its in-flight batch.
	g.Go("stage", func(ctx context.Context) error { return kafka.Run(ctx, pcfg, st) })
	log.Info("ingest starting", "brokers", pcfg.Brokers)
	return g.Wait()
}
