package gateway

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
	"strings"
)

// Sealed device secrets. The devices topic never carries an HMAC device
// secret in clear: the key field of an HMAC_SHA256 record is the secret
// sealed with AES-256-GCM under the device-registry key (RegistryKey), a
// 32-byte key only the gateway and the provisioning tools hold (a 0600
// file in the data directory, a secret file in production). A client that
// can read the topic sees
//
//	"MCS1" || key id (8 bytes) || nonce (12 bytes) || AES-256-GCM(secret) || tag (16 bytes)
//
// where key id is the first 8 bytes of SHA-256("minecart-device-registry-key-id\x00" || key),
// the nonce is random, and the additional data is
// "minecart.devices/v1\x00" || device id, so a sealed secret copied into
// another device's record does not open. A 32-byte secret seals into 72
// bytes. docs/security.md has the whole scheme and its trade-offs.

// sealMagic starts every sealed secret.
const sealMagic = "MCS1"

const (
	sealKeyIDLen = 8
	sealNonceLen = 12
	sealTagLen   = 16
	sealHeader   = len(sealMagic) + sealKeyIDLen + sealNonceLen
	// RegistryKeySize is the size of a device-registry key.
	RegistryKeySize = 32
)

// ErrNotSealed is a device record whose HMAC secret is not sealed under
// the registry key: a plaintext secret written before sealing existed
// (run `minecart devices seal`), a secret sealed under another key, or a
// record that was tampered with. The gateway refuses such a device.
var ErrNotSealed = errors.New("HMAC secret not sealed under this gateway's device-registry key")

// RegistryKey seals and opens device HMAC secrets.
type RegistryKey struct {
	id   [sealKeyIDLen]byte
	aead cipher.AEAD
}

// NewRegistryKey returns the registry key of raw (RegistryKeySize bytes).
func NewRegistryKey(raw []byte) (*RegistryKey, error) {
	if len(raw) != RegistryKeySize {
		return nil, fmt.Errorf("device-registry key of %d bytes: want %d", len(raw), RegistryKeySize)
	}
	blk, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(blk)
	if err != nil {
		return nil, err
	}
	k := &RegistryKey{aead: aead}
	sum := sha256.Sum256(append([]byte("minecart-device-registry-key-id\x00"), raw...))
	copy(k.id[:], sum[:])
	return k, nil
}

// GenerateRegistryKey returns a new random registry key.
func GenerateRegistryKey() (*RegistryKey, []byte) {
	raw := make([]byte, RegistryKeySize)
	_, _ = rand.Read(raw) // never fails (Go 1.24+)
	k, _ := NewRegistryKey(raw)
	return k, raw
}

// ID is the key's identifier as it appears in sealed secrets (hex).
func (k *RegistryKey) ID() string { return hex.EncodeToString(k.id[:]) }

func sealAAD(deviceID string) []byte {
	return append([]byte("minecart.devices/v1\x00"), deviceID...)
}

// Seal returns secret sealed for device deviceID.
func (k *RegistryKey) Seal(deviceID string, secret []byte) []byte {
	var nonce [sealNonceLen]byte
	_, _ = rand.Read(nonce[:]) // never fails (Go 1.24+)
	return k.sealNonce(deviceID, secret, nonce)
}

// sealNonce is Seal with a given nonce (the worked example of the docs).
func (k *RegistryKey) sealNonce(deviceID string, secret []byte, nonce [sealNonceLen]byte) []byte {
	out := make([]byte, sealHeader, sealHeader+len(secret)+sealTagLen)
	copy(out, sealMagic)
	copy(out[len(sealMagic):], k.id[:])
	copy(out[len(sealMagic)+sealKeyIDLen:], nonce[:])
	return k.aead.Seal(out, nonce[:], secret, sealAAD(deviceID))
}

// Open returns the secret of device deviceID from sealed, or an error
// wrapping ErrNotSealed.
func (k *RegistryKey) Open(deviceID string, sealed []byte) ([]byte, error) {
	if !IsSealed(sealed) {
		return nil, fmt.Errorf("%w: no sealed-secret header (a plaintext record?)", ErrNotSealed)
	}
	if !bytes.Equal(sealed[len(sealMagic):len(sealMagic)+sealKeyIDLen], k.id[:]) {
		return nil, fmt.Errorf("%w: sealed under key %x, this key is %s", ErrNotSealed, sealed[len(sealMagic):len(sealMagic)+sealKeyIDLen], k.ID())
	}
	secret, err := k.aead.Open(nil, sealed[len(sealMagic)+sealKeyIDLen:sealHeader], sealed[sealHeader:], sealAAD(deviceID))
	if err != nil {
		return nil, fmt.Errorf("%w: does not open for device %q", ErrNotSealed, deviceID)
	}
	return secret, nil
}

// IsSealed reports whether b has the shape of a sealed secret (it may
// still fail to open).
func IsSealed(b []byte) bool {
	return len(b) >= sealHeader+sealTagLen+minSecret && string(b[:len(sealMagic)]) == sealMagic
}

// LoadRegistryKey reads a registry key file: 64 hex characters and an
// optional newline. A file that every user may read, or that others than
// its owner may write, is refused (0600 in a data directory; a container
// secret may be 0440 with the service's group).
func LoadRegistryKey(path string) (*RegistryKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("device-registry key: %w", err)
	}
	if st.Mode().Perm()&0o026 != 0 {
		return nil, fmt.Errorf("device-registry key %s: mode %v, want 0600 (chmod 600 %s)", path, st.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("device-registry key: %w", err)
	}
	raw, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("device-registry key %s: want %d hex characters: %w", path, 2*RegistryKeySize, err)
	}
	k, err := NewRegistryKey(raw)
	if err != nil {
		return nil, fmt.Errorf("device-registry key %s: %w", path, err)
	}
	return k, nil
}

// LoadOrCreateRegistryKey reads the registry key at path, or creates one
// there (mode 0600, its directory 0700) when there is none.
func LoadOrCreateRegistryKey(path string) (*RegistryKey, error) {
	k, err := LoadRegistryKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	k, raw := GenerateRegistryKey()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("device-registry key: %w", err)
	}
	_, err = f.WriteString(hex.EncodeToString(raw) + "\n")
	if err = errors.Join(err, f.Sync(), f.Close()); err != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("device-registry key: %w", err)
	}
	return k, nil
}
