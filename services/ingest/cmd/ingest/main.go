// Command ingest runs minecart's ingest stage alone: raw telemetry in,
// validated and de-duplicated telemetry out, rejects to the dead-letter
// topic. Every flag can also be set as MINECART_<FLAG>.
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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/flagenv"
	"github.com/minecart/minecart/services/ingest"
	"github.com/minecart/minecart/services/telemetry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ingest:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	brokers := fs.String("brokers", "127.0.0.1:9092", "Kafka seed brokers, comma-separated")
	registry := fs.String("registry-url", "", "Schema Registry URL (empty: Avro single-object encoding)")
	metricsAddr := fs.String("metrics-addr", "127.0.0.1:9101", "address of /metrics (empty: none)")
	instance := fs.String("instance-id", "", "this process's part of the transactional id (default: host name + random)")
	maxSkew := fs.Duration("max-skew", 5*time.Minute, "how far in the future an event may be")
	maxAge := fs.Duration("max-age", 7*24*time.Hour, "how far in the past an event may be (0: no horizon)")
	maxSpeed := fs.Float64("max-speed-kmh", 300, "highest plausible speed")
	horizon := fs.Duration("dedup-horizon", 48*time.Hour, "how far behind a vehicle's newest event a repeat is still recognised")
	maxRanges := fs.Int("dedup-max-ranges", 64, "seq ranges kept per device")
	maxGap := fs.Duration("dedup-max-gap", time.Hour, "longest time between consecutive seqs that still extends a range")
	if err := flagenv.Parse(fs, "MINECART", args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	serde, err := schemas.NewSerde(ctx, schemas.SerdeConfig{RegistryURL: *registry})
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	st, err := ingest.NewStage(ingest.Config{
		Validation: telemetry.ValidateConfig{MaxSkew: *maxSkew, MaxAge: *maxAge, MaxSpeedKmh: *maxSpeed},
		Dedup:      telemetry.DedupConfig{Horizon: *horizon, MaxRanges: *maxRanges, MaxGap: *maxGap},
		Serde:      serde, Registerer: reg, Logger: log,
	})
	if err != nil {
		return err
	}
	errc := make(chan error, 2)
	var srv *http.Server
	if *metricsAddr != "" {
		srv = &http.Server{Addr: *metricsAddr, Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		errc <- pipelines.Run(ctx, pipelines.Config{
			Brokers: strings.Split(*brokers, ","), Logger: log, Registerer: reg, Serde: serde, InstanceID: *instance,
		}, st)
	}()
	select {
	case <-ctx.Done():
		err = <-errc // Run returns once it has finished its batch
	case err = <-errc:
	}
	cancel()
	if srv != nil {
		if cerr := srv.Close(); err == nil {
			err = cerr
		}
	}
	return err
}
