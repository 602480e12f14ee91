// Command scoring runs minecart's scoring stage alone: clean telemetry in,
// daily scores, watermarks and late events out. Every flag can also be set
// as MINECART_<FLAG> (e.g. MINECART_BROKERS).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	_ "time/tzdata" // day boundaries must not depend on the host's zoneinfo

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/flagenv"
	"github.com/minecart/minecart/services/scoring"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "scoring:", err)
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("scoring", flag.ContinueOnError)
	brokers := fs.String("brokers", "127.0.0.1:9092", "Kafka seed brokers, comma-separated")
	registry := fs.String("registry-url", "", "Schema Registry URL (empty: Avro single-object encoding)")
	metricsAddr := fs.String("metrics-addr", "127.0.0.1:9102", "address of the /metrics endpoint (empty: none)")
	instance := fs.String("instance-id", "", "this process's part of the transactional id (default: host name + random)")
	tz := fs.String("default-tz", "Asia/Shanghai", "time zone of events without one")
	grace := fs.Duration("grace", 2*time.Hour, "how long a day stays open after its local midnight")
	idle := fs.Duration("idle-timeout", 10*time.Minute, "close days on the wall clock after a task got no record for this long (negative: never)")
	tick := fs.Duration("tick", 10*time.Second, "how often idle tasks are checked")
	tasks := fs.Int("tasks", pipelines.TelemetryPartitions, "partitions of the telemetry topic (P in watermarks)")
	rulesFile := fs.String("rules", "", "JSON file of scoring rules over the defaults (docs/scoring.md; a new Version is required)")
	if err := flagenv.Parse(fs, "MINECART", os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))

	serde, err := schemas.NewSerde(ctx, schemas.SerdeConfig{RegistryURL: *registry})
	if err != nil {
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
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	st, err := scoring.NewStage(scoring.Config{
		Rules: &rules, DefaultTZ: *tz, Grace: *grace, IdleTimeout: *idle, TickEvery: *tick, Tasks: *tasks,
		Serde: serde, Registerer: reg, Logger: log,
	})
	if err != nil {
		return err
	}
	if *metricsAddr != "" {
		srv := &http.Server{Addr: *metricsAddr, Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics server", "err", err)
			}
		}()
		defer srv.Close()
	}
	log.Info("scoring starting", "brokers", *brokers, "tasks", *tasks, "grace", *grace, "rules", rules.Version)
	return pipelines.Run(ctx, pipelines.Config{
		Brokers: strings.Split(*brokers, ","), Logger: log, Registerer: reg, Serde: serde, InstanceID: *instance,
	}, st)
}
