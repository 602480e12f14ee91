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
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/prom"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/ledger/merkle"
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
	// MaxReleaseEntries is the most queued credits appended in one
	// transaction (default 50,000; rounded down to whole blocks), so a
	// day of a million vehicles is not one gigabyte-sized transaction.
	MaxReleaseEntries int
	// TickEvery is how often an idle ledger opens a transaction to drain
	// its queue (default 200ms).
	TickEvery time.Duration
	// Serde encodes and decodes the Avro records.
	Serde *schemas.Serde
	// Blocks reads the committed blocks topic from offset 0 when a task is
	// assigned, to rebuild the book. Default: KafkaBlocks over Brokers.
	Blocks BlockSource
	// Brokers make the default Blocks reader (no TLS/SASL: for those set
	// Blocks to a KafkaBlocks with ClientOptions).
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
	if c.MaxReleaseEntries == 0 {
		c.MaxReleaseEntries = 50_000
	}
	if c.TickEvery == 0 {
		c.TickEvery = 200 * time.Millisecond
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
	if c.MaxReleaseEntries < 1 || c.TickEvery < 0 {
		return fmt.Errorf("ledger: max release entries %d, tick %v", c.MaxReleaseEntries, c.TickEvery)
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
	m, merr := newMetrics(cfg.Registerer)
	cache := &bookCache{}
	return pipelines.Stage{
		Name:      StageName,
		Inputs:    []string{cfg.ScoresTopic, cfg.RequestsTopic},
		Changelog: cfg.ChangelogTopic,
		TickEvery: cfg.TickEvery,
		NewProcessor: func(ctx context.Context, t pipelines.Task) (pipelines.Processor, error) {
			if merr != nil {
				return nil, merr
			}
			return newProcessor(ctx, cfg, m, cache)
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

// Processor is the ledger's stage processor. It is exported for the
// benchmark and for tests that drive it without a broker.
//
// A credit goes through three states: pending (its window end is past some
// scoring task's watermark), due (every watermark passed it: it sits in
// the canonical queue and Flush appends it, at most MaxReleaseEntries per
// transaction, cut at block boundaries so the blocks do not depend on how
// the queue was drained), then appended (in the book; its changelog key gets
// a tombstone in the same transaction). A score for a day already released
// is late: it waits in the late queue until the due queue is empty.
type Processor struct {
	cfg    Config
	m      *metrics
	signer *Signer
	book   *Book

	pending    map[string]Entry // score id -> credit, window end past the watermarks
	due        []Entry          // canonical order (window end, vehicle id, id); due[dueHead:] not yet appended
	dueHead    int
	dueIdx     map[string]int   // score id -> index in due
	late       map[string]Entry // score id -> credit that arrived after its day was released
	prepared   bool             // due computed from pending after Restore
	watermarks map[int32]int64
	tasks      int32
	debits     []Entry // requests of the open batch, appended by Flush
	debitIDs   map[string]struct{}
	broken     error // set when the book moved but the outputs could not be made
	entryEnc   *entryEncoder
	cache      *bookCache // receives the book on Close
}

// Close hands the book to the stage's next processor in this process,
// which checks it against the published book before using it.
func (p *Processor) Close() error {
	if p.cache != nil && p.book != nil && p.broken == nil {
		p.cache.put(p.book)
	}
	p.book = nil
	return nil
}

// NewProcessor rebuilds the book from cfg.Blocks (verifying every block
// against the ledger key) and returns the task's processor, with metrics
// registered nowhere (NewStage's processors share the stage's).
func NewProcessor(ctx context.Context, cfg Config) (*Processor, error) {
	return newProcessor(ctx, cfg, nil, nil)
}

// LastBlockReader is a BlockSource that can read just the last committed
// block (KafkaBlocks can): a new processor in the same process then
// resumes from the previous one's book instead of re-reading the book.
type LastBlockReader interface {
	LastBlock(ctx context.Context) (*Block, error)
}

// bookCache hands a closed processor's book to the next processor of the
// same stage in the same process.
type bookCache struct {
	mu   sync.Mutex
	book *Book
}

func (c *bookCache) put(b *Book) {
	c.mu.Lock()
	c.book = b
	c.mu.Unlock()
}

func (c *bookCache) take() *Book {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.book
	c.book = nil
	return b
}

// reuse brings a cached book back to the published book: it undoes the
// blocks the published book does not have (an aborted transaction's) and
// accepts the result only if its head is the published head, hash for hash.
func reuse(ctx context.Context, src BlockSource, b *Book) bool {
	lr, ok := src.(LastBlockReader)
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

func newProcessor(ctx context.Context, cfg Config, m *metrics, cache *bookCache) (*Processor, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if m == nil {
		m, _ = newMetrics(nil) // no registry: cannot fail
	}
	signer, err := NewSigner(cfg.Origin, cfg.Key)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	var book *Book
	how := "rebuilt"
	if cache != nil {
		if cached := cache.take(); cached != nil && reuse(ctx, cfg.Blocks, cached) {
			book, how = cached, "resumed"
		}
	}
	if book == nil {
		var err error
		if book, err = replay(ctx, cfg.Blocks, signer.Public(), nil); err != nil {
			return nil, fmt.Errorf("ledger: rebuild from blocks: %w", err)
		}
	}
	if book.Height() > 0 && book.Origin() != cfg.Origin {
		return nil, fmt.Errorf("ledger: book origin %q, configured %q", book.Origin(), cfg.Origin)
	}
	m.rebuildS.Set(time.Since(start).Seconds())
	m.starts.WithLabelValues(how).Inc()
	m.treeSize.Set(float64(book.Size()))
	cfg.Logger.Info("ledger book "+how, "blocks", book.Height(), "entries", book.Size(), "root", book.Head().Root.String(), "took", time.Since(start))
	return &Processor{
		cfg: cfg, m: m, signer: signer, book: book, cache: cache,
		pending: make(map[string]Entry), dueIdx: make(map[string]int), late: make(map[string]Entry),
		watermarks: make(map[int32]int64), debitIDs: make(map[string]struct{}), entryEnc: newEntryEncoder(cfg.Serde),
	}, nil
}

// Book is the processor's book (read-only use, for tests).
func (p *Processor) Book() *Book { return p.book }

const (
	wmPrefix   = "wm/"   // changelog key of a task's watermark
	latePrefix = "late/" // changelog key of a late credit
)

// Restore replays the changelog: pending and due credits (key = score id,
// value = the DailyScore record), late credits (key = "late/<score id>"),
// watermarks (key = "wm/<task>", value = the Watermark record); an empty
// value deletes the key.
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
		if r := p.releasedThrough(); r != math.MinInt64 {
			p.m.watermark.Set(float64(r))
		}
		return nil
	}
	id, isLate := strings.CutPrefix(key, latePrefix)
	if len(rec.Value) == 0 {
		delete(p.pending, id)
		delete(p.late, id)
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
		if isLate {
			p.late[e.ID] = e
		} else {
			p.pending[e.ID] = e
		}
	}
	return nil
}

// prepare moves, once after Restore, the restored credits every watermark
// passed from pending to the due queue.
func (p *Processor) prepare() {
	if p.prepared {
		return
	}
	p.prepared = true
	p.enqueue(p.releasedThrough())
}

// enqueue moves the pending credits ending at or before through to the
// due queue, in canonical order after what is queued (all of which ends
// earlier).
func (p *Processor) enqueue(through int64) {
	var add []Entry
	for id, e := range p.pending {
		if e.WindowEndMs <= through {
			add = append(add, e)
			delete(p.pending, id)
		}
	}
	slices.SortFunc(add, canonical)
	if p.dueHead == len(p.due) {
		p.due, p.dueHead = p.due[:0], 0
		clear(p.dueIdx)
	}
	for _, e := range add {
		p.dueIdx[e.ID] = len(p.due)
		p.due = append(p.due, e)
	}
	p.m.pending.Set(float64(p.Pending()))
}

func canonical(a, b Entry) int {
	return cmp.Or(cmp.Compare(a.WindowEndMs, b.WindowEndMs), cmp.Compare(a.VehicleID, b.VehicleID), cmp.Compare(a.ID, b.ID))
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
	p.prepare()
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
			if !p.knows(e.Ref) {
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
// credited day becomes a late-data adjustment, a rescore of a queued day
// replaces it, a day the watermarks passed already joins the late queue,
// any other waits in pending. Queued credits are kept in the changelog.
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
	key := e.ID
	switch i, queued := p.dueIdx[e.ID]; {
	case queued && i >= p.dueHead:
		if p.due[i].WindowEndMs != e.WindowEndMs || p.due[i].VehicleID != e.VehicleID {
			return pipelines.Reject("invalid_score", fmt.Errorf("score %q changed its window or vehicle", e.ID))
		}
		p.due[i] = e
	case e.WindowEndMs <= p.releasedThrough() && p.pending[e.ID].ID == "":
		p.late[e.ID] = e
		key = latePrefix + e.ID
	default:
		p.pending[e.ID] = e
	}
	out.EmitTo(p.cfg.ChangelogTopic, 0, []byte(key), raw)
	p.m.pending.Set(float64(p.Pending()))
	return nil
}

// watermark records a task's mark and moves the credits every task has
// passed to the due queue.
func (p *Processor) watermark(wm Watermark, raw []byte, out pipelines.Emitter) error {
	before := p.releasedThrough()
	if old, ok := p.watermarks[wm.Task]; ok && old >= wm.ClosedThroughMs && p.tasks == wm.Tasks {
		return nil
	}
	p.watermarks[wm.Task] = max(p.watermarks[wm.Task], wm.ClosedThroughMs)
	p.tasks = wm.Tasks
	out.EmitTo(p.cfg.ChangelogTopic, 0, []byte(wmPrefix+strconv.Itoa(int(wm.Task))), raw)
	if after := p.releasedThrough(); after > before {
		p.m.watermark.Set(float64(after))
		p.enqueue(after)
	}
	return nil
}

// drain appends up to MaxReleaseEntries queued credits: due ones window
// end by window end, cut only at block boundaries; then, once nothing is
// due, the late ones.
func (p *Processor) drain(out pipelines.Emitter) error {
	n := p.cfg.MaxBlockEntries
	budget := max(n, p.cfg.MaxReleaseEntries/n*n)
	for budget > 0 && p.dueHead < len(p.due) {
		start := p.dueHead
		end := p.due[start].WindowEndMs
		g := start
		for g < len(p.due) && p.due[g].WindowEndMs == end {
			g++
		}
		// A group (one window end) is cut only at multiples of the block
		// size, so its blocks are the same however it is drained.
		take := g - start
		if take > budget {
			if take = budget / n * n; take == 0 {
				break
			}
		}
		j := start + take
		if err := p.release(p.due[start:j], end, out); err != nil {
			return err
		}
		for _, e := range p.due[start:j] {
			delete(p.dueIdx, e.ID)
			out.EmitTo(p.cfg.ChangelogTopic, 0, []byte(e.ID), nil)
		}
		p.dueHead = j
		budget -= take
	}
	if p.dueHead == len(p.due) && budget > 0 && len(p.late) > 0 {
		late := make([]Entry, 0, len(p.late))
		for _, e := range p.late {
			late = append(late, e)
		}
		slices.SortFunc(late, canonical)
		for start := 0; start < len(late); {
			j := start
			for j < len(late) && late[j].WindowEndMs == late[start].WindowEndMs {
				j++
			}
			if err := p.release(late[start:j], late[start].WindowEndMs, out); err != nil {
				return err
			}
			start = j
		}
		for _, e := range late {
			out.EmitTo(p.cfg.ChangelogTopic, 0, []byte(latePrefix+e.ID), nil)
		}
		clear(p.late)
	}
	p.m.pending.Set(float64(p.Pending()))
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
	// The book has moved: from here on, failing must fail the transaction,
	// and nothing is emitted unless every output was made.
	type rec struct {
		topic string
		key   []byte
		value []byte
	}
	recs := make([]rec, 0, len(blocks)+len(appended))
	for _, blk := range blocks {
		v, err := p.cfg.Serde.Encode(schemas.LedgerBlock, BlockNative(blk))
		if err != nil {
			p.broken = fmt.Errorf("encode block %d: %w", blk.Header.Height, err)
			return nil
		}
		recs = append(recs, rec{p.cfg.BlocksTopic, blockKey(blk.Header.Height), v})
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
		buf, err = p.entryEnc.appendEncode(buf, a, proofs[a.LeafIndex-a.Block.Header.FirstIndex], native)
		v := buf[start:len(buf):len(buf)]
		if err != nil {
			p.broken = fmt.Errorf("encode entry %d: %w", a.LeafIndex, err)
			return nil
		}
		recs = append(recs, rec{p.cfg.EntriesTopic, []byte(a.Entry.Key()), v})
		kinds[a.Entry.Kind]++
	}
	for _, r := range recs {
		if r.topic == p.cfg.BlocksTopic {
			out.EmitTo(r.topic, 0, r.key, r.value)
		} else {
			out.Emit(r.topic, r.key, r.value)
		}
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

// Flush appends queued credits (drain) and the batch's debits and
// adjustments (wall-clock blocks).
func (p *Processor) Flush(ctx context.Context, out pipelines.Emitter) error {
	if p.broken != nil {
		return fmt.Errorf("ledger: %w", p.broken)
	}
	p.prepare()
	if err := p.drain(out); err != nil {
		return err
	}
	if len(p.debits) > 0 {
		rel := Release{Entries: p.debits, TimestampMs: p.cfg.Now().UnixMilli(), Clock: ClockWall}
		p.debits = nil
		clear(p.debitIDs)
		if err := p.appendAndEmit(rel, out); err != nil {
			return err
		}
	}
	if p.broken != nil {
		return fmt.Errorf("ledger: %w", p.broken)
	}
	return nil
}

// Tick drains the due queue when no records arrive, whether or not the
// runtime also calls Flush after a tick (if it does, a tick transaction
// appends up to twice MaxReleaseEntries; the blocks are the same either
// way). It emits nothing unless all of a release's outputs could be made.
func (p *Processor) Tick(ctx context.Context, now time.Time, out pipelines.Emitter) error {
	if p.broken != nil {
		return fmt.Errorf("ledger: %w", p.broken)
	}
	p.prepare()
	return p.drain(out)
}

// knows reports whether a credit id is in the book or queued for it.
func (p *Processor) knows(id string) bool {
	if _, ok := p.book.Credited(id); ok {
		return true
	}
	_, pending := p.pending[id]
	_, late := p.late[id]
	i, due := p.dueIdx[id]
	return pending || late || (due && i >= p.dueHead)
}

// Pending is the number of credits not yet in the book: waiting for the
// watermarks, due, or late.
func (p *Processor) Pending() int { return len(p.pending) + len(p.due) - p.dueHead + len(p.late) }
