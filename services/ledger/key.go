package ledger

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// LoadOrCreateKey loads the ledger's Ed25519 key from path (PKCS #8 PEM),
// or, if the file does not exist, generates one, writes it there (mode
// 0600, atomically) and writes the public key next to it as path+".pub"
// (base64 of the 32 raw bytes), for verifiers.
func LoadOrCreateKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return parsePrivateKey(path, b)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("ledger key: %w", err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ledger key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("ledger key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("ledger key: %w", err)
	}
	if err := writeAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	if err := writeAtomic(path+".pub", []byte(EncodePublicKey(pub)+"\n"), 0o644); err != nil {
		return nil, err
	}
	return priv, nil
}

func parsePrivateKey(path string, b []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("ledger key %s: not a PEM PRIVATE KEY", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("ledger key %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("ledger key %s: %T, want Ed25519", path, k)
	}
	return priv, nil
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("ledger key: %w", err)
	}
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Chmod(mode)
	}
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(f.Name(), path)
	}
	if werr != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("ledger key %s: %w", path, werr)
	}
	return nil
}

// ParsePublicKey reads a ledger public key in any of the forms minecart
// prints: base64 or hex of the 32 raw bytes, a signed-note verifier key
// ("<origin>+<id>+<base64(0x01 || key)>"), or a PEM PUBLIC KEY.
func ParsePublicKey(text string) (ed25519.PublicKey, error) {
	s := strings.TrimSpace(text)
	if blk, _ := pem.Decode([]byte(s)); blk != nil {
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("public key: %w", err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("public key: %T, want Ed25519", k)
		}
		return pub, nil
	}
	if raw, err := hex.DecodeString(s); err == nil && len(raw) == ed25519.PublicKeySize {
		return ed25519.PublicKey(raw), nil
	}
	if raw, err := base64.StdEncoding.DecodeString(s); err == nil && len(raw) == ed25519.PublicKeySize {
		return ed25519.PublicKey(raw), nil
	}
	// A verifier key: "<name>+<key id>+<base64(0x01 || key)>" (the name
	// has no '+', the base64 key may have some).
	if _, rest, ok := strings.Cut(s, "+"); ok {
		if _, err := note.NewVerifier(s); err != nil {
			return nil, fmt.Errorf("public key: verifier key %q: %w", s, err)
		}
		_, b64, _ := strings.Cut(rest, "+")
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(raw) != 1+ed25519.PublicKeySize {
			return nil, fmt.Errorf("public key: bad verifier key %q", s)
		}
		return ed25519.PublicKey(raw[1:]), nil
	}
	return nil, errors.New("public key: want base64 or hex of 32 bytes, a verifier key or PEM")
}

// LoadPublicKey reads a public key file (see ParsePublicKey). A private key
// file is accepted too, for operators verifying their own ledger.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	if blk, _ := pem.Decode(b); blk != nil && blk.Type == "PRIVATE KEY" {
		priv, err := parsePrivateKey(path, b)
		if err != nil {
			return nil, err
		}
		return priv.Public().(ed25519.PublicKey), nil
	}
	return ParsePublicKey(string(b))
}

// EncodePublicKey is the public key file's form: base64 of the 32 raw bytes.
func EncodePublicKey(pub ed25519.PublicKey) string { return base64.StdEncoding.EncodeToString(pub) }
