package pseudonym

import (
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/sealbox"
)

// Sealed keys. A record of minecart.ledger.pseudonyms carries its key and
// identity only sealed under the deployment's pseudonym-sealing key (a
// 0600 file, <data-dir>/pseudonyms.key, like the device-registry key of
// the gateway):
//
//	"MCP1" || key id (8) || nonce (12) || AES-256-GCM(key (32) || id) || tag (16)
//
// key id = SHA-256("minecart-pseudonym-key-id\x00" || sealing key)[:8],
// additional data = "minecart.ledger.pseudonyms/v1\x00" || pseudonym, so a
// sealed value copied under another pseudonym does not open.

const sealMagic = "MCP1"

const (
	sealNonceLen = sealbox.NonceLen
	// SealKeySize is the size of the pseudonym-sealing key.
	SealKeySize = sealbox.KeySize
)

// ErrSealed is a sealed value that does not open under this key.
var ErrSealed = errors.New("pseudonym record does not open under this sealing key")

// SealKey seals and opens the records of the pseudonyms topic
// (services/sealbox).
type SealKey struct{ box *sealbox.Box }

// NewSealKey returns the sealing key of raw (SealKeySize bytes).
func NewSealKey(raw []byte) (*SealKey, error) {
	b, err := sealbox.New(raw, sealMagic, "minecart-pseudonym-key-id\x00")
	if err != nil {
		return nil, fmt.Errorf("pseudonym-sealing %w", err)
	}
	return &SealKey{b}, nil
}

// GenerateSealKey returns a new random sealing key and its bytes.
func GenerateSealKey() (*SealKey, []byte) {
	raw := sealbox.NewKey()
	k, _ := NewSealKey(raw)
	return k, raw
}

// LoadOrCreateSealKey reads the sealing key file (64 hex digits and a
// newline, mode 0600), creating it on first use.
func LoadOrCreateSealKey(path string) (*SealKey, error) {
	k, err := LoadSealKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	raw, err := sealbox.CreateKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("pseudonym-sealing key: %w", err)
	}
	return NewSealKey(raw)
}

// LoadSealKey reads an existing sealing key file (the readers of the
// topic: settlement, the owner API, the CLI).
func LoadSealKey(path string) (*SealKey, error) {
	raw, err := sealbox.ReadKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("pseudonym-sealing key: %w", err)
	}
	return NewSealKey(raw)
}

// ID is the key id as it appears in sealed values (hex).
func (k *SealKey) ID() string { return k.box.ID() }

func sealAAD(pseudonym string) []byte {
	return append([]byte("minecart.ledger.pseudonyms/v1\x00"), pseudonym...)
}

// Seal seals an opening's key and id.
func (k *SealKey) Seal(o Opening) []byte {
	return k.box.Seal(sealPlain(o), sealAAD(o.Pseudonym))
}

func (k *SealKey) sealNonce(o Opening, nonce [sealNonceLen]byte) []byte {
	return k.box.SealNonce(sealPlain(o), sealAAD(o.Pseudonym), nonce)
}

func sealPlain(o Opening) []byte {
	return append(append(make([]byte, 0, KeySize+len(o.ID)), o.Key...), o.ID...)
}

// Open opens a sealed value of pseudonym p of kind kind and checks that
// the opening opens p.
func (k *SealKey) Open(p string, kind Kind, sealed []byte) (Opening, error) {
	o := Opening{Pseudonym: p, Kind: kind}
	plain, err := k.box.Open(sealed, sealAAD(p))
	switch {
	case errors.Is(err, sealbox.ErrOpen):
		return o, fmt.Errorf("%w: does not open for %s", ErrSealed, p)
	case err != nil:
		return o, fmt.Errorf("%w: %v", ErrSealed, err)
	case len(plain) < KeySize:
		return o, fmt.Errorf("%w: does not open for %s", ErrSealed, p)
	}
	o.Key, o.ID = plain[:KeySize:KeySize], string(plain[KeySize:])
	if err := o.Check(); err != nil {
		return o, err
	}
	return o, nil
}

// Record is the topic record of an opening, sealed under k.
func (k *SealKey) Record(o Opening, now time.Time) *avro.Pseudonym {
	return &avro.Pseudonym{Pseudonym: o.Pseudonym, Kind: avro.PseudonymKind(o.Kind), Sealed: k.Seal(o), CreatedMs: now.UTC().Truncate(time.Millisecond)}
}

// OpenRecord opens a topic record found under key.
func (k *SealKey) OpenRecord(key string, r *avro.Pseudonym) (Opening, error) {
	if r.Pseudonym != key || !Is(key) {
		return Opening{}, fmt.Errorf("%w: record of %q under key %q", ErrSealed, r.Pseudonym, key)
	}
	return k.Open(key, Kind(r.Kind), r.Sealed)
}
