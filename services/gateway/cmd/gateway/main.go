// Command gateway runs minecart's device HTTP gateway alone: boxes POST
// signed telemetry batches to /v1/telemetry; /healthz, /readyz on the same
// address, Prometheus /metrics on its own. Every flag can also be set as
// MINECART_<FLAG> (services/daemon).
package main

import (
	"context"
	"flag"
	"time"

	"github.com/minecart/minecart/services/daemon"
	"github.com/minecart/minecart/services/gateway"
)

func main() { daemon.Main("gateway", run) }

func run(ctx context.Context, args []string) error {
	var addr string
	var cfg gateway.Config
	return daemon.Run(ctx, args, daemon.Service{
		Name: "gateway", MetricsAddr: "127.0.0.1:9100",
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&addr, "http-addr", "127.0.0.1:8080", "address of the device API")
			fs.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", 8<<20, "largest request body as sent")
			fs.Int64Var(&cfg.MaxDecodedBytes, "max-decoded-bytes", 32<<20, "largest gzip body once inflated")
			fs.Int64Var(&cfg.MaxInFlightBytes, "max-inflight-bytes", 256<<20, "bytes of requests held at once before answering 429")
			fs.Int64Var(&cfg.MaxDeviceBytes, "max-device-bytes", 0, "bytes one device's requests may hold at once (0: a quarter of -max-inflight-bytes)")
			fs.Int64Var(&cfg.MaxDeviceUnverifiedBytes, "max-device-unverified-bytes", 0, "body bytes one device's not yet verified requests may hold (0: -max-body-bytes)")
			fs.DurationVar(&cfg.BodyTimeout, "body-timeout", 30*time.Second, "time to receive a request's body before answering 408")
			fs.IntVar(&cfg.Limits.MaxEvents, "max-events", 20000, "most events in one batch")
			fs.DurationVar(&cfg.MaxSkew, "max-skew", 5*time.Minute, "how far a request timestamp may be from the gateway's clock")
			fs.Float64Var(&cfg.DeviceRate, "device-rate", 2000, "events per second per device (negative: no limit)")
			fs.DurationVar(&cfg.ProduceTimeout, "produce-timeout", 30*time.Second, "wait for Kafka's acknowledgement before answering 503")
		},
		Build: func(ctx context.Context, env *daemon.Env) error {
			cfg.Pipelines, cfg.Registerer, cfg.Logger = env.Kafka, env.Registry, env.Log
			gw, err := gateway.New(ctx, cfg)
			if err != nil {
				return err
			}
			// On shutdown, finish the requests in flight (their batches are
			// being acknowledged), then close the producer.
			env.OnClose(gw.Close)
			env.ShutdownTimeout = cfg.ProduceTimeout + 5*time.Second
			// The gateway bounds a body's read time itself (BodyTimeout); a
			// response may come BodyTimeout + ProduceTimeout after the headers.
			srv := daemon.NewServer(addr, gw.Handler())
			srv.WriteTimeout = max(srv.WriteTimeout, cfg.BodyTimeout+cfg.ProduceTimeout+30*time.Second)
			return env.Serve("device api", srv)
		},
	})
}
