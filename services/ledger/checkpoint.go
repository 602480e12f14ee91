package ledger

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	tlog "github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/minecart/minecart/services/ledger/merkle"
)

// Checkpoints are C2SP tlog-checkpoints (origin, tree size, root) in C2SP
// signed notes: golang.org/x/mod/sumdb/note signs and opens the notes,
// transparency-dev/formats/log parses the body. The note's key name is the
// log's origin.

// Signer signs block headers and checkpoints with the ledger key.
type Signer struct {
	note noteSigner
	vkey string
}

// noteSigner is the ledger key as a note.Signer: name and key hash from its
// verifier.
type noteSigner struct {
	note.Verifier
	priv ed25519.PrivateKey
}

func (s noteSigner) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(s.priv, msg), nil }

// NewSigner returns a signer for the log named origin (the checkpoint's
// first line and the signed note's key name: no spaces, no '+'). It checks
// everything note.Sign could refuse (the key name; the checkpoint body
// always ends in a newline) by signing one checkpoint, so the signer's
// Sign does not fail.
func NewSigner(origin string, priv ed25519.PrivateKey) (*Signer, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("ledger key: %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	v, vkey, err := verifier(origin, priv.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	s := &Signer{note: noteSigner{Verifier: v, priv: priv}, vkey: vkey}
	if _, _, err := s.Sign(&Header{}); err != nil {
		return nil, fmt.Errorf("ledger origin %q: %w", origin, err)
	}
	return s, nil
}

// verifier returns the signed-note verifier of pub under the key name
// origin, and its verifier key text.
func verifier(origin string, pub ed25519.PublicKey) (note.Verifier, string, error) {
	vkey, err := note.NewEd25519VerifierKey(origin, pub)
	if err != nil {
		return nil, "", fmt.Errorf("ledger key: %w", err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, "", fmt.Errorf("ledger origin %q: want a non-empty name without spaces or '+': %w", origin, err)
	}
	return v, vkey, nil
}

// Origin is the log's name.
func (s *Signer) Origin() string { return s.note.Name() }

// Public is the ledger's public key.
func (s *Signer) Public() ed25519.PublicKey { return s.note.priv.Public().(ed25519.PublicKey) }

// VerifierKey is the signed-note verifier key of the ledger key:
// "<origin>+<key id hex>+<base64(0x01 || public key)>".
func (s *Signer) VerifierKey() string { return s.vkey }

// BlockSigner signs the blocks Book.Append makes: a *Signer.
type BlockSigner interface {
	// Origin is the log's name.
	Origin() string
	// Sign returns the header signature and the signed checkpoint of h.
	Sign(h *Header) (sig []byte, checkpoint string, err error)
}

var _ BlockSigner = (*Signer)(nil)

// Sign returns the header signature and the signed checkpoint of h. The
// error is note.Sign's, which NewSigner's checks rule out; Book.Append
// treats one as fatal (ErrUnusable).
func (s *Signer) Sign(h *Header) (sig []byte, checkpoint string, err error) {
	body := tlog.Checkpoint{Origin: s.Origin(), Size: h.TreeSize, Hash: h.Root[:]}.Marshal()
	cp, err := note.Sign(&note.Note{Text: string(body)}, s.note)
	if err != nil {
		return nil, "", fmt.Errorf("sign checkpoint: %w", err)
	}
	return ed25519.Sign(s.note.priv, h.Marshal()), string(cp), nil
}

// Checkpoint is a parsed and verified checkpoint.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   merkle.Hash
}

// ErrSignature marks a signature or checkpoint that does not verify.
var ErrSignature = errors.New("ledger signature does not verify")

// VerifyCheckpoint parses a signed checkpoint and checks it carries a valid
// signature by pub (under the key name = its origin). Other signature lines
// (witness cosignatures) are allowed and ignored. Only the canonical text
// is accepted: the body as Sign writes it (extension lines may
// follow) and signatures in strict base64, so no byte of a checkpoint can
// change without failing.
func VerifyCheckpoint(text string, pub ed25519.PublicKey) (Checkpoint, error) {
	bad := func(err error) (Checkpoint, error) {
		return Checkpoint{}, fmt.Errorf("checkpoint: %v: %w", err, ErrSignature)
	}
	origin, _, _ := strings.Cut(text, "\n")
	v, _, err := verifier(origin, pub)
	if err != nil {
		return bad(err)
	}
	c, _, n, err := tlog.ParseCheckpoint([]byte(text), origin, v)
	if err != nil {
		return bad(err)
	}
	if len(c.Hash) != merkle.HashSize || !strings.HasPrefix(n.Text, string(c.Marshal())) {
		return bad(errors.New("body not canonical"))
	}
	for _, sig := range append(n.Sigs, n.UnverifiedSigs...) {
		if _, err := base64.StdEncoding.Strict().DecodeString(sig.Base64); err != nil {
			return bad(fmt.Errorf("signature by %s not canonical", sig.Name))
		}
	}
	cp := Checkpoint{Origin: c.Origin, Size: c.Size}
	copy(cp.Root[:], c.Hash)
	return cp, nil
}
