package auth

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// LoadOrCreateSecret returns the secret kept in path (trimmed), creating
// it with NewSecret, mode 0600, when the file does not exist. An existing
// file readable by others is made 0600.
func LoadOrCreateSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if s := strings.TrimSpace(string(b)); s != "" {
			if err := os.Chmod(path, 0o600); err != nil {
				return "", fmt.Errorf("secret %s: %w", path, err)
			}
			return s, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("secret %s: %w", path, err)
	}
	s := NewSecret()
	return s, WriteSecret(path, s)
}

// WriteSecret writes s to path with mode 0600 (atomically: a temporary
// file renamed over it).
func WriteSecret(path, s string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("secret %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".secret-*")
	if err != nil {
		return fmt.Errorf("secret %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.WriteString(s + "\n")
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("secret %s: %w", path, err)
	}
	return nil
}
