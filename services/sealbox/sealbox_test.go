package sealbox

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSealOpen(t *testing.T) {
	b, err := New(bytes.Repeat([]byte{7}, KeySize), "TST1", "test-key-id\x00")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := New(bytes.Repeat([]byte{8}, KeySize), "TST1", "test-key-id\x00")
	sealed := b.Seal([]byte("secret"), []byte("a"))
	if got, err := b.Open(sealed, []byte("a")); err != nil || string(got) != "secret" {
		t.Fatalf("open: %q %v", got, err)
	}
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)-1] ^= 1
	for name, tc := range map[string]struct {
		box    *Box
		sealed []byte
		aad    string
		want   error
	}{
		"other aad":    {b, sealed, "b", ErrOpen},
		"other key":    {other, sealed, "a", ErrOtherKey},
		"flipped tag":  {b, flipped, "a", ErrOpen},
		"short":        {b, sealed[:b.HeaderLen()], "a", ErrHeader},
		"wrong magic":  {b, append([]byte("XXX1"), sealed[4:]...), "a", ErrHeader},
		"empty":        {b, nil, "a", ErrHeader},
		"header + tag": {b, sealed[:b.HeaderLen()+TagLen], "a", ErrOpen},
	} {
		if _, err := tc.box.Open(tc.sealed, []byte(tc.aad)); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	if _, err := New(make([]byte, 31), "TST1", ""); err == nil {
		t.Error("31-byte key accepted")
	}
}

func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d", "k.key")
	raw, err := CreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode: %v %v", st.Mode(), err)
	}
	if _, err := CreateKeyFile(path); err == nil {
		t.Error("an existing key file was overwritten")
	}
	got, err := ReadKeyFile(path)
	if err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("read: %x %v", got, err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadKeyFile(path); err == nil {
		t.Error("a world-readable key file was accepted")
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("abcd\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadKeyFile(path); err == nil {
		t.Error("a short key was accepted")
	}
}
