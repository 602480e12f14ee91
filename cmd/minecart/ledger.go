package main

import (
	"context"
	"encoding/json"
	"errors"
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

// ledgerCommand runs one ledger subcommand (verify, export, prove,
// check-proof, pubkey) with args, writing results to stdout. A failed
// verification returns its *ledger.Inconsistency.
func ledgerCommand(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage:\n" + ledgerCommands)
	}
	sub, args := args[0], args[1:]
	fs := newFlags("ledger " + sub)
	var kf daemon.Kafka // brokers, registry, SASL and TLS, as every service takes them
	kf.Register(fs)
	topic := fs.String("blocks-topic", "", "blocks topic (default minecart.ledger.blocks)")
	file := fs.String("file", "", "read an export file instead of the blocks topic")
	pubkey := fs.String("pubkey", "", "ledger public key file (base64, hex, verifier key or PEM)")
	keyPath := fs.String("key", "", "ledger private key file (pubkey)")
	origin := fs.String("origin", "minecart/ledger", "log origin (pubkey)")
	// Positional arguments may come before or after the flags.
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		if args = fs.Args(); len(args) == 0 {
			break
		}
		pos, args = append(pos, args[0]), args[1:]
	}
	arg := func(usage string) (string, error) {
		if len(pos) != 1 {
			return "", errors.New(usage)
		}
		return pos[0], nil
	}
	loadPub := func() ([]byte, error) {
		if *pubkey == "" {
			return nil, errors.New("--pubkey required")
		}
		return ledger.LoadPublicKey(*pubkey)
	}
	// withBook calls fn with the book (the export file or the blocks topic)
	// and, unless noKey, the ledger public key.
	withBook := func(noKey bool, fn func(src ledger.BlockSource, pub []byte) error) error {
		var pub []byte
		if !noKey {
			var err error
			if pub, err = loadPub(); err != nil {
				return err
			}
		}
		if *file != "" {
			f, err := os.Open(*file)
			if err != nil {
				return err
			}
			defer f.Close()
			return fn(ledger.ReadExport(f), pub)
		}
		kf.CreateTopics = false                                           // a reader changes nothing
		cfg, _, err := kf.Config(ctx, slog.New(slog.DiscardHandler), nil) // errors are returned
		if err != nil {
			return err
		}
		src, err := blocks.New(blocks.Config{Kafka: cfg, Topic: *topic})
		if err != nil {
			return err
		}
		return fn(src, pub)
	}
	switch sub {
	case "verify":
		return withBook(false, func(src ledger.BlockSource, pub []byte) error {
			start := time.Now()
			sum, err := ledger.Verify(ctx, src, pub)
			if err != nil {
				return fmt.Errorf("ledger NOT verified (%d blocks, %d entries checked before): %w", sum.Blocks, sum.Entries, err)
			}
			fmt.Fprintf(stdout, "ledger verified: %d blocks, %d entries (%d credits, %d debits, %d adjustments) in %v\nhead: tree size %d, root %s\n%s",
				sum.Blocks, sum.Entries, sum.Credits, sum.Debits, sum.Adjustments, time.Since(start).Round(time.Millisecond),
				sum.Head.TreeSize, sum.Head.Root, sum.Checkpoint)
			return nil
		})
	case "export":
		path, err := arg("ledger export FILE")
		if err != nil {
			return err
		}
		return withBook(true, func(src ledger.BlockSource, _ []byte) error {
			f, err := os.Create(path)
			if err != nil {
				return err
			}
			n, err := ledger.Export(ctx, src, f)
			if err = errors.Join(err, f.Close()); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "exported %d blocks to %s\n", n, path)
			return nil
		})
	case "prove":
		ref, err := arg("ledger prove ENTRY (an entry id or leaf index)")
		if err != nil {
			return err
		}
		return withBook(false, func(src ledger.BlockSource, pub []byte) error {
			b, err := ledger.Prove(ctx, src, pub, ref)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(b)
		})
	case "check-proof":
		path, err := arg("ledger check-proof FILE --pubkey KEYFILE")
		if err != nil {
			return err
		}
		pub, err := loadPub()
		if err != nil {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		b, err := ledger.ReadBundle(f)
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
	case "pubkey":
		if *keyPath == "" {
			return errors.New("--key required")
		}
		priv, err := ledger.LoadOrCreateKey(*keyPath)
		if err != nil {
			return err
		}
		s, err := ledger.NewSigner(*origin, priv)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n%s\n", ledger.EncodePublicKey(s.Public()), s.VerifierKey())
		return nil
	}
	return fmt.Errorf("ledger: unknown subcommand %q:\n%s", sub, ledgerCommands)
}
