// Command ledger runs minecart's reward ledger alone: the ledger stage
// (scores and ledger requests in; signed blocks and entries with proofs
// out) and the proof HTTP API that follows the blocks topic. Checking the
// book is `minecart ledger`. Every flag can also be set as MINECART_<FLAG>
// (services/daemon).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/services/daemon"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/blocks"
	"github.com/minecart/minecart/services/ledger/proofs"
	"github.com/minecart/minecart/services/ledger/stage"
)

func main() { daemon.Main("ledger", run) }

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("ledger", flag.ContinueOnError)
	var kf daemon.Kafka
	var proc daemon.Process
	kf.Register(fs)
	kf.RegisterInstanceID(fs)
	proc.Register(fs, "127.0.0.1:9104")
	dataDir := fs.String("data-dir", "data", "directory of the ledger key (ledger.key, created on first run)")
	keyPath := fs.String("key", "", "ledger Ed25519 key file (default DATA_DIR/ledger.key)")
	createKey := fs.Bool("create-key", true, "create the key if the file is missing (false in production: a new key forks the book's signatures)")
	origin := fs.String("origin", "minecart/ledger", "log origin: first line of every checkpoint")
	maxBlock := fs.Int("max-block-entries", 1000, "most entries in one block")
	httpAddr := fs.String("http-addr", "127.0.0.1:8084", "address of the proof API (empty: none)")
	if err := daemon.Parse(fs, args); err != nil {
		return err
	}
	log := proc.Logger()
	if *keyPath == "" {
		*keyPath = filepath.Join(*dataDir, "ledger.key")
	}
	_, statErr := os.Stat(*keyPath)
	if errors.Is(statErr, os.ErrNotExist) && !*createKey {
		return fmt.Errorf("ledger key %s: missing, and -create-key=false", *keyPath)
	}
	key, err := ledger.LoadOrCreateKey(*keyPath)
	if err != nil {
		return err
	}
	if errors.Is(statErr, os.ErrNotExist) {
		log.Warn("created a new ledger key", "key", *keyPath)
	}
	reg := daemon.NewRegistry()
	pcfg, serde, err := kf.Config(ctx, log, reg)
	if err != nil {
		return err
	}
	// The blocks topic is read like the runtime reads (SASL, TLS).
	published, err := blocks.New(blocks.Config{Kafka: pcfg})
	if err != nil {
		return err
	}
	st, err := stage.NewStage(stage.Config{Key: key, Origin: *origin, MaxBlockEntries: *maxBlock, Serde: serde,
		Blocks: published, Logger: log, Registerer: reg})
	if err != nil {
		return err
	}
	signer, err := ledger.NewSigner(*origin, key)
	if err != nil {
		return err
	}
	g, _ := daemon.NewGroup(ctx)
	if err := g.ServeMetrics(proc.MetricsAddr, reg); err != nil {
		return err
	}
	if *httpAddr != "" {
		rd, err := proofs.NewServer(proofs.Config{Blocks: published, PublicKey: signer.Public(), Logger: log})
		if err == nil {
			err = g.Serve("proof api", &http.Server{Addr: *httpAddr, Handler: rd.Handler()})
		}
		if err != nil {
			g.Stop()
			return errors.Join(err, g.Wait())
		}
		g.Go("proofs", rd.Run)
	}
	g.Go("stage", func(ctx context.Context) error { return kafka.Run(ctx, pcfg, st) })
	log.Info("ledger starting", "brokers", pcfg.Brokers, "key", *keyPath, "verifier_key", signer.VerifierKey())
	return g.Wait()
}
