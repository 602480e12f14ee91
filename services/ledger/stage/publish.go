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

	"github.com/minecart/minecart/pipelines/prom"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/merkle"
)

// Publication (docs/ledger.md, "Publication: a witness quorum first"):
// the stage writes blocks and entries at once (the blocks topic is the
// source of truth and nothing waits for a witness); a Publisher follows
// the committed blocks, asks the policy's witnesses to cosign the newest
// checkpoint and, only once the quorum is met, stores the cosigned
// checkpoint (CheckpointStore: the compacted topic
// minecart.ledger.checkpoints keyed by tree size, from which every
// replica of the proofs server serves /ledger/checkpoint; then a record
// in the entries topic and a copy in every partner topic,
// blocks.CheckpointStore). Without a
// quorum it retries with backoff and cosigns the newest head when the
// witnesses return: publication is delayed, never an entry.

// DefaultOrigin is the log's origin when Config.Origin is empty.
const DefaultOrigin = "minecart/ledger"

// BlockFollower reads the published book from height 0 and keeps
// following it (blocks.Reader).
type BlockFollower interface {
	Follow(ctx context.Context, fn func(*ledger.Block) error, caught func()) error
}

// CheckpointStore keeps cosigned checkpoints durably.
type CheckpointStore interface {
	// Store keeps the cosigned checkpoint of tree size size; storing the
	// same size again replaces it (a compacted topic keyed by size).
	Store(ctx context.Context, size uint64, cosigned []byte) error
}

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	Blocks    BlockFollower
	PublicKey ed25519.PublicKey // every followed block must verify under it
	Cosign    CosignConfig
	Store     CheckpointStore
	// Retry is the wait after a round without quorum, doubled up to
	// MaxRetry (defaults 500ms and 30s); a new block ends the wait.
	Retry, MaxRetry time.Duration
	// OnPublish, if set, is called after each stored checkpoint.
	OnPublish  func(Cosigned)
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Publisher gates the publication of checkpoints on the witness quorum.
type Publisher struct {
	cfg    PublisherConfig
	cosign *Cosigner

	mu        sync.Mutex
	book      *ledger.Book
	caught    bool
	published Cosigned
	kick      chan struct{}
	// arrivals are the blocks read and not yet published: the tree size
	// after each and when the publisher read it, oldest first.
	arrivals []arrival

	waits       prometheus.Counter
	size        prometheus.Gauge
	behind      prometheus.Gauge
	pendingFrom prometheus.Gauge
	rounds      *prometheus.CounterVec
	lag         prometheus.Histogram
}

// NewPublisher validates cfg and builds the Cosigner.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	if cfg.Blocks == nil || cfg.Store == nil || len(cfg.PublicKey) != ed25519.PublicKeySize {
		return nil, errors.New("ledger publisher: blocks, store and public key are required")
	}
	cfg.Retry = cmp.Or(cfg.Retry, 500*time.Millisecond)
	cfg.MaxRetry = cmp.Or(cfg.MaxRetry, 30*time.Second)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Cosign.Logger = cmp.Or(cfg.Cosign.Logger, cfg.Logger)
	if cfg.Cosign.Registerer == nil {
		cfg.Cosign.Registerer = cfg.Registerer
	}
	if cfg.Cosign.Now == nil {
		cfg.Cosign.Now = cfg.Now
	}
	c, err := NewCosigner(cfg.Cosign)
	if err != nil {
		return nil, err
	}
	m := prom.NewMetrics(cfg.Registerer)
	p := &Publisher{
		cfg: cfg, cosign: c, book: ledger.NewBook(), kick: make(chan struct{}, 1),
		waits:       m.Counter("minecart_ledger_quorum_waits_total", "Cosigning rounds that ended without the witness quorum (publication waits)."),
		size:        m.Gauge("minecart_ledger_published_tree_size", "Tree size of the last checkpoint published with its witness quorum."),
		behind:      m.Gauge("minecart_ledger_unpublished_entries", "Entries in the book (the blocks topic) beyond the last published checkpoint."),
		pendingFrom: m.Gauge("minecart_ledger_quorum_pending_since_seconds", "Unix time since which the book has a head without a published quorum checkpoint (0: all published)."),
		rounds:      m.CounterVec("minecart_ledger_cosign_rounds_total", "Cosigning rounds, by outcome (quorum, no_quorum).", "outcome"),
		lag: m.Histogram("minecart_ledger_publication_lag_seconds", "At each publication, how long the oldest entry it publishes waited since the publisher read its block.",
			[]float64{.005, .01, .02, .05, .1, .2, .5, 1, 2, 5, 10, 30, 60, 300, 900}),
	}
	if err := m.Err(); err != nil {
		return nil, fmt.Errorf("ledger publisher: %w", err)
	}
	return p, nil
}

// Published is the last checkpoint stored with its quorum (zero before
// the first).
func (p *Publisher) Published() Cosigned {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.published
}

// Run follows the blocks and publishes until ctx is done.
func (p *Publisher) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- p.cfg.Blocks.Follow(ctx, p.apply, func() {
			p.mu.Lock()
			p.caught = true
			p.mu.Unlock()
			p.wake()
		})
	}()
	retry := p.cfg.Retry
	var timer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("ledger publisher: follow blocks: %w", err)
		case <-p.kick:
		case <-timer:
		}
		timer = nil
		cp, size, ok := p.head()
		if !ok {
			continue
		}
		res := p.cosign.Cosign(ctx, cp, size, p.prove)
		if ctx.Err() != nil {
			return nil
		}
		if !res.Quorum {
			p.waits.Inc()
			p.rounds.WithLabelValues("no_quorum").Inc()
			p.cfg.Logger.Warn("ledger checkpoint not published: no witness quorum yet", "size", size, "signers", res.Signers, "refused", res.Refused, "retry_in", retry)
			timer = time.After(retry)
			retry = min(2*retry, p.cfg.MaxRetry)
			continue
		}
		p.rounds.WithLabelValues("quorum").Inc()
		if err := p.cfg.Store.Store(ctx, size, res.Note); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			p.cfg.Logger.Error("ledger checkpoint cosigned but not stored; retrying", "size", size, "err", err)
			timer = time.After(retry)
			retry = min(2*retry, p.cfg.MaxRetry)
			continue
		}
		retry = p.cfg.Retry
		p.mu.Lock()
		p.published = res
		// The oldest block this publication covers, and those it covers.
		if len(p.arrivals) > 0 && p.arrivals[0].size <= size {
			p.lag.Observe(p.cfg.Now().Sub(p.arrivals[0].at).Seconds())
		}
		for len(p.arrivals) > 0 && p.arrivals[0].size <= size {
			p.arrivals = p.arrivals[1:]
		}
		p.mu.Unlock()
		p.update()
		p.cfg.Logger.Info("ledger checkpoint published", "size", size, "signers", res.Signers)
		if p.cfg.OnPublish != nil {
			p.cfg.OnPublish(res)
		}
		timer = time.After(0) // a block may have come meanwhile
	}
}

func (p *Publisher) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// apply adds a followed block to the publisher's copy of the book; a
// block that does not extend it is passed over (the proofs server and
// the stage report those).
func (p *Publisher) apply(blk *ledger.Block) error {
	p.mu.Lock()
	err := p.book.Apply(blk, p.cfg.PublicKey)
	if err == nil {
		p.arrivals = append(p.arrivals, arrival{p.book.Size(), p.cfg.Now()})
	}
	caught := p.caught
	p.mu.Unlock()
	if err != nil {
		p.cfg.Logger.Debug("ledger publisher: block passed over", "height", blk.Header.Height, "err", err)
		return nil
	}
	p.update()
	if caught {
		p.wake()
	}
	return nil
}

// head is the checkpoint to cosign: the book's newest, once caught up
// and if it is beyond the published one.
func (p *Publisher) head() (string, uint64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.caught || p.book.Height() == 0 {
		return "", 0, false
	}
	size := p.book.Size()
	if p.published.Note != nil && p.published.Size >= size {
		return "", 0, false
	}
	return p.book.Checkpoint(), size, true
}

func (p *Publisher) prove(first, second uint64) ([]merkle.Hash, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.book.Tree().ConsistencyProof(first, second)
}

// update sets the gauges: published size, entries beyond it and since
// when a head has been waiting.
func (p *Publisher) update() {
	p.mu.Lock()
	defer p.mu.Unlock()
	size := p.book.Size()
	p.size.Set(float64(p.published.Size))
	p.behind.Set(float64(size - min(size, p.published.Size)))
	if size <= p.published.Size || len(p.arrivals) == 0 {
		p.pendingFrom.Set(0)
	} else {
		p.pendingFrom.Set(float64(p.arrivals[0].at.Unix()))
	}
}

type arrival struct {
	size uint64
	at   time.Time
}
