package auth

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/minecart/minecart/schemas"
)

// Flags are the command-line settings of a service main that
// authenticates callers (the owner and settlement mains). Every flag can
// be set from the environment (MINECART_SESSION_KEY, ...).
type Flags struct {
	SessionKey     string // the key itself (at least 32 bytes)
	SessionKeyFile string // or a file holding it
	Rate           float64
	Burst          int
}

// Register declares the flags on fs.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.SessionKey, "session-key", "", "key signing owners' sessions, at least 32 bytes, the same on every replica (prefer the environment: MINECART_SESSION_KEY)")
	fs.StringVar(&f.SessionKeyFile, "session-key-file", "", "file holding the session key (instead of --session-key)")
	fs.Float64Var(&f.Rate, "rate", 20, "requests per second per caller (token bucket)")
	fs.IntVar(&f.Burst, "burst", 40, "burst of requests per caller")
}

// Key returns the session key; a service refuses to start without one.
func (f *Flags) Key() ([]byte, error) {
	key := f.SessionKey
	if f.SessionKeyFile != "" {
		if key != "" {
			return nil, errors.New("set --session-key or --session-key-file, not both")
		}
		b, err := os.ReadFile(f.SessionKeyFile)
		if err != nil {
			return nil, fmt.Errorf("session key: %w", err)
		}
		key = strings.TrimSpace(string(b))
	}
	if len(key) < MinSessionKey {
		return nil, fmt.Errorf("a session key of at least %d bytes is required (--session-key, MINECART_SESSION_KEY or --session-key-file); got %d", MinSessionKey, len(key))
	}
	return []byte(key), nil
}

// New builds an Authenticator over the credentials and bindings tables.
func (f *Flags) New(creds, bindings Table, serde *schemas.Serde, reg prometheus.Registerer, log *slog.Logger) (*Authenticator, error) {
	key, err := f.Key()
	if err != nil {
		return nil, err
	}
	return New(Config{Credentials: creds, Bindings: bindings, Serde: serde, SessionKey: key,
		Rate: Limit{Rate: f.Rate, Burst: f.Burst}, Registerer: reg, Logger: log})
}
