// Command settlement runs minecart's settlement alone: the settlement stage
// (ledger entries, bindings, catalog, redemption requests and partner acks
// in; balances, redemption statuses, partner orders, debit requests,
// settled credits and statements out) and the redemption HTTP API. HTTP
// replicas may run with -stage=false: they only produce requests and read
// the stage's state. Every flag can also be set as MINECART_<FLAG>.
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
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/flagenv"
	"github.com/minecart/minecart/services/settlement"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "settlement:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	def := settlement.DefaultPolicy()
	fs := flag.NewFlagSet("settlement", flag.ContinueOnError)
	brokers := fs.String("brokers", "127.0.0.1:9092", "Kafka seed brokers, comma-separated")
	registry := fs.String("registry-url", "", "Schema Registry URL (empty: Avro single-object encoding)")
	httpAddr := fs.String("http-addr", "127.0.0.1:8085", "address of the redemption and balance API (empty: none)")
	metricsAddr := fs.String("metrics-addr", "127.0.0.1:9105", "address of /metrics (empty: none)")
	runStage := fs.Bool("stage", true, "run the settlement stage (false: HTTP replica only)")
	saslSpec := fs.String("kafka-sasl", "", "SASL as mechanism:user:password, mechanism scram-sha-512, scram-sha-256 or plain (empty: none)")
	instance := fs.String("instance-id", "", "this process's part of the transactional id (default: host name + random)")
	debitTimeout := fs.Duration("debit-timeout", def.DebitTimeout, "release a redemption's points if the ledger has not appended its debit after this long")
	keep := fs.Duration("keep-redemptions", def.KeepRedemptions, "how long finished redemptions (and their idempotency keys) stay in the state (0: forever)")
	maxQty := fs.Int("max-quantity", int(def.MaxQuantity), "most units in one redemption")
	wait := fs.Duration("http-wait", 5*time.Second, "how long POST /v1/redemptions waits for a decision before answering 202")
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
	seeds := strings.Split(*brokers, ",")
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	pcfg := pipelines.Config{Brokers: seeds, Logger: log, Registerer: reg, Serde: serde, InstanceID: *instance}
	if *saslSpec != "" {
		mech, err := parseSASL(*saslSpec)
		if err != nil {
			return err
		}
		pcfg.ClientOptions = append(pcfg.ClientOptions, kgo.SASL(mech))
	}
	scfg := settlement.Config{
		Policy: settlement.Policy{DebitTimeout: *debitTimeout, MaxQuantity: int32(*maxQty), KeepRedemptions: *keep},
		Serde:  serde, Logger: log, Registerer: reg, EnsurePartner: settlement.PartnerTopicsEnsurer(pcfg),
	}
	if err := scfg.Validate(); err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 3)
	var servers []*http.Server
	serve := func(addr string, h http.Handler) {
		srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 5 * time.Second}
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
	var closers []func() error
	if *httpAddr != "" {
		prod, err := pipelines.NewProducer(pcfg)
		if err != nil {
			return err
		}
		closers = append(closers, prod.Close)
		state, err := pipelines.NewTable(ctx, pcfg, pipelines.TopicSettlementLog)
		if err != nil {
			return err
		}
		closers = append(closers, state.Close)
		h, err := settlement.NewHandler(settlement.HandlerConfig{Producer: prod, State: state, Serde: serde, Logger: log, Wait: *wait})
		if err != nil {
			return err
		}
		serve(*httpAddr, h)
	}
	if *runStage {
		go func() { errc <- pipelines.Run(ctx, pcfg, settlement.NewStage(scfg)) }()
	}
	log.Info("settlement starting", "brokers", *brokers, "stage", *runStage, "http", *httpAddr)
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	for _, s := range servers {
		if cerr := s.Close(); err == nil {
			err = cerr
		}
	}
	for _, c := range closers {
		if cerr := c(); err == nil {
			err = cerr
		}
	}
	return err
}

// parseSASL reads "mechanism:user:password".
func parseSASL(spec string) (sasl.Mechanism, error) {
	mech, rest, ok := strings.Cut(spec, ":")
	user, pass, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 || user == "" {
		return nil, errors.New("kafka-sasl: want mechanism:user:password")
	}
	switch strings.ToLower(mech) {
	case "scram-sha-512":
		return scram.Auth{User: user, Pass: pass}.AsSha512Mechanism(), nil
	case "scram-sha-256":
		return scram.Auth{User: user, Pass: pass}.AsSha256Mechanism(), nil
	case "plain":
		return plain.Auth{User: user, Pass: pass}.AsMechanism(), nil
	}
	return nil, fmt.Errorf("kafka-sasl: unknown mechanism %q", mech)
}
