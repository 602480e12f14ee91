package ledger

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/ledger/merkle"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures the ledger stage.
type Config struct {
	// Key is the ledger's Ed25519 signing key (LoadOrCreateKey).
	Key ed25519.PrivateKey
	// Origin names the log: the checkpoints' first line and key name
	// (default "minecart/ledger").
	Origin string
	// MaxBlockEntries is the most entries in one block (default 1000).
	MaxBlockEntries int
	// Serde encodes and decodes the Avro records.
	Serde *schemas.Serde
	// Blocks reads the committed blocks topic from offset 0 when a task is
	// assigned, to rebuild the book. Default: KafkaBlocks over Brokers.
	Blocks BlockSource
	// Brokers and ClientOptions make the default Blocks reader.
	Brokers []string
	// Now is the wall clock of debit blocks (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
	// Registerer receives the ledger's metrics (nil: none).
	Registerer prometheus.Registerer
	// Topics (defaults: the pipelines constants).
	ScoresTopic, RequestsTopic, ChangelogTopic, BlocksTopic, EntriesTopic string
}

// StageName is the ledger stage's name: its consumer group and
// transactional id prefix.
const StageName = "ledger"

func (c Config) withDefaults() Config {
	if c.Origin == "" {
		c.Origin = "minecart/ledger"
	}
	if c.MaxBlockEntries == 0 {
		c.MaxBlockEntries = 1000
	}
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
	if c.Blocks == nil && len(c.Brokers) > 0 && c.Serde != nil {
		c.Blocks = &KafkaBlocks{Brokers: c.Brokers, Topic: c.BlocksTopic, Serde: c.Serde}
	}
	return c
}

// Validate reports whether the configuration is usable.
func (c Config) Validate() error {
	c = c.withDefaults()
	if len(c.Key) != ed25519.PrivateKeySize {
		return errors.New("ledger: no signing key")
	}
	if err := validOrigin(c.Origin); err != nil {
		return err
	}
	if c.MaxBlockEntries < 1 {
		return fmt.Errorf("ledger: max block entries %d, want >= 1", c.MaxBlockEntries)
	}
	if c.Serde == nil {
		return errors.New("ledger: no serde")
	}
	if c.Blocks == nil {
		return errors.New("ledger: no blocks reader (set Blocks or Brokers)")
	}
	return nil
}

// NewStage returns the ledger stage: it consumes scores and ledger
// requests (single-partition topics, so one task and one writer), keeps
// pending credits in its changelog, and writes blocks and entries. A
// configuration error surfaces when the task starts.
func NewStage(cfg Config) pipelines.Stage {
	cfg = cfg.withDefaults()
	m := newMetrics(cfg.Registerer)
	return pipelines.Stage{
		Name:      StageName,
		Inputs:    []string{cfg.ScoresTopic, cfg.RequestsTopic},
		Changelog: cfg.ChangelogTopic,
		NewProcessor: func(ctx context.Context, t pipelines.Task) (pipelines.Processor, error) {
			return NewProcessor(ctx, cfg, m)
		},
	}
}

type metrics struct {
	entries   *prometheus.CounterVec
	blocks    prometheus.Counter
	dups      *prometheus.CounterVec
	pending   prometheus.Gauge
	treeSize  prometheus.Gauge
	rebuildS  prometheus.Gauge
	watermark prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		entries:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "minecart_ledger_entries_total", Help: "Entries appended, by kind."}, []string{"kind"}),
		blocks:    prometheus.NewCounter(prometheus.CounterOpts{Name: "minecart_ledger_blocks_total", Help: "Blocks signed and written."}),
		dups:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "minecart_ledger_duplicates_total", Help: "Scores or requests ignored because the book already holds them, by kind."}, []string{"kind"}),
		pending:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "minecart_ledger_pending_credits", Help: "Credits waiting for every scoring watermark to pass their window end."}),
		treeSize:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "minecart_ledger_tree_size", Help: "Entries in the ledger tree."}),
		rebuildS:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "minecart_ledger_rebuild_seconds", Help: "Time the last task assignment took to re-verify the book."}),
		watermark: prometheus.NewGauge(prometheus.GaugeOpts{Name: "minecart_ledger_released_through_ms", Help: "Lowest scoring watermark: credits ending at or before it are in the book."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.entries, m.blocks, m.dups, m.pending, m.treeSize, m.rebuildS, m.watermark} {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) {
					continue // a conflicting collector: keep ours unregistered
				}
			}
		}
	}
	return m
}

// pendingCredit is a credit waiting for the watermarks.
type pendingCredit struct {
	entry Entry
}

// Processor is the ledger's stage processor. It is exported for the
// benchmark and for tests that drive it without a broker.
type Processor struct {
	cfg    Config
	m      *metrics
	signer *Signer
	book   *Book

	pending    map[string]*pendingCredit // score id -> credit
	watermarks map[int32]int64
	tasks      int32
	debits     []Entry // requests of the open batch, appended by Flush
	debitIDs   map[string]struct{}
	broken     error // set when the book moved but the outputs could not be made
}

// NewProcessor rebuilds the book from cfg.Blocks (verifying every block
// against the ledger key) and returns the task's processor. m may be nil.
func NewProcessor(ctx context.Context, cfg Config, m *metrics) (*Processor, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if m == nil {
		m = newMetrics(nil)
	}
	signer, err := NewSigner(cfg.Origin, cfg.Key)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	book, err := replay(ctx, cfg.Blocks, signer.Public(), nil)
	if err != nil {
		return nil, fmt.Errorf("ledger: rebuild from blocks: %w", err)
	}
	if book.Height() > 0 && book.Origin() != cfg.Origin {
		return nil, fmt.Errorf("ledger: book origin %q, configured %q", book.Origin(), cfg.Origin)
	}
	m.rebuildS.Set(time.Since(start).Seconds())
	m.treeSize.Set(float64(book.Size()))
	cfg.Logger.Info("ledger book rebuilt", "blocks", book.Height(), "entries", book.Size(), "root", book.Head().Root.String(), "took", time.Since(start))
	return &Processor{
		cfg: cfg, m: m, signer: signer, book: book,
		pending: make(map[string]*pendingCredit), watermarks: make(map[int32]int64), debitIDs: make(map[string]struct{}),
	}, nil
}

// Book is the processor's book (read-only use, for tests).
func (p *Processor) Book() *Book { return p.book }

const wmPrefix = "wm/"

// Restore replays the changelog: pending credits (key = score id, value =
// the DailyScore record) and watermarks (key = "wm/<task>", value = the
// Watermark record); an empty value deletes the key.
func (p *Processor) Restore(ctx context.Context, rec pipelines.Record) error {
	key := string(rec.Key)
	if t, ok := strings.CutPrefix(key, wmPrefix); ok {
		task, err := strconv.ParseInt(t, 10, 32)
		if err != nil || len(rec.Value) == 0 {
			return nil
		}
		native, err := p.cfg.Serde.DecodeAs(schemas.Watermark, rec.Value)
		if err != nil {
			return fmt.Errorf("changelog %s: %w", key, err)
		}
		wm, err := WatermarkFromNative(native)
		if err != nil || wm.Task != int32(task) {
			return fmt.Errorf("changelog %s: %v", key, err)
		}
		p.watermarks[wm.Task] = max(p.watermarks[wm.Task], wm.ClosedThroughMs)
		p.tasks = wm.Tasks
		return nil
	}
	if len(rec.Value) == 0 {
		delete(p.pending, key)
		return nil
	}
	native, err := p.cfg.Serde.DecodeAs(schemas.DailyScore, rec.Value)
	if err != nil {
		return fmt.Errorf("changelog %s: %w", key, err)
	}
	e, err := CreditFromScore(native)
	if err != nil {
		return fmt.Errorf("changelog %s: %w", key, err)
	}
	if _, done := p.book.Credited(e.ID); !done {
		p.pending[e.ID] = &pendingCredit{entry: e}
	}
	p.m.pending.Set(float64(len(p.pending)))
	return nil
}

// releasedThrough is the lowest watermark once every task has one, else
// math.MinInt64: credits ending at or before it are due.
func (p *Processor) releasedThrough() int64 {
	if p.tasks == 0 || int32(len(p.watermarks)) < p.tasks {
		return math.MinInt64
	}
	low := int64(math.MaxInt64)
	for t := int32(0); t < p.tasks; t++ {
		w, ok := p.watermarks[t]
		if !ok {
			return math.MinInt64
		}
		low = min(low, w)
	}
	return low
}

// Process handles one score, watermark or ledger request.
func (p *Processor) Process(ctx context.Context, rec pipelines.Record, out pipelines.Emitter) error {
	if p.broken != nil {
		return nil // Flush fails the transaction; the task is rebuilt
	}
	name, native, err := p.cfg.Serde.Decode(rec.Value)
	if err != nil {
		if decodeErr(err) {
			return pipelines.Reject("decode", err)
		}
		return err
	}
	switch {
	case rec.Topic == p.cfg.ScoresTopic && name == schemas.DailyScore:
		e, err := CreditFromScore(native)
		if err != nil {
			return pipelines.Reject("invalid_score", err)
		}
		return p.score(e, rec.Value, out)
	case rec.Topic == p.cfg.ScoresTopic && name == schemas.Watermark:
		wm, err := WatermarkFromNative(native)
		if err != nil {
			return pipelines.Reject("invalid_watermark", err)
		}
		return p.watermark(wm, rec.Value, out)
	case rec.Topic == p.cfg.RequestsTopic && name == schemas.DebitRequest:
		e, err := EntryFromRequest(native)
		if err != nil {
			return pipelines.Reject("invalid_request", err)
		}
		if _, queued := p.debitIDs[e.ID]; queued || p.book.HasRequest(e.ID) {
			p.m.dups.WithLabelValues(e.Kind.String()).Inc()
			return nil
		}
		if e.Kind == KindAdjustment && e.Ref != "" {
			if _, ok := p.book.Credited(e.Ref); !ok {
				return pipelines.Reject("unknown_ref", fmt.Errorf("adjustment %q: credit %q is not in the ledger", e.ID, e.Ref))
			}
		}
		p.debits = append(p.debits, e)
		p.debitIDs[e.ID] = struct{}{}
		return nil
	}
	return pipelines.Reject("unexpected_record", fmt.Errorf("%s on %s", name, rec.Topic))
}

// score handles one DailyScore: a duplicate is ignored, a rescore of a
// credited day becomes a late-data adjustment, a day the watermarks have
// passed is credited now, any other waits in the changelog.
func (p *Processor) score(e Entry, raw []byte, out pipelines.Emitter) error {
	if credited, ok := p.book.Credited(e.ID); ok {
		delta := e.Points - credited
		adj := Entry{
			Kind: KindAdjustment, ID: "late/" + e.ID + "/" + fmt.Sprintf("%x", e.EventsHash),
			VehicleID: e.VehicleID, Amount: delta, Ref: e.ID, RequestedAtMs: e.WindowEndMs,
			Reason: fmt.Sprintf("late data: %s rescored to %d points (rules %s)", e.ID, e.Points, e.ConfigVersion),
		}
		if delta == 0 || p.book.HasRequest(adj.ID) {
			p.m.dups.WithLabelValues("credit").Inc()
			return nil
		}
		return p.release([]Entry{adj}, e.WindowEndMs, out)
	}
	if e.WindowEndMs <= p.releasedThrough() {
		// Late: its day was released already. It gets a block of its own.
		if err := p.release([]Entry{e}, e.WindowEndMs, out); err != nil {
			return err
		}
		if _, was := p.pending[e.ID]; was {
			delete(p.pending, e.ID)
			out.EmitTo(p.cfg.ChangelogTopic, 0, []byte(e.ID), nil)
		}
		return nil
	}
	p.pending[e.ID] = &pendingCredit{entry: e}
	out.EmitTo(p.cfg.ChangelogTopic, 0, []byte(e.ID), raw)
	p.m.pending.Set(float64(len(p.pending)))
	return nil
}

// watermark records a task's mark and releases the credits every task has
// passed, one window end at a time, each in canonical order.
func (p *Processor) watermark(wm Watermark, raw []byte, out pipelines.Emitter) error {
	before := p.releasedThrough()
	if old, ok := p.watermarks[wm.Task]; ok && old >= wm.ClosedThroughMs && p.tasks == wm.Tasks {
		return nil
	}
	p.watermarks[wm.Task] = max(p.watermarks[wm.Task], wm.ClosedThroughMs)
	p.tasks = wm.Tasks
	out.EmitTo(p.cfg.ChangelogTopic, 0, []byte(wmPrefix+strconv.Itoa(int(wm.Task))), raw)
	after := p.releasedThrough()
	if after <= before {
		return nil
	}
	p.m.watermark.Set(float64(after))
	due := make([]Entry, 0)
	for _, pc := range p.pending {
		if pc.entry.WindowEndMs <= after {
			due = append(due, pc.entry)
		}
	}
	if len(due) == 0 {
		return nil
	}
	slices.SortFunc(due, func(a, b Entry) int {
		return cmp.Or(cmp.Compare(a.WindowEndMs, b.WindowEndMs), cmp.Compare(a.VehicleID, b.VehicleID), cmp.Compare(a.ID, b.ID))
	})
	for start := 0; start < len(due); {
		end := start
		for end < len(due) && due[end].WindowEndMs == due[start].WindowEndMs {
			end++
		}
		if err := p.release(due[start:end], due[start].WindowEndMs, out); err != nil {
			return err
		}
		start = end
	}
	for _, e := range due {
		delete(p.pending, e.ID)
		out.EmitTo(p.cfg.ChangelogTopic, 0, []byte(e.ID), nil)
	}
	p.m.pending.Set(float64(len(p.pending)))
	return nil
}

// release appends credits (or late-data adjustments) of one window end
// as event-clock blocks and emits them.
func (p *Processor) release(entries []Entry, windowEnd int64, out pipelines.Emitter) error {
	ts := windowEnd
	if h := p.book.Head(); p.book.Height() > 0 && h.Clock == ClockEvent && h.TimestampMs > ts {
		ts = h.TimestampMs // keep event timestamps monotonic across late credits
	}
	return p.appendAndEmit(Release{Entries: entries, TimestampMs: ts, Clock: ClockEvent}, out)
}

func (p *Processor) appendAndEmit(rel Release, out pipelines.Emitter) error {
	blocks, appended, skipped, err := p.book.Append(rel, p.cfg.MaxBlockEntries, p.signer)
	if err != nil {
		return pipelines.Reject("invalid_entry", err) // nothing changed
	}
	for _, s := range skipped {
		p.m.dups.WithLabelValues(s.Kind.String()).Inc()
	}
	// The book has moved: from here on, failing must fail the transaction.
	for _, blk := range blocks {
		v, err := p.cfg.Serde.Encode(schemas.LedgerBlock, BlockNative(blk))
		if err != nil {
			p.broken = fmt.Errorf("encode block %d: %w", blk.Header.Height, err)
			return nil
		}
		out.EmitTo(p.cfg.BlocksTopic, 0, blockKey(blk.Header.Height), v)
	}
	tree := p.book.Tree()
	var kinds [4]int
	native := make(map[string]any, 20)
	buf := make([]byte, 0, 2048)
	var proofs [][]merkle.Hash
	var proofBlock *Block
	for i := range appended {
		a := &appended[i]
		if a.Block != proofBlock {
			h := &a.Block.Header
			var err error
			if proofs, err = tree.InclusionProofs(h.FirstIndex, h.LastIndex, h.TreeSize); err != nil {
				p.broken = err
				return nil
			}
			proofBlock = a.Block
		}
		// One buffer for many values: each value is a sub-slice, capped.
		if cap(buf)-len(buf) < 2048 {
			buf = make([]byte, 0, 256<<10)
		}
		start := len(buf)
		var err error
		buf, err = p.cfg.Serde.AppendEncode(buf, schemas.LedgerEntry, fillEntryNative(native, a, proofs[a.LeafIndex-a.Block.Header.FirstIndex]))
		v := buf[start:len(buf):len(buf)]
		if err != nil {
			p.broken = fmt.Errorf("encode entry %d: %w", a.LeafIndex, err)
			return nil
		}
		out.Emit(p.cfg.EntriesTopic, []byte(a.Entry.Key()), v)
		kinds[a.Entry.Kind]++
	}
	for k, n := range kinds {
		if n > 0 {
			p.m.entries.WithLabelValues(Kind(k).String()).Add(float64(n))
		}
	}
	p.m.blocks.Add(float64(len(blocks)))
	p.m.treeSize.Set(float64(p.book.Size()))
	return nil
}

// Flush appends the batch's debits and adjustments as wall-clock blocks.
func (p *Processor) Flush(ctx context.Context, out pipelines.Emitter) error {
	if p.broken != nil {
		return fmt.Errorf("ledger: %w", p.broken)
	}
	if len(p.debits) == 0 {
		return nil
	}
	rel := Release{Entries: p.debits, TimestampMs: p.cfg.Now().UnixMilli(), Clock: ClockWall}
	p.debits = nil
	clear(p.debitIDs)
	if err := p.appendAndEmit(rel, out); err != nil {
		return err
	}
	if p.broken != nil {
		return fmt.Errorf("ledger: %w", p.broken)
	}
	return nil
}

// Pending is the number of credits waiting for the watermarks.
func (p *Processor) Pending() int { return len(p.pending) }
