// Command ledger runs minecart's reward ledger alone: the ledger stage
// (scores and ledger requests in; signed blocks and entries with proofs
// out) and the proof HTTP API that follows the blocks topic. With a
// subcommand (verify, export, prove, check-proof, pubkey) it runs that
// instead. Every flag can also be set as MINECART_<FLAG> (services/daemon).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/services/daemon"
	"github.com/minecart/minecart/services/ledger"
)

func main() { daemon.Main("ledger", run) }

func run(ctx context.Context, args []string) error {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return ledger.Command(ctx, args, os.Stdout)
	}
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
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, ledger.Commands)
		}
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
	// Every reader of the blocks topic connects like the runtime (SASL, TLS).
	blocks := func() *ledger.KafkaBlocks {
		return &ledger.KafkaBlocks{Brokers: pcfg.Brokers, Serde: serde, ClientOptions: pcfg.ClientOptions}
	}
	cfg := ledger.Config{Key: key, Origin: *origin, MaxBlockEntries: *maxBlock, Serde: serde,
		Blocks: blocks(), Brokers: pcfg.Brokers, Logger: log, Registerer: reg}
	if err := cfg.Validate(); err != nil {
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
		rd, err := ledger.NewReader(ledger.ReaderConfig{Blocks: blocks(), PublicKey: signer.Public(), Logger: log})
		if err == nil {
			err = g.Serve("proof api", &http.Server{Addr: *httpAddr, Handler: rd.Handler()})
		}
		if err != nil {
			g.Stop()
			return errors.Join(err, g.Wait())
		}
		g.Go("blocks follower", rd.Run)
	}
	g.Go("stage", func(ctx context.Context) error { return kafka.Run(ctx, pcfg, ledger.NewStage(cfg)) })
	log.Info("ledger starting", "brokers", pcfg.Brokers, "key", *keyPath, "verifier_key", ledger.VerifierKey(*origin, signer.Public()))
	return g.Wait()
}
