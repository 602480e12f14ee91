package pseudonym

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/minecart/minecart/schemas/avro"
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
	sealKeyIDLen = 8
	sealNonceLen = 12
	sealHeader   = len(sealMagic) + sealKeyIDLen + sealNonceLen
	// SealKeySize is the size of the pseudonym-sealing key.
	SealKeySize = 32
)

// ErrSealed is a sealed value that does not open under this key.
var ErrSealed = errors.New("pseudonym record does not open under this sealing key")

// SealKey seals and opens the records of the pseudonyms topic.
type SealKey struct {
	id   [sealKeyIDLen]byte
	aead cipher.AEAD
}

// NewSealKey returns the sealing key of raw (SealKeySize bytes).
func NewSealKey(raw []byte) (*SealKey, error) {
	if len(raw) != SealKeySize {
		return nil, fmt.Errorf("pseudonym-sealing key of %d bytes: want %d", len(raw), SealKeySize)
	}
	blk, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(blk)
	if err != nil {
		return nil, err
	}
	k := &SealKey{aead: aead}
	sum := sha256.Sum256(append([]byte("minecart-pseudonym-key-id\x00"), raw...))
	copy(k.id[:], sum[:])
	return k, nil
}

// GenerateSealKey returns a new random sealing key and its bytes.
func GenerateSealKey() (*SealKey, []byte) {
	raw := make([]byte, SealKeySize)
	_, _ = rand.Read(raw)
	k, _ := NewSealKey(raw)
	return k, raw
}

// LoadOrCreateSealKey reads the sealing key file (64 hex digits and a
// newline), creating it (0600) on first use.
func LoadOrCreateSealKey(path string) (*SealKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		k, raw := GenerateSealKey()
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("pseudonym-sealing key: %w", err)
		}
		_, werr := f.WriteString(hex.EncodeToString(raw) + "\n")
		if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
			return nil, fmt.Errorf("pseudonym-sealing key %s: %w", path, err)
		}
		return k, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pseudonym-sealing key: %w", err)
	}
	raw, err := hex.DecodeString(string(bytes.TrimSpace(b)))
	if err != nil {
		return nil, fmt.Errorf("pseudonym-sealing key %s: %w", path, err)
	}
	return NewSealKey(raw)
}

// LoadSealKey reads an existing sealing key file (the readers of the
// topic: settlement, the owner API, the CLI).
func LoadSealKey(path string) (*SealKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pseudonym-sealing key: %w", err)
	}
	raw, err := hex.DecodeString(string(bytes.TrimSpace(b)))
	if err != nil {
		return nil, fmt.Errorf("pseudonym-sealing key %s: %w", path, err)
	}
	return NewSealKey(raw)
}

// ID is the key id as it appears in sealed values (hex).
func (k *SealKey) ID() string { return hex.EncodeToString(k.id[:]) }

func sealAAD(pseudonym string) []byte {
	return append([]byte("minecart.ledger.pseudonyms/v1\x00"), pseudonym...)
}

// Seal seals an opening's key and id.
func (k *SealKey) Seal(o Opening) []byte {
	var nonce [sealNonceLen]byte
	_, _ = rand.Read(nonce[:])
	return k.sealNonce(o, nonce)
}

func (k *SealKey) sealNonce(o Opening, nonce [sealNonceLen]byte) []byte {
	out := make([]byte, sealHeader, sealHeader+KeySize+len(o.ID)+16)
	copy(out, sealMagic)
	copy(out[len(sealMagic):], k.id[:])
	copy(out[len(sealMagic)+sealKeyIDLen:], nonce[:])
	plain := append(append(make([]byte, 0, KeySize+len(o.ID)), o.Key...), o.ID...)
	return k.aead.Seal(out, nonce[:], plain, sealAAD(o.Pseudonym))
}

// Open opens a sealed value of pseudonym p of kind kind and checks that
// the opening opens p.
func (k *SealKey) Open(p string, kind Kind, sealed []byte) (Opening, error) {
	o := Opening{Pseudonym: p, Kind: kind}
	if len(sealed) < sealHeader || string(sealed[:len(sealMagic)]) != sealMagic {
		return o, fmt.Errorf("%w: no sealed header", ErrSealed)
	}
	if !bytes.Equal(sealed[len(sealMagic):len(sealMagic)+sealKeyIDLen], k.id[:]) {
		return o, fmt.Errorf("%w: sealed under key %x, this key is %s", ErrSealed, sealed[len(sealMagic):len(sealMagic)+sealKeyIDLen], k.ID())
	}
	plain, err := k.aead.Open(nil, sealed[len(sealMagic)+sealKeyIDLen:sealHeader], sealed[sealHeader:], sealAAD(p))
	if err != nil || len(plain) < KeySize {
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
