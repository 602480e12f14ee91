// Package sealbox seals small values (device secrets, pseudonym keys)
// under a 32-byte key with AES-256-GCM, in one layout:
//
//	magic (4) || key id (8) || nonce (12) || AES-256-GCM(plain) || tag (16)
//
// where key id is the first 8 bytes of SHA-256(id prefix || key) and the
// additional data binds the sealed value to where it is stored (the
// caller's record key), so a value copied elsewhere does not open. Each
// user picks its own magic and id prefix (docs/security.md), and keeps its
// key in a file of 64 hex digits and a newline, mode 0600.
package sealbox

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Sizes of the layout's parts.
const (
	KeySize  = 32
	IDLen    = 8
	NonceLen = 12
	TagLen   = 16
)

// Errors of Open, wrapped with the details.
var (
	ErrHeader   = errors.New("no sealed header")
	ErrOtherKey = errors.New("sealed under another key")
	ErrOpen     = errors.New("does not open")
)

// Box seals and opens values under one key.
type Box struct {
	magic string
	id    [IDLen]byte
	aead  cipher.AEAD
}

// New returns the box of key raw (KeySize bytes) writing magic, with key
// id SHA-256(idPrefix || raw)[:8].
func New(raw []byte, magic, idPrefix string) (*Box, error) {
	if len(raw) != KeySize {
		return nil, fmt.Errorf("key of %d bytes: want %d", len(raw), KeySize)
	}
	blk, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(blk)
	if err != nil {
		return nil, err
	}
	b := &Box{magic: magic, aead: aead}
	sum := sha256.Sum256(append([]byte(idPrefix), raw...))
	copy(b.id[:], sum[:])
	return b, nil
}

// NewKey returns KeySize random bytes.
func NewKey() []byte {
	raw := make([]byte, KeySize)
	_, _ = rand.Read(raw) // never fails (Go 1.24+)
	return raw
}

// HeaderLen is the length of the layout before the ciphertext.
func (b *Box) HeaderLen() int { return len(b.magic) + IDLen + NonceLen }

// ID is the key id as it appears in sealed values (hex).
func (b *Box) ID() string { return hex.EncodeToString(b.id[:]) }

// Seal seals plain with a random nonce.
func (b *Box) Seal(plain, aad []byte) []byte {
	var nonce [NonceLen]byte
	_, _ = rand.Read(nonce[:])
	return b.SealNonce(plain, aad, nonce)
}

// SealNonce is Seal with a given nonce (the docs' worked examples).
func (b *Box) SealNonce(plain, aad []byte, nonce [NonceLen]byte) []byte {
	out := make([]byte, b.HeaderLen(), b.HeaderLen()+len(plain)+TagLen)
	copy(out, b.magic)
	copy(out[len(b.magic):], b.id[:])
	copy(out[len(b.magic)+IDLen:], nonce[:])
	return b.aead.Seal(out, nonce[:], plain, aad)
}

// Open returns the plaintext of sealed, or an error wrapping ErrHeader,
// ErrOtherKey or ErrOpen.
func (b *Box) Open(sealed, aad []byte) ([]byte, error) {
	h := b.HeaderLen()
	if len(sealed) < h+TagLen || string(sealed[:len(b.magic)]) != b.magic {
		return nil, ErrHeader
	}
	if id := sealed[len(b.magic) : len(b.magic)+IDLen]; !bytes.Equal(id, b.id[:]) {
		return nil, fmt.Errorf("%w: sealed under key %x, this key is %s", ErrOtherKey, id, b.ID())
	}
	plain, err := b.aead.Open(nil, sealed[len(b.magic)+IDLen:h], sealed[h:], aad)
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}

// ReadKeyFile reads a key file: 64 hex digits and an optional newline. A
// file that every user may read, or that others than its owner may write,
// is refused (0600 in a data directory; a container secret may be 0440
// with the service's group).
func ReadKeyFile(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o026 != 0 {
		return nil, fmt.Errorf("%s: mode %v, want 0600 (chmod 600 %s)", path, st.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	raw, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(raw) != KeySize {
		return nil, fmt.Errorf("%s: want %d hex digits", path, 2*KeySize)
	}
	return raw, nil
}

// CreateKeyFile writes a new random key at path (mode 0600, its directory
// 0700), failing if the file exists, and returns it.
func CreateKeyFile(path string) ([]byte, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	raw := NewKey()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	_, err = f.WriteString(hex.EncodeToString(raw) + "\n")
	if err = errors.Join(err, f.Sync(), f.Close()); err != nil {
		_ = os.Remove(path)
		return nil, err
	}
	return raw, nil
}
