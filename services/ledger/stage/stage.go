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
	"github.com/minecart/minecart/services/pseudonym"
	"github.com/minecart/minecart/services/shred"
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
	// when a task is assigned to rebuild the book; records that do not
	// extend the verified book are skipped, counted and logged. If it is
	// also a TailReader, a task restarted in the same process resumes the
	// previous task's book once the tail of the published book shows which
	// of its blocks were published.
	Blocks ledger.BlockSource
	// Now is the wall clock of debit blocks (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
	// Registerer receives the ledger's metrics (nil: none).
	Registerer prometheus.Registerer
	// Topics (defaults: the pipelines constants).
	ScoresTopic, RequestsTopic, ChangelogTopic, BlocksTopic, EntriesTopic string
	// Pseudonyms, when set, replaces the identities of every entry by
	// pseudonyms before it is appended (docs/ledger.md, "Pseudonymous
	// leaves"); every main and the embedded stack set it. Nil: identities
	// stay in clear (the stage's unit tests).
	Pseudonyms *Pseudonyms
}

// Pseudonyms configures the ledger's pseudonymous leaves.
type Pseudonyms struct {
	// Seal seals the keys the ledger makes on the pseudonyms topic.
	Seal *pseudonym.SealKey
	// Keys makes the key of an identity seen for the first time (default
	// pseudonym.Random).
	Keys pseudonym.KeySource
	// Load reads the pseudonyms topic to its end (follow.Loader), at every
	// task start.
	Load func(context.Context) (*pseudonym.Directory, error)
	// Topic (default pipelines.TopicLedgerPseudonyms).
	Topic string
	// Follow opens the sealed records of the scores topic
	// (crypto-shredding, docs/privacy.md): the followed topic
	// (follow.Follower), which has the keys scoring made. Nil: a sealed
	// score is dead-lettered.
	Follow shred.Keys
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
	if c.Pseudonyms != nil {
		ps := *c.Pseudonyms
		if ps.Keys == nil {
			ps.Keys = pseudonym.Random{}
		}
		ps.Topic = cmp.Or(ps.Topic, pipelines.TopicLedgerPseudonyms)
		c.Pseudonyms = &ps
	}
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
	if ps := c.Pseudonyms; ps != nil && (ps.Seal == nil || ps.Load == nil) {
		return errors.New("ledger: pseudonyms without a sealing key or a loader")
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
	badBlocks *prometheus.CounterVec
	bonuses   prometheus.Counter
	bonusErrs *prometheus.CounterVec
	shredded  prometheus.Counter
	// keysErased counts vehicle keys destroyed by an erasure (no entry).
	keysErased prometheus.Counter
}

// ReaderLabel is the "reader" label of the stage's series of
// minecart_ledger_bad_blocks_total (records skipped by a rebuild).
const ReaderLabel = "ledger"

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := prom.NewMetrics(reg)
	return &metrics{
		entries:    m.CounterVec("minecart_ledger_entries_total", "Entries appended, by kind.", "kind"),
		blocks:     m.Counter("minecart_ledger_blocks_total", "Blocks signed and written."),
		dups:       m.CounterVec("minecart_ledger_duplicates_total", "Scores or requests ignored because the book already holds them, by kind.", "kind"),
		pending:    m.Gauge("minecart_ledger_pending_credits", "Credits waiting for every scoring watermark to pass their window end."),
		treeSize:   m.Gauge("minecart_ledger_tree_size", "Entries in the ledger tree."),
		rebuildS:   m.Gauge("minecart_ledger_rebuild_seconds", "Time the last task assignment took to re-verify the book."),
		starts:     m.CounterVec("minecart_ledger_task_starts_total", "Task starts, by how the book was obtained: rebuilt (re-read and re-verified) or resumed (the previous processor's, checked against the published head).", "how"),
		watermark:  m.Gauge("minecart_ledger_released_through_ms", "Lowest scoring watermark: credits ending at or before it are in the book."),
		badBlocks:  m.CounterVec(ledger.BadBlocksMetric, ledger.BadBlocksHelp, "reader", "reason"),
		bonuses:    m.Counter("minecart_ledger_campaign_bonuses_total", "Campaign bonus entries appended."),
		shredded:   m.Counter("minecart_ledger_shredded_records_total", "Sealed scores skipped because their vehicle's key is destroyed (erased): they name nobody any more (docs/privacy.md)."),
		keysErased: m.Counter("minecart_ledger_vehicle_keys_erased_total", "Vehicle pseudonym keys destroyed by an erasure request (tombstones on the pseudonyms topic; no entry, docs/ledger.md Kind 8)."),
		bonusErrs:  m.CounterVec("minecart_ledger_campaign_errors_total", "Credits a campaign rule could not be evaluated on (no bonus), by what failed: inputs, eval, encode.", "what"),
	}, m.Err()
}

// bookCache hands a closed processor's book to the next processor of the
// same stage in the same process.
type bookCache struct {
	mu        sync.Mutex
	book      *ledger.Book
	committed uint64
}

// put caches b, whose blocks below height committed are known to be
// published (the transactions that wrote them committed).
func (c *bookCache) put(b *ledger.Book, committed uint64) {
	c.mu.Lock()
	c.book, c.committed = b, committed
	c.mu.Unlock()
}

func (c *bookCache) take() (*ledger.Book, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.book
	c.book = nil
	return b, c.committed
}

// TailReader reads the last records of the published book
// (blocks.Reader.Tail: the last 64 offsets; whole if that is the topic).
type TailReader interface {
	Tail(ctx context.Context) (recs []ledger.Record, whole bool, err error)
}

// reuse brings a cached book back to the published book, or says to
// rebuild. The blocks below committed are published; those of the last
// transaction (committed up to the book's height H) are published if the
// tail shows the last of them. Records in the tail that are not signed by
// pub are passed over; a block signed by pub that is not the cached
// book's at its height (another writer's) means rebuild. The last
// transaction counts as aborted (its blocks undone) only if the tail is
// the whole topic: a window of the last offsets cannot prove an absence,
// since copies of older blocks or garbage written after the genuine ones
// may fill it, and undoing published blocks would make the writer sign a
// fork.
func reuse(ctx context.Context, src ledger.BlockSource, pub ed25519.PublicKey, b *ledger.Book, committed uint64) bool {
	tr, ok := src.(TailReader)
	if !ok {
		return false
	}
	tail, whole, err := tr.Tail(ctx)
	if err != nil {
		return false
	}
	height := b.Height()
	last := int64(-1) // the highest of the cached book's blocks in the tail
	for _, rec := range tail {
		blk := rec.Block
		if blk == nil || !ed25519.Verify(pub, blk.Header.Marshal(), blk.Signature) {
			continue // junk: passed over
		}
		h := blk.Header.Height
		if hash, ok := b.HeaderHash(h); !ok || hash != blk.Header.Hash() {
			return false // another writer's block: rebuild
		}
		last = max(last, int64(h))
	}
	target := height
	switch {
	case committed == height:
		// Nothing uncertain: every block of the book was committed.
	case last == int64(height)-1:
		// The last transaction committed: its last block is published.
	case whole && last == int64(committed)-1:
		target = committed // the whole topic holds none of the last transaction's blocks: it aborted
	default:
		return false
	}
	return b.Undo(target) == nil
}
