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
	var addr, keyFile string
	var cfg gateway.Config
	var marks gateway.MarkConfig
	return daemon.Run(ctx, args, daemon.Service{
		Name: "gateway", MetricsAddr: "127.0.0.1:9100",
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&addr, "http-addr", "127.0.0.1:8080", "address of the device API")
			fs.StringVar(&keyFile, "device-key", "", "file of the device-registry key (64 hex characters, mode 0600) that opens the HMAC secrets sealed on the devices topic; empty: HMAC devices are refused")
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
			fs.StringVar(&marks.ID, "mark-id", "", "this gateway's id in its time marks, stable across restarts of the replica (default: the host name)")
			fs.DurationVar(&marks.Every, "mark-every", time.Second, "how often the time marks are written")
			fs.Float64Var(&marks.CatchUpRate, "mark-catch-up-rate", 4, "after a restart, marks catch up from the last one in the log at most this many times as fast as the clock (> 1)")
			fs.Int64Var(&marks.ReadBack, "mark-read-back", 200000, "records read back per partition at start to find the last mark")
		},
		Build: func(ctx context.Context, env *daemon.Env) error {
			cfg.Pipelines, cfg.Registerer, cfg.Logger = env.Kafka, env.Registry, env.Log
			if keyFile != "" {
				k, err := gateway.LoadRegistryKey(keyFile)
				if err != nil {
					return err
				}
				cfg.DeviceKey = k
			} // without one, gateway.New warns that HMAC devices are refused
			gw, err := gateway.New(ctx, cfg)
			if err != nil {
				return err
			}
			// On shutdown, finish the requests in flight (their batches are
			// being acknowledged), then close the producer.
			env.OnClose(gw.Close)
			// Time marks (docs/ingest.md): written every mark-every; on
			// shutdown, once the requests in flight are done and before
			// the producer closes, a leaving mark.
			mk, err := gw.NewMarker(ctx, marks)
			if err != nil {
				return err
			}
			env.OnClose(func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				return mk.Leave(ctx)
			})
			env.Go("time marks", mk.Run)
			env.ShutdownTimeout = cfg.ProduceTimeout + 5*time.Second
			// The gateway bounds a body's read time itself (BodyTimeout); a
			// response may come BodyTimeout + ProduceTimeout after the headers.
			srv := daemon.NewServer(addr, gw.Handler())
			srv.WriteTimeout = max(srv.WriteTimeout, cfg.BodyTimeout+cfg.ProduceTimeout+30*time.Second)
			return env.Serve("device api", srv)
		},
	})
}
