package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/daemon"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/merkle"
)

// errEntriesTopic marks an entries topic that disagrees with the book or
// holds a checkpoint record that does not verify.
var errEntriesTopic = errors.New("entries topic not verified")

// entriesReport is what checkEntries found.
type entriesReport struct {
	Entries     uint64
	Checkpoints int
	First, Last uint64 // sizes of the first and last checkpoint records
}

// checkEntries reads the entries topic (partition 0, read_committed) and
// checks it against the verified book (docs/ledger.md, "The checkpoint
// record in the entries topic"): each entry record is the book's leaf at
// its index, in index order; each checkpoint record (told by its
// minecart-record header, before any decoding) carries the ledger's
// signature and, with a policy, its quorum of cosignatures; its size is
// that of its key and headers, larger than the previous record's, and no
// more than the entries read before it; its root is the root of those
// entries' first size leaves (and so the book's at that size). The first
// fault is returned; every fault is printed.
func checkEntries(ctx context.Context, w io.Writer, rd *kafka.Reader, serde *schemas.Serde, topic string, book *ledger.Book, pub ed25519.PublicKey, policy *ledger.Policy) (entriesReport, error) {
	var (
		rep    entriesReport
		tree   merkle.Tree
		first  error
		faults int
	)
	fault := func(offset int64, format string, args ...any) {
		faults++
		msg := fmt.Sprintf(format, args...)
		if faults <= 20 {
			fmt.Fprintf(w, "BAD %s offset %d: %s\n", topic, offset, msg)
		}
		if first == nil {
			first = fmt.Errorf("%s offset %d: %s: %w", topic, offset, msg, errEntriesTopic)
		}
	}
	err := rd.ReadAll(ctx, topic, 0, func(r pipelines.Record) error {
		if pipelines.IsCheckpointRecord(&r) {
			size, err := pipelines.CheckpointRecordSize(&r)
			if err != nil {
				fault(r.Offset, "checkpoint record: %v", err)
				return nil
			}
			var cp ledger.Checkpoint
			if policy != nil {
				cp, _, err = policy.VerifyCosigned(string(r.Value), pub)
			} else {
				cp, err = ledger.VerifyCheckpoint(string(r.Value), pub)
			}
			switch {
			case err != nil:
				fault(r.Offset, "checkpoint record of size %d: %v", size, err)
			case cp.Size != size:
				fault(r.Offset, "checkpoint record keyed size %d holds a checkpoint of size %d", size, cp.Size)
			case rep.Checkpoints > 0 && size <= rep.Last:
				fault(r.Offset, "checkpoint record of size %d after one of size %d (twice or out of order)", size, rep.Last)
			case size > tree.Size():
				fault(r.Offset, "checkpoint record of size %d after only %d entries", size, tree.Size())
			default:
				root, _ := tree.RootAt(size)
				if root != cp.Root {
					fault(r.Offset, "FORK: checkpoint record of size %d has root %s, the entries before it %s", size, cp.Root, root)
					return nil
				}
				if rep.Checkpoints == 0 {
					rep.First = size
				}
				rep.Checkpoints++
				rep.Last = size
			}
			return nil
		}
		var le avro.LedgerEntry
		if err := serde.Unmarshal(r.Value, &le); err != nil {
			fault(r.Offset, "entry: %v", err)
			return nil
		}
		if le.LeafIndex != int64(tree.Size()) {
			fault(r.Offset, "entry of leaf index %d where %d comes next", le.LeafIndex, tree.Size())
			return nil
		}
		leaf := merkle.HashLeaf(le.Entry)
		if want, err := book.Tree().LeafHash(tree.Size()); err != nil || want != leaf {
			fault(r.Offset, "entry %d is not the book's leaf %d", le.LeafIndex, le.LeafIndex)
			return nil
		}
		tree.AppendHash(leaf)
		return nil
	})
	rep.Entries = tree.Size()
	if err != nil {
		return rep, fmt.Errorf("read %s: %w", topic, err)
	}
	if faults > 20 {
		fmt.Fprintf(w, "BAD %s: and %d more\n", topic, faults-20)
	}
	return rep, first
}

// printEntries says what checkEntries verified.
func printEntries(w io.Writer, topic string, rep entriesReport, policy *ledger.Policy) {
	fmt.Fprintf(w, "entries topic %s: %d entries, each the book's leaf at its index\n", topic, rep.Entries)
	if rep.Checkpoints == 0 {
		fmt.Fprintf(w, "no checkpoint record in %s\n", topic)
		return
	}
	how := "signed by the ledger key"
	if policy != nil {
		how += ", cosigned by its quorum (" + policy.QuorumText() + ")"
	}
	records := "checkpoint records"
	if rep.Checkpoints == 1 {
		records = "checkpoint record"
	}
	fmt.Fprintf(w, "%d %s in %s (sizes %d to %d, each once and in order): %s, each with the root of the entries before it\n",
		rep.Checkpoints, records, topic, rep.First, rep.Last, how)
}

// checkEntriesTopic rebuilds the verified book and checks the entries
// topic against it (checkEntries), with the policy file if one is given.
func checkEntriesTopic(ctx context.Context, w io.Writer, kf *daemon.Kafka, src ledger.BlockSource, pub []byte, topic, policyFile string) error {
	var policy *ledger.Policy
	if policyFile != "" {
		text, err := os.ReadFile(policyFile)
		if err != nil {
			return fmt.Errorf("--policy: %w", err)
		}
		if policy, err = ledger.ParsePolicy(text); err != nil {
			return err
		}
	}
	book, err := ledger.Rebuild(ctx, src, pub, nil)
	if err != nil {
		return err
	}
	cfg, err := kf.Config(ctx, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		return err
	}
	rd, err := kafka.NewReader(cfg)
	if err != nil {
		return err
	}
	defer rd.Close()
	serde := cfg.Serde
	if serde == nil {
		serde = schemas.SingleObject()
	}
	rep, err := checkEntries(ctx, w, rd, serde, topic, book, pub, policy)
	if err != nil {
		fmt.Fprintf(w, "entries topic %s NOT verified\n", topic)
		return err
	}
	printEntries(w, topic, rep, policy)
	return nil
}
