package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/minecart/minecart/services/daemon"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/blocks"
)

// ledgerCommands lists the ledger subcommands, for usage text.
const ledgerCommands = `minecart ledger verify [--file FILE] --pubkey KEYFILE    re-verify the whole book (blocks topic or export) with no trust in the operator
minecart ledger export FILE                               write the blocks topic to an export file
minecart ledger prove ENTRY [--file FILE] --pubkey KEYFILE print a proof bundle (JSON) of an entry id or leaf index
minecart ledger check-proof FILE --pubkey KEYFILE          check a proof bundle offline
minecart ledger pubkey --key KEYFILE [--origin O]          print the ledger's public and verifier keys`

func ledgerCmd(ctx context.Context, args []string) error {
	return ledgerCommand(ctx, args, os.Stdout)
}

// ledgerFlags are the flags of every ledger subcommand.
type ledgerFlags struct {
	kafka  daemon.Kafka // brokers, registry, SASL and TLS, as every service takes them
	topic  string
	file   string
	pubkey string
	key    string
	origin string
}

// ledgerCommand runs one ledger subcommand with args, writing results to
// stdout. A failed verification returns its *ledger.Inconsistency.
func ledgerCommand(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage:\n" + ledgerCommands)
	}
	sub, args := args[0], args[1:]
	var f ledgerFlags
	fs := newFlags("ledger " + sub)
	f.kafka.Register(fs)
	fs.StringVar(&f.topic, "blocks-topic", "", "blocks topic (default minecart.ledger.blocks)")
	fs.StringVar(&f.file, "file", "", "read an export file instead of the blocks topic")
	fs.StringVar(&f.pubkey, "pubkey", "", "ledger public key file (base64, hex, verifier key or PEM)")
	fs.StringVar(&f.key, "key", "", "ledger private key file (pubkey)")
	fs.StringVar(&f.origin, "origin", "minecart/ledger", "log origin (pubkey)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	switch sub {
	case "verify":
		return f.verify(ctx, stdout)
	case "export":
		if len(pos) != 1 {
			return errors.New("ledger export FILE")
		}
		return f.export(ctx, pos[0], stdout)
	case "prove":
		if len(pos) != 1 {
			return errors.New("ledger prove ENTRY (an entry id or leaf index)")
		}
		return f.prove(ctx, pos[0], stdout)
	case "check-proof":
		if len(pos) != 1 {
			return errors.New("ledger check-proof FILE --pubkey KEYFILE")
		}
		return f.checkProof(pos[0], stdout)
	case "pubkey":
		return f.printPubkey(stdout)
	}
	return fmt.Errorf("ledger: unknown subcommand %q:\n%s", sub, ledgerCommands)
}

// parseInterspersed parses flags and returns the positional arguments,
// which may come before or after the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		if args = fs.Args(); len(args) == 0 {
			return pos, nil
		}
		pos, args = append(pos, args[0]), args[1:]
	}
}

// source is the book to read: the export file, or the blocks topic.
func (f *ledgerFlags) source(ctx context.Context) (ledger.BlockSource, func() error, error) {
	if f.file != "" {
		file, err := os.Open(f.file)
		if err != nil {
			return nil, nil, err
		}
		return ledger.ReadExport(file), file.Close, nil
	}
	f.kafka.CreateTopics = false                                           // a reader changes nothing
	cfg, _, err := f.kafka.Config(ctx, slog.New(slog.DiscardHandler), nil) // errors are returned
	if err != nil {
		return nil, nil, err
	}
	r, err := blocks.New(blocks.Config{Kafka: cfg, Topic: f.topic})
	return r, func() error { return nil }, err
}

func (f *ledgerFlags) loadPub() ([]byte, error) {
	if f.pubkey == "" {
		return nil, errors.New("--pubkey required")
	}
	return ledger.LoadPublicKey(f.pubkey)
}

func (f *ledgerFlags) verify(ctx context.Context, stdout io.Writer) error {
	pub, err := f.loadPub()
	if err != nil {
		return err
	}
	src, closeSrc, err := f.source(ctx)
	if err != nil {
		return err
	}
	defer closeSrc()
	start := time.Now()
	sum, err := ledger.Verify(ctx, src, pub)
	if err != nil {
		return fmt.Errorf("ledger NOT verified (%d blocks, %d entries checked before): %w", sum.Blocks, sum.Entries, err)
	}
	fmt.Fprintf(stdout, "ledger verified: %d blocks, %d entries (%d credits, %d debits, %d adjustments) in %v\nhead: tree size %d, root %s\n%s",
		sum.Blocks, sum.Entries, sum.Credits, sum.Debits, sum.Adjustments, time.Since(start).Round(time.Millisecond),
		sum.Head.TreeSize, sum.Head.Root, sum.Checkpoint)
	return nil
}

func (f *ledgerFlags) export(ctx context.Context, path string, stdout io.Writer) error {
	src, closeSrc, err := f.source(ctx)
	if err != nil {
		return err
	}
	defer closeSrc()
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	n, err := ledger.Export(ctx, src, out)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "exported %d blocks to %s\n", n, path)
	return nil
}

func (f *ledgerFlags) prove(ctx context.Context, ref string, stdout io.Writer) error {
	pub, err := f.loadPub()
	if err != nil {
		return err
	}
	src, closeSrc, err := f.source(ctx)
	if err != nil {
		return err
	}
	defer closeSrc()
	b, err := ledger.Prove(ctx, src, pub, ref)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(b)
}

func (f *ledgerFlags) checkProof(path string, stdout io.Writer) error {
	pub, err := f.loadPub()
	if err != nil {
		return err
	}
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	b, err := ledger.ReadBundle(file)
	if err != nil {
		return err
	}
	e, err := ledger.CheckBundle(b, pub)
	if err != nil {
		return fmt.Errorf("proof NOT valid: %w", err)
	}
	fmt.Fprintf(stdout, "proof valid: %s %q (%+d) is leaf %d of the ledger at tree size %d, root %s, signed by the ledger key\n",
		e.Kind, e.ID, e.Delta(), b.LeafIndex, b.TreeSize, b.Root)
	return nil
}

func (f *ledgerFlags) printPubkey(stdout io.Writer) error {
	if f.key == "" {
		return errors.New("--key required")
	}
	priv, err := ledger.LoadOrCreateKey(f.key)
	if err != nil {
		return err
	}
	s, err := ledger.NewSigner(f.origin, priv)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n%s\n", ledger.EncodePublicKey(s.Public()), s.VerifierKey())
	return nil
}
