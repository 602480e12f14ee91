// Package sink lands minecart's topics in ClickHouse for analysts: clean
// telemetry, daily scores, ledger entries and redemption changes, each into
// its table of the schema in infra/clickhouse (applied at start-up). It runs
// as an at-least-once pipelines.SinkStage and makes the landing exactly
// once by skipping offsets already stored (see Writer).
//
// It talks to ClickHouse only through clickhouse-go/v2; the DSN alone picks
// the embedded server (http://127.0.0.1:8123, infra/chserver) or a
// ClickHouse server (clickhouse://host:9000, native protocol). While
// ClickHouse is down the runtime pauses fetching and retries the batch with
// backoff: Kafka is the buffer, nothing is lost.
package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	chschema "github.com/minecart/minecart/infra/clickhouse"
	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
)

// DefaultDSN is the embedded ClickHouse of `minecart run`.
const DefaultDSN = "http://127.0.0.1:8123/default"

// DefaultMaxRows is the default Config.MaxRows: large inserts are what
// ClickHouse stores most cheaply (each INSERT makes a part and runs the
// rollup views once), and a batch of several InsertRows chunks lets the
// client's encoding overlap the server's insert.
const DefaultMaxRows = 100000

// DefaultInputs are the topics the sink lands.
var DefaultInputs = []string{pipelines.TopicTelemetryClean, pipelines.TopicScores,
	pipelines.TopicLedgerEntries, pipelines.TopicRedemptionStatus}

// Config configures Run.
type Config struct {
	// Runtime is the pipelines configuration (Brokers required; Logger,
	// Registerer, Serde, timeouts).
	Runtime kafka.Config
	// DSN is the ClickHouse data source: http://host:8123/db (HTTP, the
	// embedded server) or clickhouse://user:pass@host:9000/db (native).
	DSN string
	// Group is the consumer group (default "sink").
	Group string
	// Inputs are the topics consumed (default DefaultInputs).
	Inputs []string
	// MaxRows and MaxWait bound a batch (defaults DefaultMaxRows, 1s).
	MaxRows int
	MaxWait time.Duration
	// InsertRows is the most rows per INSERT (default DefaultInsertRows):
	// a batch of more is inserted in chunks, the next one encoded while
	// the current one is stored.
	InsertRows int
	// MaxBackoff caps the wait between attempts to reach ClickHouse at
	// start-up (default 10s).
	MaxBackoff time.Duration
}

// Validate checks cfg and fills in defaults.
func (c *Config) Validate() error {
	if err := c.Runtime.Validate(); err != nil {
		return err
	}
	if c.DSN == "" {
		c.DSN = DefaultDSN
	}
	if _, err := clickhouse.ParseDSN(c.DSN); err != nil {
		return fmt.Errorf("sink: dsn: %w", err)
	}
	if c.Group == "" {
		c.Group = "sink"
	}
	if len(c.Inputs) == 0 {
		c.Inputs = DefaultInputs
	}
	if c.MaxRows <= 0 {
		c.MaxRows = DefaultMaxRows
	}
	if c.MaxWait <= 0 {
		c.MaxWait = time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 10 * time.Second
	}
	if c.Runtime.Logger == nil {
		c.Runtime.Logger = slog.Default()
	}
	return nil
}

// Open connects to the ClickHouse of dsn (lazily: no request is made).
func Open(dsn string) (driver.Conn, error) {
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("clickhouse dsn: %w", err)
	}
	if opts.MaxOpenConns == 0 {
		opts.MaxOpenConns = 4
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("clickhouse open: %w", err)
	}
	return conn, nil
}

// Run applies the schema (waiting for ClickHouse to answer) and sinks the
// input topics until ctx is done.
func Run(ctx context.Context, cfg Config) (err error) {
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := cfg.Runtime.Logger.With("stage", cfg.Group)
	conn, err := Open(cfg.DSN)
	if err != nil {
		return fmt.Errorf("sink: %w", err)
	}
	defer func() {
		if cerr := conn.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("sink: close clickhouse: %w", cerr)
		}
	}()
	for attempt := 0; ; attempt++ {
		err := chschema.Migrate(ctx, conn)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		d := min(100*time.Millisecond<<min(attempt, 10), cfg.MaxBackoff)
		log.Warn("sink: clickhouse not ready; retrying", "in", d, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(d):
		}
	}
	prod, err := kafka.NewProducer(cfg.Runtime)
	if err != nil {
		return fmt.Errorf("sink: %w", err)
	}
	defer func() {
		if cerr := prod.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("sink: close producer: %w", cerr)
		}
	}()
	w, err := NewWriter(WriterConfig{Conn: conn, Serde: cfg.Runtime.Serde, DeadLetters: prod.ProduceBatch,
		Stage: cfg.Group, DeadLetterTopic: cfg.Runtime.DeadLetterTopic, Now: cfg.Runtime.Now, Logger: log,
		Registerer: cfg.Runtime.Registerer, InsertRows: cfg.InsertRows})
	if err != nil {
		return err
	}
	log.Info("sink: running", "dsn", redact(cfg.DSN), "inputs", cfg.Inputs)
	err = kafka.RunSink(ctx, cfg.Runtime, pipelines.SinkStage{
		Name: cfg.Group, Inputs: cfg.Inputs, MaxRows: cfg.MaxRows, MaxWait: cfg.MaxWait,
		// The writer still dead-letters on its own (to be moved to the runtime).
		Write: func(ctx context.Context, recs []pipelines.Record) ([]pipelines.Rejected, error) {
			return nil, w.Write(ctx, recs)
		},
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("sink: %w", err)
	}
	return nil
}

// redact hides a DSN's password for logs.
func redact(dsn string) string {
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil || opts.Auth.Password == "" {
		return dsn
	}
	return fmt.Sprintf("%s (user %s, password hidden)", opts.Addr, opts.Auth.Username)
}
