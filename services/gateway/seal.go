package gateway

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/minecart/minecart/services/sealbox"
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
	sealKeyIDLen = sealbox.IDLen
	sealNonceLen = sealbox.NonceLen
	sealTagLen   = sealbox.TagLen
	sealHeader   = len(sealMagic) + sealKeyIDLen + sealNonceLen
	// RegistryKeySize is the size of a device-registry key.
	RegistryKeySize = sealbox.KeySize
)

// ErrNotSealed is a device record whose HMAC secret is not sealed under
// the registry key: a plaintext secret written before sealing existed
// (run `minecart devices seal`), a secret sealed under another key, or a
// record that was tampered with. The gateway refuses such a device.
var ErrNotSealed = errors.New("HMAC secret not sealed under this gateway's device-registry key")

// RegistryKey seals and opens device HMAC secrets (services/sealbox).
type RegistryKey struct{ box *sealbox.Box }

// NewRegistryKey returns the registry key of raw (RegistryKeySize bytes).
func NewRegistryKey(raw []byte) (*RegistryKey, error) {
	b, err := sealbox.New(raw, sealMagic, "minecart-device-registry-key-id\x00")
	if err != nil {
		return nil, fmt.Errorf("device-registry %w", err)
	}
	return &RegistryKey{b}, nil
}

// GenerateRegistryKey returns a new random registry key.
func GenerateRegistryKey() (*RegistryKey, []byte) {
	raw := sealbox.NewKey()
	k, _ := NewRegistryKey(raw)
	return k, raw
}

// ID is the key's identifier as it appears in sealed secrets (hex).
func (k *RegistryKey) ID() string { return k.box.ID() }

func sealAAD(deviceID string) []byte {
	return append([]byte("minecart.devices/v1\x00"), deviceID...)
}

// Seal returns secret sealed for device deviceID.
func (k *RegistryKey) Seal(deviceID string, secret []byte) []byte {
	return k.box.Seal(secret, sealAAD(deviceID))
}

// sealNonce is Seal with a given nonce (the worked example of the docs).
func (k *RegistryKey) sealNonce(deviceID string, secret []byte, nonce [sealNonceLen]byte) []byte {
	return k.box.SealNonce(secret, sealAAD(deviceID), nonce)
}

// Open returns the secret of device deviceID from sealed, or an error
// wrapping ErrNotSealed.
func (k *RegistryKey) Open(deviceID string, sealed []byte) ([]byte, error) {
	if !IsSealed(sealed) {
		return nil, fmt.Errorf("%w: no sealed-secret header (a plaintext record?)", ErrNotSealed)
	}
	secret, err := k.box.Open(sealed, sealAAD(deviceID))
	switch {
	case errors.Is(err, sealbox.ErrOpen):
		return nil, fmt.Errorf("%w: does not open for device %q", ErrNotSealed, deviceID)
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrNotSealed, err)
	}
	return secret, nil
}

// IsSealed reports whether b has the shape of a sealed secret (it may
// still fail to open).
func IsSealed(b []byte) bool {
	return len(b) >= sealHeader+sealTagLen+minSecret && string(b[:len(sealMagic)]) == sealMagic
}

// LoadRegistryKey reads a registry key file: 64 hex characters and an
// optional newline, mode 0600 (sealbox.ReadKeyFile).
func LoadRegistryKey(path string) (*RegistryKey, error) {
	raw, err := sealbox.ReadKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("device-registry key: %w", err)
	}
	return NewRegistryKey(raw)
}

// LoadOrCreateRegistryKey reads the registry key at path, or creates one
// there (mode 0600, its directory 0700) when there is none.
func LoadOrCreateRegistryKey(path string) (*RegistryKey, error) {
	k, err := LoadRegistryKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	raw, err := sealbox.CreateKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("device-registry key: %w", err)
	}
	return NewRegistryKey(raw)
}
