// Package ids is the one validator of the identifiers that cross minecart's
// boundaries: vehicle ids (provisioning, the gateway, account bindings, the
// owner API), owner account ids and partner ids (accounts, credentials,
// redemptions, topic names). An id that passes is safe as a URL path
// segment, a Kafka key, a topic name suffix and a ClickHouse parameter
// without escaping, so a vehicle accepted at provisioning can always be
// bound and read back.
//
// The grammar (docs/security.md): 1 to MaxLen bytes of ASCII letters,
// digits, '.', '_' and '-', starting with a letter or a digit (so "." and
// ".." are not ids).
package ids

import (
	"errors"
	"fmt"
)

// MaxLen is the longest id in bytes.
const MaxLen = 64

// ErrInvalid is wrapped by every error of this package.
var ErrInvalid = errors.New("invalid id")

// Vehicle reports whether s is a valid vehicle id.
func Vehicle(s string) error { return check("vehicle id", s) }

// Owner reports whether s is a valid owner account id.
func Owner(s string) error { return check("owner id", s) }

// Partner reports whether s is a valid partner id (also an item id).
func Partner(s string) error { return check("partner id", s) }

// Valid reports whether s is a valid id of any kind.
func Valid(s string) error { return check("id", s) }

// idError is an invalid id; errors.Is(err, ErrInvalid) holds.
type idError struct{ msg string }

func (e *idError) Error() string        { return e.msg }
func (e *idError) Is(target error) bool { return target == ErrInvalid }

func invalid(format string, a ...any) error { return &idError{msg: fmt.Sprintf(format, a...)} }

func check(kind, s string) error {
	if len(s) == 0 || len(s) > MaxLen {
		return invalid("%s of %d bytes, want 1 to %d", kind, len(s), MaxLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i == 0 && !alnum {
			return invalid("%s %q: must start with a letter or digit", kind, s)
		}
		if !alnum && c != '.' && c != '_' && c != '-' {
			return invalid("%s %q: byte %d (%q) not in [A-Za-z0-9._-]", kind, s, i, c)
		}
	}
	return nil
}
