package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/witness"
)

// shown is a checkpoint someone was shown, and where it comes from.
type shown struct {
	from, text string
}

// shownCheckpoints reads the checkpoints of `ledger verify --evidence`
// (both of each witness evidence file) and --checkpoint.
func shownCheckpoints(ctx context.Context, evidence, files []string) ([]shown, error) {
	var out []shown
	for _, f := range evidence {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		e, err := witness.ParseEvidence(b)
		if err != nil {
			return nil, fmt.Errorf("--evidence %s: %w", f, err)
		}
		if e.Cosigned != "" {
			out = append(out, shown{f + " (cosigned by the witness)", e.Cosigned})
		}
		out = append(out, shown{f + " (refused by the witness: " + e.Reason + ")", string(e.Request.Checkpoint)})
	}
	for _, f := range files {
		r, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		text, err := ledger.ReadCheckpoint(ctx, r)
		r.Close()
		if err != nil {
			return nil, fmt.Errorf("--checkpoint %s: %w", f, err)
		}
		out = append(out, shown{f, text})
	}
	return out, nil
}

// errFork is returned when the shown checkpoints prove the ledger key
// signed a fork.
var errFork = errors.New("the ledger key signed a fork")

// checkShown compares each shown checkpoint with the verified book (the
// root at its size) and with each other, and names every fork: a
// checkpoint signed by the ledger key whose tree the book does not hold
// (split view or rewritten history), two of the same size with other
// roots (split view).
func checkShown(ctx context.Context, w io.Writer, src ledger.BlockSource, pub []byte, list []shown) error {
	book, err := ledger.Rebuild(ctx, src, pub, nil)
	if err != nil {
		return err
	}
	forked := false
	for _, s := range list {
		cp, err := ledger.VerifyCheckpoint(s.text, pub)
		if err != nil {
			fmt.Fprintf(w, "checkpoint %s: not signed by the ledger key (%v): no evidence against the ledger\n", s.from, err)
			continue
		}
		switch root, rerr := book.Tree().RootAt(cp.Size); {
		case cp.Size > book.Size():
			fmt.Fprintf(w, "checkpoint %s: size %d is beyond the book's head (%d): not judged\n", s.from, cp.Size, book.Size())
		case rerr == nil && root == cp.Root:
			fmt.Fprintf(w, "checkpoint %s: size %d root %s is the book's\n", s.from, cp.Size, cp.Root)
		default:
			forked = true
			fmt.Fprintf(w, "FORK: checkpoint %s: the ledger key signed size %d root %s, but the book's tree of size %d has root %s (split view or rewritten history)\n",
				s.from, cp.Size, cp.Root, cp.Size, root)
		}
	}
	for i := range list {
		for j := i + 1; j < len(list); j++ {
			f, err := ledger.CompareCheckpoints(pub, list[i].text, list[j].text)
			if err == nil && f.Kind == ledger.SplitView {
				forked = true
				fmt.Fprintf(w, "FORK: %s and %s: %v\n", list[i].from, list[j].from, f)
			}
		}
	}
	if forked {
		return fmt.Errorf("ledger verified, but %w (see FORK above)", errFork)
	}
	return nil
}
