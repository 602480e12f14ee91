// Command gateway runs minecart's device HTTP gateway alone: boxes POST
// signed telemetry batches to /v1/telemetry; /healthz, /readyz on the same
// address, Prometheus /metrics on its own. Every flag can also be set as
// MINECART_<FLAG>.
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
	"github.com/minecart/minecart/services/gateway"
	"github.com/minecart/minecart/services/telemetry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	brokers := fs.String("brokers", "127.0.0.1:9092", "Kafka seed brokers, comma-separated")
	registry := fs.String("registry-url", "", "Schema Registry URL (empty: Avro single-object encoding)")
	addr := fs.String("http-addr", "127.0.0.1:8080", "address of the device API")
	metricsAddr := fs.String("metrics-addr", "127.0.0.1:9100", "address of /metrics (empty: none)")
	maxBody := fs.Int64("max-body-bytes", 8<<20, "largest request body as sent")
	maxDecoded := fs.Int64("max-decoded-bytes", 64<<20, "largest gzip body once inflated")
	maxInflight := fs.Int64("max-inflight-bytes", 256<<20, "bytes of requests held at once before answering 429")
	maxEvents := fs.Int("max-events", 20000, "most events in one batch")
	maxSkew := fs.Duration("max-skew", 5*time.Minute, "how far a request timestamp may be from the gateway's clock")
	rate := fs.Float64("device-rate", 2000, "events per second per device (negative: no limit)")
	produceTimeout := fs.Duration("produce-timeout", 30*time.Second, "wait for Kafka's acknowledgement before answering 503")
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
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	gw, err := gateway.New(ctx, gateway.Config{
		Pipelines:  pipelines.Config{Brokers: strings.Split(*brokers, ","), Logger: log, Serde: serde},
		Registerer: reg, Logger: log,
		Limits:       telemetry.Limits{MaxEvents: *maxEvents},
		MaxBodyBytes: *maxBody, MaxDecodedBytes: *maxDecoded, MaxInFlightBytes: *maxInflight,
		MaxSkew: *maxSkew, DeviceRate: *rate, ProduceTimeout: *produceTimeout,
	})
	if err != nil {
		return err
	}
	errc := make(chan error, 2)
	var servers []*http.Server
	serve := func(addr string, h http.Handler) {
		// ReadTimeout bounds how long a slow upload holds its in-flight bytes.
		srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 2 * time.Minute, IdleTimeout: 2 * time.Minute}
		servers = append(servers, srv)
		go func() {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	if *metricsAddr != "" {
		serve(*metricsAddr, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	}
	serve(*addr, gw.Handler())
	log.Info("gateway listening", "addr", *addr, "brokers", *brokers)
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	// Finish the requests in flight (their batches are being acked), then
	// close the producer.
	sctx, scancel := context.WithTimeout(context.Background(), *produceTimeout+5*time.Second)
	defer scancel()
	for _, s := range servers {
		if serr := s.Shutdown(sctx); err == nil {
			err = serr
		}
	}
	if cerr := gw.Close(); err == nil {
		err = cerr
	}
	return err
}
