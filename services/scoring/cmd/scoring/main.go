// Command scoring runs minecart's scoring stage alone: clean telemetry in,
// daily scores, watermarks and late events out. Every flag can also be set
// as MINECART_<FLAG> (e.g. MINECART_BROKERS; services/daemon).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"
	_ "time/tzdata" // day boundaries must not depend on the host's zoneinfo

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/services/daemon"
	"github.com/minecart/minecart/services/scoring"
	"github.com/minecart/minecart/services/scoring/stage"
)

func main() { daemon.Main("scoring", run) }

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("scoring", flag.ContinueOnError)
	var kf daemon.Kafka
	var proc daemon.Process
	kf.Register(fs)
	kf.RegisterInstanceID(fs)
	proc.Register(fs, "127.0.0.1:9102")
	tz := fs.String("default-tz", "Asia/Shanghai", "time zone of events without one")
	grace := fs.Duration("grace", 2*time.Hour, "how long a day stays open after its local midnight")
	idle := fs.Duration("idle-timeout", 10*time.Minute, "close days on the wall clock after a task got no record for this long (negative: never)")
	tick := fs.Duration("tick", 10*time.Second, "how often idle tasks are checked")
	tasks := fs.Int("tasks", pipelines.TelemetryPartitions, "partitions of the telemetry topic (P in watermarks)")
	rulesFile := fs.String("rules", "", "JSON file of scoring rules over the defaults (docs/scoring.md; a new Version is required)")
	if err := daemon.Parse(fs, args); err != nil {
		return err
	}
	rules := scoring.DefaultRules()
	if *rulesFile != "" {
		f, err := os.Open(*rulesFile)
		if err != nil {
			return err
		}
		rules, err = scoring.LoadRules(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", *rulesFile, err)
		}
	}
	log := proc.Logger()
	reg := daemon.NewRegistry()
	pcfg, serde, err := kf.Config(ctx, log, reg)
	if err != nil {
		return err
	}
	st, err := stage.NewStage(stage.Config{
		Rules: &rules, DefaultTZ: *tz, Grace: *grace, IdleTimeout: *idle, TickEvery: *tick, Tasks: *tasks,
		Serde: serde, Registerer: reg, Logger: log,
	})
	if err != nil {
		return err
	}
	g, _ := daemon.NewGroup(ctx)
	if err := g.ServeMetrics(proc.MetricsAddr, reg); err != nil {
		return err
	}
	g.Go("stage", func(ctx context.Context) error { return kafka.Run(ctx, pcfg, st) })
	log.Info("scoring starting", "brokers", pcfg.Brokers, "tasks", *tasks, "grace", *grace, "rules", rules.Version)
	return g.Wait()
}
