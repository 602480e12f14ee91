package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v4"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/services/daemon"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/blocks"
)

// ledgerCommand declares `minecart ledger`: check the book (the blocks
// topic or an export of it) with no trust in the operator. A failed
// verification returns its *ledger.Inconsistency.
func ledgerCommand(stdout io.Writer) *ff.Command {
	var kf daemon.Kafka // brokers, registry, SASL and TLS, as every service takes them
	cmd := adminCommand("ledger", "check the book with no trust in the operator", &kf)
	var topic, file, pubkey, keyPath, origin, since string
	var evidence, checkpoints []string
	var quorum quorumFlags
	var entries bool
	var entriesTopic string
	source := func(fs *flag.FlagSet) {
		fs.StringVar(&topic, "blocks-topic", "", "blocks topic (default minecart.ledger.blocks)")
		fs.StringVar(&file, "file", "", "read an export file instead of the blocks topic")
	}
	pubkeyFlag := func(fs *flag.FlagSet) {
		fs.StringVar(&pubkey, "pubkey", "", "ledger public key file (base64, hex, verifier key or PEM)")
	}
	sourceAndKey := func(fs *flag.FlagSet) { source(fs); pubkeyFlag(fs) }
	subcommand := func(name, args, short string, flags func(fs *flag.FlagSet), exec func(ctx context.Context, pos []string) error) {
		cmd.Subcommands = append(cmd.Subcommands, newCommand(cmd, name, args, short, flags, exec))
	}
	arg := func(pos []string, usage string) (string, error) {
		if len(pos) != 1 {
			return "", usageError{errors.New(usage)}
		}
		return pos[0], nil
	}
	loadPub := func() ([]byte, error) {
		if pubkey == "" {
			return nil, errors.New("--pubkey required")
		}
		return ledger.LoadPublicKey(pubkey)
	}
	// withBook calls fn with the book (the export file or the blocks topic)
	// and, unless noKey, the ledger public key.
	withBook := func(ctx context.Context, noKey bool, fn func(src ledger.BlockSource, pub []byte) error) error {
		var pub []byte
		if !noKey {
			var err error
			if pub, err = loadPub(); err != nil {
				return err
			}
		}
		if file != "" {
			f, err := os.Open(file)
			if err != nil {
				return err
			}
			defer f.Close()
			return fn(ledger.ReadExport(f), pub)
		}
		kf.CreateTopics = false                                        // a reader changes nothing
		cfg, err := kf.Config(ctx, slog.New(slog.DiscardHandler), nil) // errors are returned
		if err != nil {
			return err
		}
		src, err := blocks.New(blocks.Config{Kafka: cfg, Topic: topic})
		if err != nil {
			return err
		}
		return fn(src, pub)
	}
	subcommand("verify", "", "re-verify the whole book (blocks topic or export): every leaf, root, block link and signature", func(fs *flag.FlagSet) {
		sourceAndKey(fs)
		fs.StringVar(&since, "since", "", "a checkpoint saved earlier (GET /v1/ledger/head JSON, an export, a proof bundle or the checkpoint text): prove the book extends it")
		fs.Func("evidence", "a witness's evidence file (<state-dir>/evidence/*.txt): check both checkpoints in it against the book and name a fork (repeatable)", func(v string) error {
			evidence = append(evidence, v)
			return nil
		})
		fs.StringVar(&quorum.policy, "policy", "", "a witness policy file: check the published checkpoint (--cosigned) has its quorum of valid cosignatures, no forged one, the book's root, and extends the last one seen (--state)")
		fs.StringVar(&quorum.cosigned, "cosigned", "", "with --policy: the published checkpoint, a file or a URL (http://<http-addr>/ledger/checkpoint)")
		fs.StringVar(&quorum.state, "state", "", "with --policy: the file keeping the last published checkpoint accepted (created on first use)")
		fs.Func("checkpoint", "a checkpoint someone was shown (any form --since takes): check it against the book and the others, name a fork (repeatable)", func(v string) error {
			checkpoints = append(checkpoints, v)
			return nil
		})
		fs.BoolVar(&entries, "entries", false, "also read the entries topic: every entry must be the book's leaf at its index, every checkpoint record in it signed (with --policy: its quorum), once, in order, with the root of the entries before it")
		fs.StringVar(&entriesTopic, "entries-topic", "", "with --entries: the entries topic (default minecart.ledger.entries)")
	}, func(ctx context.Context, _ []string) error {
		if (quorum.policy != "" && quorum.cosigned == "" && !entries) || (quorum.cosigned != "" && quorum.policy == "") || (quorum.state != "" && quorum.cosigned == "") {
			return usageError{errors.New("--policy and --cosigned go together (and --state with them); --policy alone goes with --entries")}
		}
		if entries && file != "" {
			return usageError{errors.New("--entries reads the entries topic: not with --file")}
		}
		shown, err := shownCheckpoints(ctx, evidence, checkpoints)
		if err != nil {
			return err
		}
		var earlier string
		if since != "" {
			f, err := os.Open(since)
			if err != nil {
				return err
			}
			earlier, err = ledger.ReadCheckpoint(ctx, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("--since %s: %w", since, err)
			}
		}
		err = withBook(ctx, false, func(src ledger.BlockSource, pub []byte) error {
			start := time.Now()
			sum, err := ledger.VerifySince(ctx, src, pub, earlier)
			var bad *ledger.BadRecords
			if err != nil && !errors.As(err, &bad) {
				return fmt.Errorf("ledger NOT verified (%d blocks, %d entries checked before): %w", sum.Blocks, sum.Entries, err)
			}
			if bad != nil {
				// The rest of the book verified; each bad record is
				// named, and the command fails.
				for _, r := range bad.Listed {
					fmt.Fprintf(stdout, "bad record: %v\n", r)
				}
				if n := bad.Count - uint64(len(bad.Listed)); n > 0 {
					fmt.Fprintf(stdout, "bad record: and %d more\n", n)
				}
				fmt.Fprintf(stdout, "%d records skipped (%s): they do not extend the verified book\n", bad.Count, byReason(bad))
			}
			fmt.Fprintf(stdout, "ledger verified: %d blocks, %d entries (%d credits, %d debits, %d adjustments) in %v\nhead: tree size %d, root %s\n",
				sum.Blocks, sum.Entries, sum.Credits, sum.Debits, sum.Adjustments, time.Since(start).Round(time.Millisecond),
				sum.Head.TreeSize, sum.Head.Root)
			if sum.Transfers > 0 {
				fmt.Fprintf(stdout, "transfer entries (every phase, docs/economy.md): %d\n", sum.Transfers)
			}
			if sum.Rescores > 0 {
				fmt.Fprintf(stdout, "rescore entries (late data, docs/ledger.md \"Rescore\"): %d\n", sum.Rescores)
			}
			if err != nil {
				fmt.Fprint(stdout, sum.Checkpoint)
				return fmt.Errorf("ledger NOT verified: %w", err)
			}
			if earlier != "" {
				cp, _ := ledger.VerifyCheckpoint(earlier, pub) // VerifySince checked it
				fmt.Fprintf(stdout, "consistent with the earlier checkpoint (%s): tree size %d, root %s\n", since, cp.Size, cp.Root)
			}
			fmt.Fprint(stdout, sum.Checkpoint)
			return nil
		})
		if err != nil {
			return err
		}
		if entries {
			if err := withBook(ctx, false, func(src ledger.BlockSource, pub []byte) error {
				return checkEntriesTopic(ctx, stdout, &kf, src, pub, cmp.Or(entriesTopic, pipelines.TopicLedgerEntries), quorum.policy)
			}); err != nil {
				return err
			}
		}
		if quorum.cosigned != "" {
			if err := withBook(ctx, false, func(src ledger.BlockSource, pub []byte) error { // read again: a file is read once
				return checkQuorum(ctx, stdout, src, pub, quorum)
			}); err != nil {
				return err
			}
		}
		if len(shown) == 0 {
			return nil
		}
		return withBook(ctx, false, func(src ledger.BlockSource, pub []byte) error {
			return checkShown(ctx, stdout, src, pub, shown)
		})
	})
	subcommand("export", "FILE", "write the blocks topic to an export file (with --pubkey, only the verified book)", sourceAndKey, func(ctx context.Context, pos []string) error {
		path, err := arg(pos, "want the export FILE")
		if err != nil {
			return err
		}
		return withBook(ctx, pubkey == "", func(src ledger.BlockSource, pub []byte) error {
			f, err := os.Create(path)
			if err != nil {
				return err
			}
			var skipped uint64
			n, err := ledger.Export(ctx, src, pub, f, func(r *ledger.BadRecord) {
				skipped++
				fmt.Fprintf(stdout, "skipped record: %v\n", r)
			})
			if err = errors.Join(err, f.Close()); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "exported %d blocks to %s", n, path)
			if skipped > 0 {
				fmt.Fprintf(stdout, " (%d records skipped)", skipped)
			}
			fmt.Fprintln(stdout)
			return nil
		})
	})
	subcommand("prove", "ENTRY", "print a proof bundle (JSON) of an entry id or leaf index", sourceAndKey, func(ctx context.Context, pos []string) error {
		ref, err := arg(pos, "want the ENTRY (an entry id or leaf index)")
		if err != nil {
			return err
		}
		return withBook(ctx, false, func(src ledger.BlockSource, pub []byte) error {
			b, err := ledger.Prove(ctx, src, pub, ref)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(b)
		})
	})
	subcommand("check-proof", "FILE", "check a proof bundle offline", pubkeyFlag, func(_ context.Context, pos []string) error {
		path, err := arg(pos, "want the proof bundle FILE")
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
	})
	subcommand("pubkey", "", "print the ledger's public and verifier keys", func(fs *flag.FlagSet) {
		fs.StringVar(&keyPath, "key", "", "ledger private key file")
		fs.StringVar(&origin, "origin", "minecart/ledger", "log origin")
	}, func(context.Context, []string) error {
		if keyPath == "" {
			return errors.New("--key required")
		}
		priv, err := ledger.LoadOrCreateKey(keyPath)
		if err != nil {
			return err
		}
		s, err := ledger.NewSigner(origin, priv)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n%s\n", ledger.EncodePublicKey(s.Public()), s.VerifierKey())
		return nil
	})
	return cmd
}

// byReason is "2 duplicate, 1 forged" in the order of ledger.Reasons.
func byReason(bad *ledger.BadRecords) string {
	var parts []string
	for _, r := range ledger.Reasons {
		if n := bad.ByReason[r]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, r))
		}
	}
	return strings.Join(parts, ", ")
}
