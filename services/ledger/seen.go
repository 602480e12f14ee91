package ledger

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/mod/sumdb/note"

	"github.com/minecart/minecart/services/ledger/merkle"
)

// What a client does with a published checkpoint (docs/ledger.md,
// "Clients check the quorum"): `minecart ledger verify --policy`, the
// partner example and the owner's browser all run the same rule.

// ErrForgedCosignature marks a checkpoint carrying a signature line under
// a policy witness's key name and key id that does not verify.
var ErrForgedCosignature = errors.New("forged cosignature")

// ErrNotConsistent marks a checkpoint that does not extend the last one
// the client saw (smaller, the same size with another root, or a
// consistency proof that does not verify).
var ErrNotConsistent = errors.New("not consistent with the last checkpoint seen")

// ConsistencyProof gives the consistency proof from the tree of first
// entries to the tree of second entries, from whatever the client can
// reach (its rebuilt book, GET /v1/ledger/consistency, the tiles).
type ConsistencyProof func(first, second uint64) ([]merkle.Hash, error)

// CheckPublished checks a published (cosigned) checkpoint as a client:
// the ledger's signature by pub, no cosignature line of a policy witness
// that fails to verify (ErrForgedCosignature), the policy's quorum
// (ErrQuorum), and, if last (the last checkpoint the client accepted,
// "" for none) is set, that it extends last (ErrNotConsistent; prove is
// only called when the sizes differ). It returns the checkpoint and the
// policy names of its cosigners.
func (p *Policy) CheckPublished(text string, pub ed25519.PublicKey, last string, prove ConsistencyProof) (Checkpoint, []string, error) {
	cp, err := VerifyCheckpoint(text, pub)
	if err != nil {
		return Checkpoint{}, nil, err
	}
	for _, w := range p.Witnesses {
		_, err := note.Open([]byte(text), note.VerifierList(w.Verifier))
		var invalid *note.InvalidSignatureError
		if errors.As(err, &invalid) {
			return cp, nil, fmt.Errorf("checkpoint of size %d: the signature line of witness %s (%s) does not verify: %w", cp.Size, w.Name, w.Verifier.Name(), ErrForgedCosignature)
		}
	}
	cp, signers, err := p.VerifyCosigned(text, pub)
	if err != nil {
		return cp, signers, err
	}
	if last == "" {
		return cp, signers, nil
	}
	prev, err := VerifyCheckpoint(last, pub)
	if err != nil {
		return cp, signers, fmt.Errorf("the last checkpoint seen: %w", err)
	}
	switch {
	case prev.Origin != cp.Origin:
		return cp, signers, fmt.Errorf("origin %q, the last seen %q: %w", cp.Origin, prev.Origin, ErrNotConsistent)
	case cp.Size < prev.Size:
		return cp, signers, fmt.Errorf("size %d is below the last seen size %d (a rollback): %w", cp.Size, prev.Size, ErrNotConsistent)
	case cp.Size == prev.Size:
		if cp.Root != prev.Root {
			return cp, signers, fmt.Errorf("size %d with root %s, the last seen had root %s (a split view): %w", cp.Size, cp.Root, prev.Root, ErrNotConsistent)
		}
		return cp, signers, nil
	}
	proof, err := prove(prev.Size, cp.Size)
	if err != nil {
		return cp, signers, fmt.Errorf("consistency proof %d -> %d: %w", prev.Size, cp.Size, err)
	}
	if err := merkle.VerifyConsistency(prev.Size, cp.Size, proof, prev.Root, cp.Root); err != nil {
		return cp, signers, fmt.Errorf("size %d root %s does not extend the last seen size %d root %s: %v: %w", cp.Size, cp.Root, prev.Size, prev.Root, err, ErrNotConsistent)
	}
	return cp, signers, nil
}

// ReadSeen reads a client's state file: the last checkpoint it accepted
// (its text, as published), "" if the file does not exist.
func ReadSeen(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("checkpoint state: %w", err)
	}
	return string(b), nil
}

// WriteSeen stores the checkpoint a client accepted in its state file,
// atomically and durably (temporary file, fsync, rename, fsync of the
// directory).
func WriteSeen(path, text string) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("checkpoint state: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write([]byte(text))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("checkpoint state: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return fmt.Errorf("checkpoint state: %w", err)
		}
	}
	return nil
}
