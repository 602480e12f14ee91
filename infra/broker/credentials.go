package broker

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// CredentialsFile is the name of the file, in the broker's data
// directory, holding the SASL/SCRAM credentials the embedded broker
// generated (LoadOrCreateCredentials). `minecart run` keeps it at
// <data-dir>/kafka/credentials.json, `minecart broker` at
// <--data-dir>/credentials.json. kfake ignores it (it only reads its own
// files there).
const CredentialsFile = "credentials.json"

// Mechanism is the only SASL mechanism of the generated credentials.
const Mechanism = "SCRAM-SHA-512"

// Roles of generated credentials.
const (
	RoleSuperuser = "superuser" // minecart's own stages: every operation
	RoleAnalyst   = "analyst"   // read-only on the analytic topics
	RolePartner   = "partner"   // a partner: settlement.PartnerACLs(Partner)
)

// Credential is one user of a credentials file.
type Credential struct {
	Name     string `json:"name"`
	Password string `json:"password"`
	Role     string `json:"role"`
	// Partner is the partner id of a RolePartner user.
	Partner string `json:"partner,omitempty"`
}

// Credentials is the content of a credentials file: JSON
//
//	{"mechanism": "SCRAM-SHA-512", "users": [{"name": ..., "password": ..., "role": ..., "partner": ...}, ...]}
//
// in mode 0600. docs/security.md documents it for other tools.
type Credentials struct {
	Mechanism string       `json:"mechanism"`
	Users     []Credential `json:"users"`
}

// ByRole returns the first user of role (and partner, for RolePartner).
func (c Credentials) ByRole(role, partner string) (Credential, bool) {
	for _, u := range c.Users {
		if u.Role == role && (role != RolePartner || u.Partner == partner) {
			return u, true
		}
	}
	return Credential{}, false
}

// NewPassword returns a random password: 32 bytes, URL-safe base64 without
// padding (43 characters).
func NewPassword() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// LoadOrCreateCredentials returns the credentials of the file at path,
// creating it (0600, its directory 0700) or adding to it: every user of
// want (matched by name) that the file lacks is added, with want's
// password or a new random one. Users of the file keep their passwords,
// so a restart keeps the credentials clients were given; users of the
// file that want does not name are kept too. A file that others than its
// owner may read is made 0600.
func LoadOrCreateCredentials(path string, want []Credential) (Credentials, error) {
	var c Credentials
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &c); err != nil {
			return Credentials{}, fmt.Errorf("credentials %s: %w", path, err)
		}
		if c.Mechanism != Mechanism {
			return Credentials{}, fmt.Errorf("credentials %s: mechanism %q, want %s", path, c.Mechanism, Mechanism)
		}
		if err := os.Chmod(path, 0o600); err != nil {
			return Credentials{}, err
		}
	case errors.Is(err, fs.ErrNotExist):
		c.Mechanism = Mechanism
	default:
		return Credentials{}, fmt.Errorf("credentials: %w", err)
	}
	changed := b == nil
	have := map[string]bool{}
	for _, u := range c.Users {
		if u.Name == "" || u.Password == "" {
			return Credentials{}, fmt.Errorf("credentials %s: a user without name or password", path)
		}
		have[u.Name] = true
	}
	for _, w := range want {
		if have[w.Name] {
			continue
		}
		if w.Password == "" {
			w.Password = NewPassword()
		}
		c.Users = append(c.Users, w)
		have[w.Name] = true
		changed = true
	}
	if changed {
		if err := writePrivate(path, c); err != nil {
			return Credentials{}, fmt.Errorf("credentials: %w", err)
		}
	}
	return c, nil
}

// writePrivate writes v as indented JSON to path atomically, mode 0600,
// its directory 0700.
func writePrivate(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".credentials-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if err = errors.Join(err, f.Sync(), f.Close()); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
