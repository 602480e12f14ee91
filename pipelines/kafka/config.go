package kafka

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/minecart/minecart/pipelines"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/schemas"
)

// Config is what Run, RunSink, NewTable and NewProducer need. Only Brokers
// is required.
type Config struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string
	// Logger receives the runtime's logs (default slog.Default()).
	Logger *slog.Logger
	// Registerer receives the runtime's metrics (nil: not registered).
	// Several stages may share one registry: their series differ by the
	// "stage" label.
	Registerer prometheus.Registerer
	// Serde encodes dead-letter records (schemas.DeadLetter); default
	// schemas.SingleObject().
	Serde *schemas.Serde
	// DeadLetterTopic receives rejected records (default TopicDeadLetter).
	DeadLetterTopic string
	// MaxRetries is how many times a record failing with a non-reject
	// error is retried before it is dead-lettered as "retries_exhausted"
	// (default 5; negative: no retry).
	MaxRetries int
	// RetryBackoff is the first retry delay, doubled on each retry up to
	// MaxRetryBackoff (defaults 100ms and 5s).
	RetryBackoff    time.Duration
	MaxRetryBackoff time.Duration
	// InstanceID names this instance of the stage: its transactional id
	// is stage name + "-" + InstanceID and, when InstanceID is set, it is
	// also its static group member id (KIP-345, kgo.InstanceID). Set it to
	// a name that is stable across restarts of one replica and unique
	// among live replicas (services/daemon and services/stack do): a
	// restarted replica then fences its crashed predecessor and aborts its
	// open transaction at once (a new transactional id leaves it open,
	// holding back read_committed readers of the outputs and the restore
	// of the changelog, until TransactionTimeout), and gets its partitions
	// back without waiting for the predecessor's SessionTimeout. A static
	// member does not leave the group when it stops: a replica removed for
	// good keeps its partitions until SessionTimeout. Two live processes
	// sharing one InstanceID fence each other: the one fenced by the group
	// coordinator stops with an error that says so (Run).
	//
	// Empty: host name plus a random suffix, new at every Run, and no
	// static membership (zombies are still fenced by the consumer group
	// generation, KIP-447).
	InstanceID string
	// SessionTimeout is the consumer-group session timeout: how long a
	// crashed member keeps its partitions (default 10s).
	SessionTimeout time.Duration
	// TransactionTimeout bounds how long a transaction may stay open
	// before the broker aborts it (default 30s). A batch (MaxBatch records,
	// with retries) must be processed well within it.
	TransactionTimeout time.Duration
	// MaxBatch is the most records polled, processed and committed in one
	// transaction (default 5000).
	MaxBatch int
	// ShutdownTimeout bounds finishing the in-flight batch after ctx is
	// cancelled (default 10s).
	ShutdownTimeout time.Duration
	// Now is the clock given to Ticker.Tick and stamped on dead letters
	// (default time.Now).
	Now func() time.Time
	// ClientOptions are appended to the franz-go options of every client
	// the runtime makes (TLS, SASL, ...).
	ClientOptions []kgo.Opt

	madeUpID bool // InstanceID was made up by withDefaults, not given
}

// Validate reports whether the configuration is usable.
func (c Config) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("pipelines: no brokers")
	}
	if c.MaxBatch < 0 {
		return fmt.Errorf("pipelines: max batch %d: negative", c.MaxBatch)
	}
	if c.SessionTimeout < 0 || c.TransactionTimeout < 0 || c.RetryBackoff < 0 || c.MaxRetryBackoff < 0 || c.ShutdownTimeout < 0 {
		return errors.New("pipelines: negative duration")
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Serde == nil {
		c.Serde = schemas.SingleObject()
	}
	if c.DeadLetterTopic == "" {
		c.DeadLetterTopic = pipelines.TopicDeadLetter
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = 5
	} else if c.MaxRetries < 0 {
		c.MaxRetries = 0
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = 100 * time.Millisecond
	}
	if c.MaxRetryBackoff == 0 {
		c.MaxRetryBackoff = 5 * time.Second
	}
	if c.InstanceID == "" {
		c.madeUpID = true
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = rand.Read(b[:])
		c.InstanceID = host + "-" + hex.EncodeToString(b[:])
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 10 * time.Second
	}
	if c.TransactionTimeout == 0 {
		c.TransactionTimeout = 30 * time.Second
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 5000
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// baseOpts are the options every client of the runtime starts from.
func (c Config) baseOpts() []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.WithLogger(kgoLogger{c.Logger}),
	}
	return append(opts, c.ClientOptions...)
}

// backoff returns the delay before retry n (0-based).
func (c Config) backoff(n int) time.Duration {
	d := c.RetryBackoff
	for i := 0; i < n && d < c.MaxRetryBackoff; i++ {
		d *= 2
	}
	return min(d, c.MaxRetryBackoff)
}

// kgoLogger sends franz-go's warnings and errors to slog.
type kgoLogger struct{ l *slog.Logger }

func (k kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	switch level {
	case kgo.LogLevelError:
		k.l.Error("kgo: "+msg, keyvals...)
	case kgo.LogLevelWarn:
		k.l.Warn("kgo: "+msg, keyvals...)
	case kgo.LogLevelInfo:
		k.l.Info("kgo: "+msg, keyvals...)
	default:
		k.l.Debug("kgo: "+msg, keyvals...)
	}
}
