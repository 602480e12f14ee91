// Package stage is the ledger's pipeline stage: it consumes daily scores,
// scoring watermarks and ledger requests, appends credits (in canonical
// order, once every scoring task's watermark passed them), debits and
// adjustments to the book (services/ledger), and writes the signed blocks
// and the entries with their inclusion proofs. It depends on the pipelines
// contract only: the book it rebuilds on start comes from Config.Blocks
// (services/ledger/blocks over the runtime's Reader, in production).
package stage

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/prom"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/ledger"
)

// Name is the ledger stage's name: its consumer group and transactional
// id prefix.
const Name = "ledger"

// Config configures the ledger stage.
type Config struct {
	// Key is the ledger's Ed25519 signing key (ledger.LoadOrCreateKey).
	Key ed25519.PrivateKey
	// Origin names the log: the checkpoints' first line and key name
	// (default "minecart/ledger").
	Origin string
	// MaxBlockEntries is the most entries in one block (default 1000).
	MaxBlockEntries int
	// MaxReleaseEntries is the most queued credits appended in one
	// transaction (default 50,000; rounded down to whole blocks), so a
	// day of a million vehicles is not one gigabyte-sized transaction.
	MaxReleaseEntries int
	// TickEvery is how often an idle ledger opens a transaction to drain
	// its queue (default 200ms).
	TickEvery time.Duration
	// Serde encodes and decodes the Avro records.
	Serde *schemas.Serde
	// Blocks is the published book (the blocks topic), read from height 0
	// when a task is assigned to rebuild the book. If it is also a
	// ledger.LastBlockReader, a task restarted in the same process resumes
	// the previous task's book once it matches the published head.
	Blocks ledger.BlockSource
	// Now is the wall clock of debit blocks (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
	// Registerer receives the ledger's metrics (nil: none).
	Registerer prometheus.Registerer
	// Topics (defaults: the pipelines constants).
	ScoresTopic, RequestsTopic, ChangelogTopic, BlocksTopic, EntriesTopic string
}

func (c Config) withDefaults() Config {
	c.Origin = cmp.Or(c.Origin, "minecart/ledger")
	c.MaxBlockEntries = cmp.Or(c.MaxBlockEntries, 1000)
	c.MaxReleaseEntries = cmp.Or(c.MaxReleaseEntries, 50_000)
	c.TickEvery = cmp.Or(c.TickEvery, 200*time.Millisecond)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.ScoresTopic = cmp.Or(c.ScoresTopic, pipelines.TopicScores)
	c.RequestsTopic = cmp.Or(c.RequestsTopic, pipelines.TopicLedgerRequests)
	c.ChangelogTopic = cmp.Or(c.ChangelogTopic, pipelines.TopicLedgerChangelog)
	c.BlocksTopic = cmp.Or(c.BlocksTopic, pipelines.TopicLedgerBlocks)
	c.EntriesTopic = cmp.Or(c.EntriesTopic, pipelines.TopicLedgerEntries)
	return c
}

// Validate reports whether the configuration is usable.
func (c Config) Validate() error {
	c = c.withDefaults()
	if len(c.Key) != ed25519.PrivateKeySize {
		return errors.New("ledger: no signing key")
	}
	if _, err := ledger.NewSigner(c.Origin, c.Key); err != nil {
		return err
	}
	if c.MaxBlockEntries < 1 {
		return fmt.Errorf("ledger: max block entries %d, want >= 1", c.MaxBlockEntries)
	}
	if c.MaxReleaseEntries < 1 || c.TickEvery < 0 {
		return fmt.Errorf("ledger: max release entries %d, tick %v", c.MaxReleaseEntries, c.TickEvery)
	}
	if c.Serde == nil {
		return errors.New("ledger: no serde")
	}
	if c.Blocks == nil {
		return errors.New("ledger: no blocks source")
	}
	return nil
}

// NewStage returns the ledger stage: it consumes scores and ledger
// requests (single-partition topics, so one task and one writer), keeps
// pending credits in its changelog, and writes blocks and entries.
func NewStage(cfg Config) (pipelines.Stage, error) {
	if err := cfg.Validate(); err != nil {
		return pipelines.Stage{}, err
	}
	cfg = cfg.withDefaults()
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return pipelines.Stage{}, fmt.Errorf("ledger: %w", err)
	}
	cache := &bookCache{}
	return pipelines.Stage{
		Name:      Name,
		Inputs:    []string{cfg.ScoresTopic, cfg.RequestsTopic},
		Changelog: cfg.ChangelogTopic,
		TickEvery: cfg.TickEvery,
		NewProcessor: func(ctx context.Context, _ pipelines.Task) (pipelines.Processor, error) {
			return newProcessor(ctx, cfg, m, cache)
		},
	}, nil
}

type metrics struct {
	entries   *prometheus.CounterVec
	blocks    prometheus.Counter
	dups      *prometheus.CounterVec
	pending   prometheus.Gauge
	treeSize  prometheus.Gauge
	rebuildS  prometheus.Gauge
	starts    *prometheus.CounterVec
	watermark prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := prom.NewMetrics(reg)
	return &metrics{
		entries:   m.CounterVec("minecart_ledger_entries_total", "Entries appended, by kind.", "kind"),
		blocks:    m.Counter("minecart_ledger_blocks_total", "Blocks signed and written."),
		dups:      m.CounterVec("minecart_ledger_duplicates_total", "Scores or requests ignored because the book already holds them, by kind.", "kind"),
		pending:   m.Gauge("minecart_ledger_pending_credits", "Credits waiting for every scoring watermark to pass their window end."),
		treeSize:  m.Gauge("minecart_ledger_tree_size", "Entries in the ledger tree."),
		rebuildS:  m.Gauge("minecart_ledger_rebuild_seconds", "Time the last task assignment took to re-verify the book."),
		starts:    m.CounterVec("minecart_ledger_task_starts_total", "Task starts, by how the book was obtained: rebuilt (re-read and re-verified) or resumed (the previous processor's, checked against the published head).", "how"),
		watermark: m.Gauge("minecart_ledger_released_through_ms", "Lowest scoring watermark: credits ending at or before it are in the book."),
	}, m.Err()
}

// bookCache hands a closed processor's book to the next processor of the
// same stage in the same process.
type bookCache struct {
	mu   sync.Mutex
	book *ledger.Book
}

func (c *bookCache) put(b *ledger.Book) {
	c.mu.Lock()
	c.book = b
	c.mu.Unlock()
}

func (c *bookCache) take() *ledger.Book {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.book
	c.book = nil
	return b
}

// reuse brings a cached book back to the published book: it undoes the
// blocks the published book does not have (an aborted transaction's) and
// accepts the result only if its head is the published head, hash for hash.
func reuse(ctx context.Context, src ledger.BlockSource, b *ledger.Book) bool {
	lr, ok := src.(ledger.LastBlockReader)
	if !ok {
		return false
	}
	last, err := lr.LastBlock(ctx)
	if err != nil {
		return false
	}
	if last == nil {
		return b.Undo(0) == nil
	}
	target := last.Header.Height + 1
	if b.Height() < target || b.Undo(target) != nil {
		return false
	}
	h := b.Head()
	return h.Hash() == last.Header.Hash() && b.Checkpoint() == last.Checkpoint
}
