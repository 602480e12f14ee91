package ledger

import (
	"crypto/ed25519"
	"fmt"
)

// A fork is two checkpoints signed by the ledger key that cannot both be
// views of one append-only book: the evidence a witness keeps when it
// refuses one (services/witness), or two checkpoints a client saw.

// ForkKind names what two signed checkpoints show.
type ForkKind string

const (
	// SplitView: two checkpoints of the same size with different roots.
	SplitView ForkKind = "split view"
	// Inconsistent: checkpoints of different sizes whose trees are not
	// one prefix of the other (shown by the book, or by a consistency
	// proof that does not verify).
	Inconsistent ForkKind = "rewritten history"
	// NoFork: the same checkpoint, or sizes CompareCheckpoints cannot
	// judge without a book or a proof.
	NoFork ForkKind = ""
)

// Finding is what CompareCheckpoints concludes.
type Finding struct {
	Kind ForkKind
	Size uint64 // the size of both (SplitView)
	A, B Checkpoint
}

func (f Finding) String() string {
	switch f.Kind {
	case SplitView:
		return fmt.Sprintf("split view: the ledger key signed two trees of size %d, roots %s and %s", f.Size, f.A.Root, f.B.Root)
	case Inconsistent:
		return fmt.Sprintf("rewritten history: the tree of size %d (root %s) is not a prefix of the tree of size %d (root %s)", f.A.Size, f.A.Root, f.B.Size, f.B.Root)
	}
	return fmt.Sprintf("no fork shown: sizes %d and %d", f.A.Size, f.B.Size)
}

// CompareCheckpoints verifies both checkpoints (signed by pub; other
// signature lines ignored) and names a split view: the same size, other
// roots. Checkpoints of different sizes need a book (RootAt) or a
// consistency proof to be judged: Kind is NoFork for them.
func CompareCheckpoints(pub ed25519.PublicKey, a, b string) (Finding, error) {
	ca, err := VerifyCheckpoint(a, pub)
	if err != nil {
		return Finding{}, fmt.Errorf("first checkpoint: %w", err)
	}
	cb, err := VerifyCheckpoint(b, pub)
	if err != nil {
		return Finding{}, fmt.Errorf("second checkpoint: %w", err)
	}
	if ca.Size > cb.Size {
		ca, cb = cb, ca
	}
	f := Finding{A: ca, B: cb}
	if ca.Origin == cb.Origin && ca.Size == cb.Size && ca.Root != cb.Root {
		f.Kind, f.Size = SplitView, ca.Size
	}
	return f, nil
}
