// Package pseudonym keeps personal identifiers out of the ledger's
// replicated leaves. Every vehicle id and account id the ledger records is
// replaced by a pseudonym
//
//	"p1:" || lowercase hex(HMAC-SHA256(key, "minecart/<kind>/v1\x00" || id)[:16])
//
// under a random 32-byte key of its own (kind "vehicle" or "account"). The
// keys live in the compacted topic minecart.ledger.pseudonyms (record key =
// the pseudonym), sealed with AES-256-GCM under the deployment's
// pseudonym-sealing key, so only minecart's services can link a pseudonym to
// its identity, and the owner, given the opening (key and id), can check it.
// Erasure tombstones the key: the pseudonym stays in the signed leaves, but
// nobody can link it to the identity any more. docs/ledger.md,
// "Pseudonymous leaves", defines every byte.
//
// The package is pure: no Kafka, no files but the sealing key's.
package pseudonym

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Prefix starts every pseudonym (its version).
const Prefix = "p1:"

// KeySize is the size of a pseudonym key.
const KeySize = 32

// Len is the length of a pseudonym string: the prefix and 32 hex digits.
const Len = len(Prefix) + 32

// Kind is the kind of identity a pseudonym stands for.
type Kind string

// The kinds: a vehicle id (the VehicleID field of an entry) or an account
// id (Account, CounterAccount).
const (
	Vehicle Kind = "vehicle"
	Account Kind = "account"
)

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool { return k == Vehicle || k == Account }

// ErrOpening is an opening that does not open its pseudonym.
var ErrOpening = errors.New("pseudonym opening does not match")

// Of is the pseudonym of identity id of kind k under key.
func Of(key []byte, k Kind, id string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("minecart/"))
	m.Write([]byte(k))
	m.Write([]byte("/v1\x00"))
	m.Write([]byte(id))
	sum := m.Sum(nil)
	return Prefix + hex.EncodeToString(sum[:16])
}

// Is reports whether s has the shape of a pseudonym.
func Is(s string) bool {
	h, ok := strings.CutPrefix(s, Prefix)
	if !ok || len(h) != 32 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Opening is what links a pseudonym to its identity: the key and the id.
// The owner API gives it to the owner; the topic keeps it sealed.
type Opening struct {
	Pseudonym string
	Kind      Kind
	ID        string
	Key       []byte // KeySize bytes
}

// Check reports whether the opening opens its pseudonym.
func (o Opening) Check() error {
	if len(o.Key) != KeySize || !o.Kind.Valid() {
		return fmt.Errorf("%w: key of %d bytes, kind %q", ErrOpening, len(o.Key), o.Kind)
	}
	if got := Of(o.Key, o.Kind, o.ID); !hmac.Equal([]byte(got), []byte(o.Pseudonym)) {
		return fmt.Errorf("%w: %s %q under this key is %s, not %s", ErrOpening, o.Kind, o.ID, got, o.Pseudonym)
	}
	return nil
}

// KeySource makes the key of a new identity.
type KeySource interface {
	NewKey(k Kind, id string) []byte
}

// Random draws every key from crypto/rand: the production source. A key
// destroyed by an erasure cannot be made again.
type Random struct{}

// NewKey returns KeySize random bytes.
func (Random) NewKey(Kind, string) []byte {
	k := make([]byte, KeySize)
	_, _ = rand.Read(k) // never fails (Go 1.24+)
	return k
}

// Derived derives every key from a seed:
// HMAC-SHA256(seed, "minecart/pseudonym-key/v1\x00" || kind || "\x00" || id).
// It makes the ledger of a simulated fleet reproducible (`minecart run
// --seed N`, the chaos suite, tests); with it an erasure is not final,
// since anyone holding the seed can derive the key again. Never for real
// owners.
type Derived []byte

// SimulationSeed is the Derived seed of the simulated fleet of seed n
// ("minecart-simulation/<n>"): `minecart run --seed n` and the chaos
// suite's services use it, so both make the same root.
func SimulationSeed(n uint64) string { return "minecart-simulation/" + strconv.FormatUint(n, 10) }

// NewKey returns the key derived from the seed.
func (d Derived) NewKey(k Kind, id string) []byte {
	m := hmac.New(sha256.New, d)
	m.Write([]byte("minecart/pseudonym-key/v1\x00"))
	m.Write([]byte(k))
	m.Write([]byte{0})
	m.Write([]byte(id))
	return m.Sum(nil)
}
