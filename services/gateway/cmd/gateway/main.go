// Command gateway runs minecart's device HTTP gateway alone: boxes POST
// signed telemetry batches to /v1/telemetry; /healthz, /readyz on the same
// address, Prometheus /metrics on its own. Every flag can also be set as
// MINECART_<FLAG> (services/daemon).
package main

import (
	"context"
	"flag"
	"net/http"
	"time"

	"github.com/minecart/minecart/services/daemon"
	"github.com/minecart/minecart/services/gateway"
	"github.com/minecart/minecart/services/telemetry"
)

func main() { daemon.Main("gateway", run) }

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	var kf daemon.Kafka
	var proc daemon.Process
	kf.Register(fs)
	proc.Register(fs, "127.0.0.1:9100")
	addr := fs.String("http-addr", "127.0.0.1:8080", "address of the device API")
	maxBody := fs.Int64("max-body-bytes", 8<<20, "largest request body as sent")
	maxDecoded := fs.Int64("max-decoded-bytes", 64<<20, "largest gzip body once inflated")
	maxInflight := fs.Int64("max-inflight-bytes", 256<<20, "bytes of requests held at once before answering 429")
	maxEvents := fs.Int("max-events", 20000, "most events in one batch")
	maxSkew := fs.Duration("max-skew", 5*time.Minute, "how far a request timestamp may be from the gateway's clock")
	rate := fs.Float64("device-rate", 2000, "events per second per device (negative: no limit)")
	produceTimeout := fs.Duration("produce-timeout", 30*time.Second, "wait for Kafka's acknowledgement before answering 503")
	if err := daemon.Parse(fs, args); err != nil {
		return err
	}
	log := proc.Logger()
	reg := daemon.NewRegistry()
	// The gateway's producer and device table register no runtime metrics
	// of their own: the gateway's are on reg through Registerer.
	pcfg, _, err := kf.Config(ctx, log, nil)
	if err != nil {
		return err
	}
	g, gctx := daemon.NewGroup(ctx)
	gw, err := gateway.New(gctx, gateway.Config{
		Pipelines: pcfg, Registerer: reg, Logger: log,
		Limits:       telemetry.Limits{MaxEvents: *maxEvents},
		MaxBodyBytes: *maxBody, MaxDecodedBytes: *maxDecoded, MaxInFlightBytes: *maxInflight,
		MaxSkew: *maxSkew, DeviceRate: *rate, ProduceTimeout: *produceTimeout,
	})
	if err != nil {
		return err
	}
	// On shutdown, finish the requests in flight (their batches are being
	// acknowledged), then close the producer.
	g.ShutdownTimeout = *produceTimeout + 5*time.Second
	err = g.ServeMetrics(proc.MetricsAddr, reg)
	if err == nil {
		// ReadTimeout bounds how long a slow upload holds its in-flight bytes.
		err = g.Serve("device api", &http.Server{Addr: *addr, Handler: gw.Handler(),
			ReadTimeout: 2 * time.Minute, IdleTimeout: 2 * time.Minute})
	}
	if err != nil {
		g.Stop()
	} else {
		log.Info("gateway listening", "addr", *addr, "brokers", pcfg.Brokers)
	}
	if werr := g.Wait(); err == nil {
		err = werr
	}
	if cerr := gw.Close(); err == nil {
		err = cerr
	}
	return err
}
