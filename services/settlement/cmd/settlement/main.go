// Command settlement runs minecart's settlement alone: the settlement stage
// (ledger entries, bindings, catalog, redemption requests and partner acks
// in; balances, redemption statuses, partner orders, debit requests,
// settled credits and statements out) and the redemption HTTP API. HTTP
// replicas may run with -stage=false: they only produce requests and read
// the stage's state. Every flag can also be set as MINECART_<FLAG>
// (services/daemon).
package main

import (
	"context"
	"errors"
	"flag"
	"net/http"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/services/daemon"
	"github.com/minecart/minecart/services/settlement"
	"github.com/minecart/minecart/services/settlement/api"
	"github.com/minecart/minecart/services/settlement/stage"
)

func main() { daemon.Main("settlement", run) }

func run(ctx context.Context, args []string) error {
	def := settlement.DefaultPolicy()
	fs := flag.NewFlagSet("settlement", flag.ContinueOnError)
	var kf daemon.Kafka
	var proc daemon.Process
	kf.Register(fs)
	kf.RegisterInstanceID(fs)
	proc.Register(fs, "127.0.0.1:9105")
	httpAddr := fs.String("http-addr", "127.0.0.1:8085", "address of the redemption and balance API (empty: none)")
	runStage := fs.Bool("stage", true, "run the settlement stage (false: HTTP replica only)")
	debitTimeout := fs.Duration("debit-timeout", def.DebitTimeout, "release a redemption's points if the ledger has not appended its debit after this long")
	keep := fs.Duration("keep-redemptions", def.KeepRedemptions, "how long finished redemptions (and their idempotency keys) stay in the state (0: forever)")
	maxQty := fs.Int("max-quantity", int(def.MaxQuantity), "most units in one redemption")
	wait := fs.Duration("http-wait", 5*time.Second, "how long POST /v1/redemptions waits for a decision before answering 202")
	if err := daemon.Parse(fs, args); err != nil {
		return err
	}
	if !*runStage && *httpAddr == "" {
		return errors.New("nothing to run: -stage=false and no -http-addr")
	}
	log := proc.Logger()
	reg := daemon.NewRegistry()
	pcfg, serde, err := kf.Config(ctx, log, reg)
	if err != nil {
		return err
	}
	var st pipelines.Stage
	if *runStage {
		st, err = stage.NewStage(stage.Config{
			Policy: settlement.Policy{DebitTimeout: *debitTimeout, MaxQuantity: int32(*maxQty), KeepRedemptions: *keep},
			Serde:  serde, Logger: log, Registerer: reg,
			// Partner topics are created over the same (SASL, TLS) connection.
			EnsurePartner: func(ctx context.Context, partner string) error {
				return kafka.EnsureTopicsWith(ctx, pcfg, settlement.PartnerTopics(partner))
			},
		})
		if err != nil {
			return err
		}
	}

	g, gctx := daemon.NewGroup(ctx)
	var closers []func() error
	err = g.ServeMetrics(proc.MetricsAddr, reg)
	if err == nil && *httpAddr != "" {
		closers, err = serveAPI(gctx, g, pcfg, *httpAddr, *wait)
	}
	if err != nil {
		g.Stop()
	} else {
		if *runStage {
			g.Go("stage", func(ctx context.Context) error { return kafka.Run(ctx, pcfg, st) })
		}
		log.Info("settlement starting", "brokers", pcfg.Brokers, "stage", *runStage, "http", *httpAddr)
	}
	err = errors.Join(err, g.Wait())
	for _, c := range closers {
		err = errors.Join(err, c())
	}
	return err
}

// serveAPI starts the redemption API in g: a producer of requests and a
// table of the stage's state. It returns what to close once g is done.
func serveAPI(ctx context.Context, g *daemon.Group, pcfg kafka.Config, addr string, wait time.Duration) (closers []func() error, err error) {
	prod, err := kafka.NewProducer(pcfg)
	if err != nil {
		return nil, err
	}
	closers = append(closers, prod.Close)
	state, err := kafka.NewTable(ctx, pcfg, pipelines.TopicSettlementLog)
	if err != nil {
		return closers, err
	}
	closers = append(closers, state.Close)
	h, err := api.NewHandler(api.Config{Producer: prod, State: state, Serde: pcfg.Serde, Logger: pcfg.Logger, Wait: wait})
	if err != nil {
		return closers, err
	}
	return closers, g.Serve("redemption api", &http.Server{Addr: addr, Handler: h})
}
