package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/minecart/minecart/schemas/registry"
	"github.com/minecart/minecart/services/daemon"
	"github.com/minecart/minecart/services/flagenv"
)

// Commands lists the subcommands Command runs, for usage text.
const Commands = `minecart ledger verify [--file FILE] --pubkey KEYFILE    re-verify the whole book (blocks topic or export) with no trust in the operator
minecart ledger export FILE                               write the blocks topic to an export file
minecart ledger prove ENTRY [--file FILE] --pubkey KEYFILE print a proof bundle (JSON) of an entry id or leaf index
minecart ledger check-proof FILE --pubkey KEYFILE          check a proof bundle offline
minecart ledger pubkey --key KEYFILE [--origin O]          print the ledger's public and verifier keys`

// Command runs one ledger subcommand (verify, export, prove, check-proof,
// pubkey) with args, writing results to stdout. Flags may also come from
// MINECART_* environment variables. Exit-code policy is the caller's: a
// failed verification returns its *Inconsistency.
func Command(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("ledger: want a subcommand:\n%s", Commands)
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("ledger "+sub, flag.ContinueOnError)
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
		if err := flagenv.Parse(fs, "MINECART", args); err != nil {
			return err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	source := func() (BlockSource, func() error, error) {
		if *file != "" {
			f, err := os.Open(*file)
			if err != nil {
				return nil, nil, err
			}
			return ReadExport(f), f.Close, nil
		}
		opts, err := kf.ClientOptions()
		if err != nil {
			return nil, nil, err
		}
		serde, err := registry.NewSerde(ctx, registry.Config{URL: kf.RegistryURL, User: kf.RegistryUser, Password: kf.RegistryPassword})
		if err != nil {
			return nil, nil, err
		}
		return &KafkaBlocks{Brokers: kf.BrokerList(), Topic: *topic, Serde: serde, ClientOptions: opts}, func() error { return nil }, nil
	}
	loadPub := func() ([]byte, error) {
		if *pubkey == "" {
			return nil, errors.New("--pubkey required")
		}
		return LoadPublicKey(*pubkey)
	}
	switch sub {
	case "verify":
		pub, err := loadPub()
		if err != nil {
			return err
		}
		src, closeSrc, err := source()
		if err != nil {
			return err
		}
		defer closeSrc()
		start := time.Now()
		sum, err := Verify(ctx, src, pub)
		if err != nil {
			return fmt.Errorf("ledger NOT verified (%d blocks, %d entries checked before): %w", sum.Blocks, sum.Entries, err)
		}
		fmt.Fprintf(stdout, "ledger verified: %d blocks, %d entries (%d credits, %d debits, %d adjustments) in %v\nhead: tree size %d, root %s\n%s",
			sum.Blocks, sum.Entries, sum.Credits, sum.Debits, sum.Adjustments, time.Since(start).Round(time.Millisecond),
			sum.Head.TreeSize, sum.Head.Root, sum.Checkpoint)
		return nil
	case "export":
		if len(pos) != 1 {
			return errors.New("ledger export FILE")
		}
		src, closeSrc, err := source()
		if err != nil {
			return err
		}
		defer closeSrc()
		f, err := os.Create(pos[0])
		if err != nil {
			return err
		}
		n, err := Export(ctx, src, f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "exported %d blocks to %s\n", n, pos[0])
		return nil
	case "prove":
		if len(pos) != 1 {
			return errors.New("ledger prove ENTRY (an entry id or leaf index)")
		}
		pub, err := loadPub()
		if err != nil {
			return err
		}
		src, closeSrc, err := source()
		if err != nil {
			return err
		}
		defer closeSrc()
		b, err := Prove(ctx, src, pub, pos[0])
		if err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(b)
	case "check-proof":
		if len(pos) != 1 {
			return errors.New("ledger check-proof FILE --pubkey KEYFILE")
		}
		pub, err := loadPub()
		if err != nil {
			return err
		}
		f, err := os.Open(pos[0])
		if err != nil {
			return err
		}
		defer f.Close()
		b, err := ReadBundle(f)
		if err != nil {
			return err
		}
		e, err := CheckBundle(b, pub)
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
		priv, err := LoadOrCreateKey(*keyPath)
		if err != nil {
			return err
		}
		s, err := NewSigner(*origin, priv)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n%s\n", encodePub(s.Public()), VerifierKey(*origin, s.Public()))
		return nil
	}
	return fmt.Errorf("ledger: unknown subcommand %q:\n%s", sub, Commands)
}
