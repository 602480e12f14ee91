package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/merkle"
)

// quorumFlags are the client checks of `ledger verify` (docs/ledger.md,
// "Clients check the quorum").
type quorumFlags struct {
	policy, cosigned, state string
}

// readCosigned reads the published checkpoint: an http(s) URL
// (<http-addr>/ledger/checkpoint, a mirror's /ledger/checkpoint) or a file.
func readCosigned(ctx context.Context, src string) (string, error) {
	if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
		if err != nil {
			return "", err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", fmt.Errorf("--cosigned %s: %w", src, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return "", fmt.Errorf("--cosigned %s: %w", src, err)
		}
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("--cosigned %s: %s: %s", src, resp.Status, strings.TrimSpace(string(b)))
		}
		return string(b), nil
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return "", fmt.Errorf("--cosigned: %w", err)
	}
	return string(b), nil
}

// checkQuorum checks the published checkpoint against the policy, the
// last checkpoint seen (the state file) and the verified book: the
// consistency proof from the last seen comes from the rebuilt tree, and
// a checkpoint within the book must have the book's root. It then keeps
// it as the last seen.
func checkQuorum(ctx context.Context, w io.Writer, src ledger.BlockSource, pub []byte, q quorumFlags) error {
	text, err := os.ReadFile(q.policy)
	if err != nil {
		return fmt.Errorf("--policy: %w", err)
	}
	policy, err := ledger.ParsePolicy(text)
	if err != nil {
		return err
	}
	cosigned, err := readCosigned(ctx, q.cosigned)
	if err != nil {
		return err
	}
	var last string
	if q.state != "" {
		if last, err = ledger.ReadSeen(q.state); err != nil {
			return err
		}
	}
	book, err := ledger.Rebuild(ctx, src, pub, nil)
	if err != nil {
		return err
	}
	cp, signers, err := policy.CheckPublished(cosigned, pub, last, func(first, second uint64) ([]merkle.Hash, error) {
		return book.Tree().ConsistencyProof(first, second)
	})
	if err != nil {
		fmt.Fprintf(w, "published checkpoint NOT accepted (%s): %v\n", q.cosigned, err)
		return fmt.Errorf("published checkpoint: %w", err)
	}
	if cp.Size > book.Size() {
		return fmt.Errorf("published checkpoint of size %d is beyond the verified book (%d entries): %w", cp.Size, book.Size(), ledger.ErrNotConsistent)
	}
	if root, err := book.Tree().RootAt(cp.Size); err != nil || root != cp.Root {
		fmt.Fprintf(w, "FORK: the published checkpoint of size %d has root %s, the book's tree of that size %s\n", cp.Size, cp.Root, root)
		return fmt.Errorf("published checkpoint: %w", errFork)
	}
	fmt.Fprintf(w, "published checkpoint: tree size %d, root %s, cosigned by %s (quorum %s)\n",
		cp.Size, cp.Root, strings.Join(signers, ", "), policy.QuorumText())
	if last != "" {
		prev, _ := ledger.VerifyCheckpoint(last, pub) // CheckPublished checked it
		fmt.Fprintf(w, "consistent with the last checkpoint seen (%s): tree size %d\n", q.state, prev.Size)
	}
	if q.state != "" {
		if err := ledger.WriteSeen(q.state, cosigned); err != nil {
			return err
		}
		fmt.Fprintf(w, "kept as the last checkpoint seen in %s\n", q.state)
	}
	return nil
}
