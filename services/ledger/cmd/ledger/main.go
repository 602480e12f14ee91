// Command ledger runs minecart's reward ledger alone: the ledger stage
// (scores and ledger requests in; signed blocks and entries with proofs
// out) and the proof HTTP API that follows the blocks topic. With a
// subcommand (verify, export, prove, check-proof, pubkey) it runs that
// instead. Every flag can also be set as MINECART_<FLAG>.
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
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/flagenv"
	"github.com/minecart/minecart/services/ledger"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ledger:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return ledger.Command(ctx, args, os.Stdout)
	}
	fs := flag.NewFlagSet("ledger", flag.ContinueOnError)
	brokers := fs.String("brokers", "127.0.0.1:9092", "Kafka seed brokers, comma-separated")
	registry := fs.String("registry-url", "", "Schema Registry URL (empty: Avro single-object encoding)")
	dataDir := fs.String("data-dir", "data", "directory of the ledger key (ledger.key, created on first run)")
	keyPath := fs.String("key", "", "ledger Ed25519 key file (default DATA_DIR/ledger.key)")
	origin := fs.String("origin", "minecart/ledger", "log origin: first line of every checkpoint")
	maxBlock := fs.Int("max-block-entries", 1000, "most entries in one block")
	httpAddr := fs.String("http-addr", "127.0.0.1:8084", "address of the proof API (empty: none)")
	metricsAddr := fs.String("metrics-addr", "127.0.0.1:9104", "address of /metrics (empty: none)")
	instance := fs.String("instance-id", "", "this process's part of the transactional id (default: host name + random)")
	if err := flagenv.Parse(fs, "MINECART", args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, ledger.Commands)
			return nil
		}
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if *keyPath == "" {
		*keyPath = filepath.Join(*dataDir, "ledger.key")
	}
	key, err := ledger.LoadOrCreateKey(*keyPath)
	if err != nil {
		return err
	}
	serde, err := schemas.NewSerde(ctx, schemas.SerdeConfig{RegistryURL: *registry})
	if err != nil {
		return err
	}
	seeds := strings.Split(*brokers, ",")
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg := ledger.Config{Key: key, Origin: *origin, MaxBlockEntries: *maxBlock, Serde: serde, Brokers: seeds, Logger: log, Registerer: reg}
	if err := cfg.Validate(); err != nil {
		return err
	}
	signer, err := ledger.NewSigner(*origin, key)
	if err != nil {
		return err
	}
	log.Info("ledger starting", "brokers", *brokers, "key", *keyPath, "verifier_key", ledger.VerifierKey(*origin, signer.Public()))

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
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if *httpAddr != "" {
		rd, err := ledger.NewReader(ledger.ReaderConfig{
			Blocks: &ledger.KafkaBlocks{Brokers: seeds, Serde: serde}, PublicKey: signer.Public(), Logger: log,
		})
		if err != nil {
			return err
		}
		go func() { errc <- rd.Run(ctx) }()
		serve(*httpAddr, rd.Handler())
	}
	go func() {
		errc <- pipelines.Run(ctx, pipelines.Config{
			Brokers: seeds, Logger: log, Registerer: reg, Serde: serde, InstanceID: *instance,
		}, ledger.NewStage(cfg))
	}()
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
	return err
}
