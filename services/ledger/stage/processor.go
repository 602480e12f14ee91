package stage

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/campaign"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/merkle"
	"github.com/minecart/minecart/services/pseudonym"
	"github.com/minecart/minecart/services/shred"
)

// pseudonymize is the ledger's one choke point for identities: it returns
// a copy of entries with every identity replaced by its pseudonym
// (ledger.Pseudonymize), making (and returning) the keys of identities
// seen for the first time. Without Config.Pseudonyms it returns entries.
func (p *Processor) pseudonymize(entries []ledger.Entry) ([]ledger.Entry, []pseudonym.Opening) {
	if p.names == nil {
		return entries, nil
	}
	out := slices.Clone(entries)
	var created []pseudonym.Opening
	name := func(k pseudonym.Kind, id string) (string, bool) {
		if o, ok := p.names.Lookup(k, id); ok {
			return o.Pseudonym, true
		}
		key := p.cfg.Pseudonyms.Keys.NewKey(k, id)
		o := pseudonym.Opening{Pseudonym: pseudonym.Of(key, k, id), Kind: k, ID: id, Key: key}
		p.names.Put(o)
		created = append(created, o)
		return o.Pseudonym, true
	}
	for i := range out {
		ledger.Pseudonymize(&out[i], name)
	}
	return out, created
}

// forget drops keys made for a release the book refused.
func (p *Processor) forget(created []pseudonym.Opening) {
	for _, o := range created {
		p.names.Delete(o.Pseudonym)
	}
}

// lookup names an identity only if it has a key.
func (p *Processor) lookup(k pseudonym.Kind, id string) (string, bool) {
	o, ok := p.names.Lookup(k, id)
	return o.Pseudonym, ok
}

// inBook is the id entry e has in the book, if its identities have keys.
func (p *Processor) inBook(e ledger.Entry) string {
	if p.names == nil {
		return e.ID
	}
	ledger.Pseudonymize(&e, p.lookup)
	return e.ID
}

// bookCreditID is the id in the book of the credit with clear id
// "<vehicle>/<date>".
func (p *Processor) bookCreditID(id string) string {
	vid, date, ok := strings.Cut(id, "/")
	if p.names == nil || !ok {
		return id
	}
	if ps, ok := p.lookup(pseudonym.Vehicle, vid); ok {
		return ps + "/" + date
	}
	return id
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
	signer ledger.BlockSigner
	book   *ledger.Book

	pending map[string]ledger.Entry // score id -> credit, window end past the watermarks
	due     []ledger.Entry          // canonical order (window end, vehicle id, id); due[dueHead:] not yet appended
	dueHead int
	dueIdx  map[string]int          // score id -> index in due
	late    map[string]ledger.Entry // score id -> credit that arrived after its day was released
	// Re-scored days (DailyScore revisions after late data, and first
	// scores of days that arrived whole after their close): queued by
	// their release mark, appended in canonical order once every
	// watermark reached it (docs/ledger.md, "Rescore").
	lateScores map[string]*lateScore // changelog key -> queued, not yet due
	lateDue    []*lateScore          // due, in (release, vehicle, score id, revision) order
	lateWait   []*lateScore          // due, but their credit is not in the book yet
	prepared   bool                  // due computed from pending after Restore
	watermarks map[int32]int64
	tasks      int32
	debits     []ledger.Entry // requests of the open batch, appended by Flush
	debitIDs   map[string]struct{}
	eraseKeys  []string         // vehicles of the open batch whose keys Flush destroys
	notBefore  int64            // the open batch's lowest block timestamp (transfer expiries)
	broken     error            // set when the book moved but the outputs could not be made
	enc        [2]recordEncoder // the entries topic records (encodeEntries)
	bufs       recordBufs       // their buffers, reused after each commit (Committed)
	cache      *bookCache       // receives the book on Close
	// committed is the book's height when the last transaction known to
	// have committed ended; flushedAt its height at the last Flush, which
	// committed if the processor is called again (an aborted transaction
	// closes it).
	committed, flushedAt uint64
	flushed              bool
	// names are the pseudonym keys (Config.Pseudonyms; nil: none).
	names *pseudonym.Directory
	// keysWritten: the open transaction wrote to the pseudonyms topic.
	keysWritten bool

	// Campaigns (campaigns.go): the scores of credits not yet appended,
	// the bonus candidates waiting for their window end, compiled rules.
	scores   map[string]*avro.DailyScore
	cands    map[string]ledger.Entry
	rules    map[string]*campaign.Rule
	appended []ledger.Appended // what the last appendAndEmit appended
}

// Close hands the book to the stage's next processor in this process,
// which checks it against the published book before using it.
func (p *Processor) Close() error {
	if p.cache != nil && p.book != nil && p.broken == nil {
		p.cache.put(p.book, p.committed)
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

func newProcessor(ctx context.Context, cfg Config, m *metrics, cache *bookCache) (*Processor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if m == nil {
		m, _ = newMetrics(nil) // no registry: cannot fail
	}
	signer, err := ledger.NewSigner(cfg.Origin, cfg.Key)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	var book *ledger.Book
	how := "rebuilt"
	if cache != nil {
		if cached, committed := cache.take(); cached != nil && reuse(ctx, cfg.Blocks, signer.Public(), cached, committed) {
			book, how = cached, "resumed"
		}
	}
	if book == nil {
		var err error
		book, err = ledger.Rebuild(ctx, cfg.Blocks, signer.Public(), func(bad *ledger.BadRecord) {
			m.badBlocks.WithLabelValues(ReaderLabel, string(bad.Reason)).Inc()
			cfg.Logger.Error("ledger block skipped: the record does not extend the verified book",
				"offset", bad.Offset, "height", bad.Height, "reason", string(bad.Reason), "err", bad.Err)
		})
		if err != nil {
			return nil, fmt.Errorf("ledger: rebuild from blocks: %w", err)
		}
	}
	if book.Height() > 0 && book.Origin() != cfg.Origin {
		return nil, fmt.Errorf("ledger: book origin %q, configured %q", book.Origin(), cfg.Origin)
	}
	var names *pseudonym.Directory
	if cfg.Pseudonyms != nil {
		if names, err = cfg.Pseudonyms.Load(ctx); err != nil {
			return nil, fmt.Errorf("ledger: %w", err)
		}
		cfg.Logger.Info("ledger pseudonym keys loaded", "keys", names.Len())
	}
	m.rebuildS.Set(time.Since(start).Seconds())
	m.starts.WithLabelValues(how).Inc()
	m.treeSize.Set(float64(book.Size()))
	cfg.Logger.Info("ledger book "+how, "blocks", book.Height(), "entries", book.Size(), "root", book.Head().Root.String(), "took", time.Since(start))
	return &Processor{
		cfg: cfg, m: m, signer: signer, book: book, cache: cache,
		pending: make(map[string]ledger.Entry), dueIdx: make(map[string]int), late: make(map[string]ledger.Entry),
		lateScores: make(map[string]*lateScore),
		watermarks: make(map[int32]int64), debitIDs: make(map[string]struct{}), committed: book.Height(), names: names,
		scores: make(map[string]*avro.DailyScore), cands: make(map[string]ledger.Entry), rules: make(map[string]*campaign.Rule),
	}, nil
}

// Book is the processor's book (read-only use, for tests).
func (p *Processor) Book() *ledger.Book { return p.book }

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
		var wm avro.Watermark
		if err := p.cfg.Serde.Unmarshal(rec.Value, &wm); err != nil {
			return fmt.Errorf("changelog %s: %w", key, err)
		}
		if err := checkWatermark(&wm); err != nil || wm.Task != int32(task) {
			return fmt.Errorf("changelog %s: %v", key, err)
		}
		p.watermarks[wm.Task] = max(p.watermarks[wm.Task], wm.ClosedThroughMs.UnixMilli())
		p.tasks = wm.Tasks
		if r := p.releasedThrough(); r != math.MinInt64 {
			p.m.watermark.Set(float64(r))
		}
		return nil
	}
	if _, ok := strings.CutPrefix(key, rescorePrefix); ok {
		if len(rec.Value) == 0 {
			delete(p.lateScores, key)
			return nil
		}
		var s avro.DailyScore
		if err := p.cfg.Serde.Unmarshal(rec.Value, &s); err != nil {
			return fmt.Errorf("changelog %s: %w", key, err)
		}
		ls, err := newLateScore(&s)
		if err != nil {
			return fmt.Errorf("changelog %s: %w", key, err)
		}
		if !p.lateDone(ls) {
			p.lateScores[key] = ls
		}
		return nil
	}
	if id, ok := strings.CutPrefix(key, bonusPrefix); ok {
		return p.restoreBonus(id, rec.Value)
	}
	id, isLate := strings.CutPrefix(key, latePrefix)
	if len(rec.Value) == 0 {
		delete(p.pending, id)
		delete(p.late, id)
		delete(p.scores, id)
		return nil
	}
	var s avro.DailyScore
	if err := p.cfg.Serde.Unmarshal(rec.Value, &s); err != nil {
		return fmt.Errorf("changelog %s: %w", key, err)
	}
	e, err := ledger.CreditFromScore(&s)
	if err != nil {
		return fmt.Errorf("changelog %s: %w", key, err)
	}
	if _, done := p.book.Credited(p.bookCreditID(e.ID)); !done {
		p.scores[e.ID] = &s
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
	var add []ledger.Entry
	for id, e := range p.pending {
		if e.WindowEndMs <= through {
			add = append(add, e)
			delete(p.pending, id)
		}
	}
	slices.SortFunc(add, canonical)
	var lateAdd []*lateScore
	for key, ls := range p.lateScores {
		if ls.release <= through {
			lateAdd = append(lateAdd, ls)
			delete(p.lateScores, key)
		}
	}
	if len(lateAdd) > 0 {
		p.lateDue = append(p.lateDue, lateAdd...)
		slices.SortFunc(p.lateDue, lateOrder)
	}
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

func canonical(a, b ledger.Entry) int {
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

// unseal opens a sealed score (docs/privacy.md): its inner value, or nil
// (skipped, counted) when the vehicle's key is destroyed. The opening
// joins the ledger's keys, so the credit is named by the pseudonym the
// scoring stage made.
func (p *Processor) unseal(ctx context.Context, rec pipelines.Record) ([]byte, error) {
	ps := p.cfg.Pseudonyms
	if ps == nil || ps.Follow == nil || p.names == nil {
		return nil, pipelines.Reject("sealed", errors.New("a sealed score, and the ledger has no pseudonym keys to open it"))
	}
	// Waiting for the pseudonyms topic's open transactions would wait for
	// this one if it wrote keys: then a key not read yet fails the batch
	// (retried), it is never taken for destroyed.
	r := shred.Reader{Keys: ps.Follow, Serde: p.cfg.Serde, MayWait: func() bool { return !p.keysWritten }}
	o, inner, _, err := r.Unseal(ctx, rec.Topic, rec.Key, rec.Value)
	switch {
	case errors.Is(err, shred.ErrShredded):
		p.m.shredded.Inc()
		return nil, nil
	case errors.Is(err, shred.ErrBad):
		return nil, pipelines.Reject("sealed", err)
	case err != nil:
		return nil, err // the pseudonyms topic could not be read (or not yet): retried
	}
	if _, ok := p.names.Open(o.Pseudonym); !ok {
		p.names.Put(o)
	}
	return inner, nil
}

// Process handles one score, watermark or ledger request.
func (p *Processor) Process(ctx context.Context, rec pipelines.Record, out pipelines.Emitter) error {
	p.settle()
	if p.broken != nil {
		return nil // Flush fails the transaction; the task is rebuilt
	}
	p.prepare()
	name, err := p.cfg.Serde.Name(rec.Value)
	if err != nil {
		return decodeErr(err)
	}
	if rec.Topic == p.cfg.ScoresTopic && name == schemas.Sealed {
		if rec.Value, err = p.unseal(ctx, rec); err != nil || rec.Value == nil {
			return err
		}
		if name, err = p.cfg.Serde.Name(rec.Value); err != nil || name != schemas.DailyScore {
			return pipelines.Reject("sealed", fmt.Errorf("%w: the sealed record is a %s, not a score (%v)", shred.ErrBad, name, err))
		}
	}
	switch {
	case rec.Topic == p.cfg.ScoresTopic && name == schemas.DailyScore:
		var s avro.DailyScore
		if err := p.cfg.Serde.Unmarshal(rec.Value, &s); err != nil {
			return decodeErr(err)
		}
		if s.Revision != 0 || s.ReleaseMs != 0 {
			return p.revision(&s, rec.Value, out)
		}
		e, err := ledger.CreditFromScore(&s)
		if err != nil {
			return pipelines.Reject("invalid_score", err)
		}
		return p.score(e, &s, rec.Value, out)
	case rec.Topic == p.cfg.ScoresTopic && name == schemas.Watermark:
		var wm avro.Watermark
		if err := p.cfg.Serde.Unmarshal(rec.Value, &wm); err != nil {
			return decodeErr(err)
		}
		if err := checkWatermark(&wm); err != nil {
			return pipelines.Reject("invalid_watermark", err)
		}
		return p.watermark(wm.Task, wm.Tasks, wm.ClosedThroughMs.UnixMilli(), rec.Value, out)
	case rec.Topic == p.cfg.RequestsTopic && name == schemas.CampaignRequest:
		var r avro.CampaignRequest
		if err := p.cfg.Serde.Unmarshal(rec.Value, &r); err != nil {
			return decodeErr(err)
		}
		return p.campaignRequest(&r, out)
	case rec.Topic == p.cfg.RequestsTopic && name == schemas.DebitRequest:
		var r avro.DebitRequest
		if err := p.cfg.Serde.Unmarshal(rec.Value, &r); err != nil {
			return decodeErr(err)
		}
		e, err := ledger.EntryFromRequest(&r)
		if err != nil {
			return pipelines.Reject("invalid_request", err)
		}
		if e.Kind == ledger.KindErasure && e.VehicleID != "" {
			// A vehicle's erasure destroys its key and appends nothing: an
			// owner's erasure names its vehicles too, and entries naming
			// the account and its vehicles side by side (one block, one
			// requested_at) would link them for good (docs/ledger.md,
			// Kind 8).
			p.eraseKeys = append(p.eraseKeys, e.VehicleID)
			return nil
		}
		if _, queued := p.debitIDs[e.ID]; queued || p.book.HasRequest(p.inBook(e)) {
			p.m.dups.WithLabelValues(e.Kind.String()).Inc()
			return nil
		}
		if e.Kind == ledger.KindAdjustment && e.Ref != "" {
			if !p.knows(e.Ref) {
				return pipelines.Reject("unknown_ref", fmt.Errorf("adjustment %q: credit %q is not in the ledger", e.ID, e.Ref))
			}
		}
		p.debits = append(p.debits, e)
		p.debitIDs[e.ID] = struct{}{}
		return nil
	case rec.Topic == p.cfg.RequestsTopic && name == schemas.TransferRequest:
		var r avro.TransferRequest
		if err := p.cfg.Serde.Unmarshal(rec.Value, &r); err != nil {
			return decodeErr(err)
		}
		e, err := ledger.EntryFromTransfer(&r)
		if err != nil {
			return pipelines.Reject("invalid_request", err)
		}
		if _, queued := p.debitIDs[e.ID]; queued || p.book.HasRequest(e.ID) {
			p.m.dups.WithLabelValues(e.Kind.String()).Inc()
			return nil
		}
		// An expiry is stamped at or after its deadline, so the book
		// shows that it expired in ledger time (docs/economy.md).
		p.notBefore = max(p.notBefore, r.NotBeforeMs)
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
func (p *Processor) score(e ledger.Entry, s *avro.DailyScore, raw []byte, out pipelines.Emitter) error {
	if credited, ok := p.book.Credited(p.bookCreditID(e.ID)); ok {
		delta := e.Points - credited
		adj := ledger.Entry{
			Kind: ledger.KindAdjustment, ID: "late/" + e.ID + "/" + fmt.Sprintf("%x", e.EventsHash),
			VehicleID: e.VehicleID, Amount: delta, Ref: e.ID, RequestedAtMs: e.WindowEndMs,
			Reason: fmt.Sprintf("late data: %s rescored to %d points (rules %s)", e.ID, e.Points, e.ConfigVersion),
		}
		if delta == 0 || p.book.HasRequest(p.inBook(adj)) {
			p.m.dups.WithLabelValues("credit").Inc()
			return nil
		}
		return p.release([]ledger.Entry{adj}, e.WindowEndMs, out)
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
	p.scores[e.ID] = s
	out.EmitTo(p.cfg.ChangelogTopic, 0, []byte(key), raw)
	p.m.pending.Set(float64(p.Pending()))
	return nil
}

// watermark records a task's mark and moves the credits every task has
// passed to the due queue.
func (p *Processor) watermark(task, tasks int32, closedThroughMs int64, raw []byte, out pipelines.Emitter) error {
	before := p.releasedThrough()
	if old, ok := p.watermarks[task]; ok && old >= closedThroughMs && p.tasks == tasks {
		return nil
	}
	p.watermarks[task] = max(p.watermarks[task], closedThroughMs)
	p.tasks = tasks
	out.EmitTo(p.cfg.ChangelogTopic, 0, []byte(wmPrefix+strconv.Itoa(int(task))), raw)
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
	for budget > 0 {
		if len(p.lateDue) > 0 && (p.dueHead == len(p.due) || p.lateDue[0].release < p.due[p.dueHead].WindowEndMs) {
			k, err := p.releaseLate(out)
			if err != nil {
				return err
			}
			budget -= k
			continue
		}
		if p.dueHead >= len(p.due) {
			break
		}
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
		if err := p.payBonuses(out); err != nil {
			return err
		}
	}
	if len(p.lateWait) > 0 && p.dueHead == len(p.due) && len(p.lateDue) == 0 {
		if err := p.retryWaiting(out); err != nil {
			return err
		}
	}
	if p.dueHead == len(p.due) && budget > 0 && len(p.late) > 0 {
		late := make([]ledger.Entry, 0, len(p.late))
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
			if err := p.payBonuses(out); err != nil {
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
func (p *Processor) release(entries []ledger.Entry, windowEnd int64, out pipelines.Emitter) error {
	ts := windowEnd
	if h := p.book.Head(); p.book.Height() > 0 && h.Clock == ledger.ClockEvent && h.TimestampMs > ts {
		ts = h.TimestampMs // keep event timestamps monotonic across late credits
	}
	if err := p.appendAndEmit(ledger.Release{Entries: entries, TimestampMs: ts, Clock: ledger.ClockEvent}, out); err != nil {
		return err
	}
	p.candidates(entries, p.appended, out)
	return nil
}

// appendAndEmit appends rel to the book and emits its blocks and entries.
// An invalid release changed nothing and is rejected; a failure after the
// book changed (ledger.ErrUnusable, or outputs that cannot be made) marks
// the processor broken: Flush fails the transaction and the task is
// rebuilt from the published book, never from this one.
func (p *Processor) appendAndEmit(rel ledger.Release, out pipelines.Emitter) error {
	if p.broken != nil {
		return nil // the book is not to be appended to again
	}
	p.appended = nil
	var created []pseudonym.Opening
	// The choke point: no identity reaches the book in clear.
	rel.Entries, created = p.pseudonymize(rel.Entries)
	blocks, appended, skipped, err := p.book.Append(rel, p.cfg.MaxBlockEntries, p.signer)
	if errors.Is(err, ledger.ErrUnusable) {
		p.broken = err
		return nil
	}
	if err != nil {
		p.forget(created)
		return pipelines.Reject("invalid_entry", err) // nothing changed
	}
	for _, s := range skipped {
		p.m.dups.WithLabelValues(s.Kind.String()).Inc()
	}
	// The book has moved: from here on, failing must fail the transaction
	// (p.broken: Flush fails, the transaction aborts), so what was emitted
	// before a failure never commits. The keys and blocks are emitted
	// first, then the entries topic records chunk by chunk, each chunk
	// released to the producer (pipelines.Release) while the next one is
	// encoded.
	type rec struct {
		topic string
		key   []byte
		value []byte
	}
	recs := make([]rec, 0, len(created)+len(blocks))
	if ps := p.cfg.Pseudonyms; ps != nil {
		now := p.cfg.Now()
		for _, o := range created {
			v, err := p.cfg.Serde.Marshal(ps.Seal.Record(o, now))
			if err != nil {
				p.broken = fmt.Errorf("encode pseudonym: %w", err)
				return nil
			}
			recs = append(recs, rec{ps.Topic, []byte(o.Pseudonym), v})
			p.keysWritten = true
		}
		// An erasure destroys the keys of the identities it names: a
		// tombstone on the topic (in this transaction) and the copy here.
		for i := range appended {
			if e := appended[i].Entry; e.Kind == ledger.KindErasure {
				for _, id := range e.Identities() {
					recs = append(recs, rec{ps.Topic, []byte(id), nil})
					p.names.Delete(id)
					p.keysWritten = true
				}
			}
		}
	}
	var buf []byte // the blocks' records, in buffers reused after the commit (p.bufs)
	for _, blk := range blocks {
		// Room made up front: a block of 1,000 entries is ~250 KiB, which
		// Marshal would reach by a dozen doublings and copies.
		size := 512 + len(blk.Checkpoint) + len(blk.Signature)
		for _, raw := range blk.Entries {
			size += len(raw) + binary.MaxVarintLen64
		}
		if cap(buf)-len(buf) < size {
			buf = p.bufs.get(size)
		}
		start := len(buf)
		var err error
		if buf, err = p.cfg.Serde.AppendMarshal(buf, blk.Avro()); err != nil {
			p.broken = fmt.Errorf("encode block %d: %w", blk.Header.Height, err)
			return nil
		}
		recs = append(recs, rec{p.cfg.BlocksTopic, blockKey(blk.Header.Height), buf[start:len(buf):len(buf)]})
	}
	p.appended = appended
	for _, r := range recs {
		out.EmitTo(r.topic, 0, r.key, r.value)
	}
	pipelines.Release(out)
	var kinds [256]int
	for start := 0; start < len(appended); {
		end := min(start+releaseChunk, len(appended))
		for end < len(appended) && appended[end].Block == appended[end-1].Block {
			end++ // a chunk ends with a block: one proof set per block
		}
		entries, err := p.encodeEntries(appended[start:end])
		if err != nil {
			p.broken = err
			return nil
		}
		for i, r := range entries {
			out.Emit(p.cfg.EntriesTopic, r.key, r.value)
			kinds[appended[start+i].Entry.Kind]++
		}
		pipelines.Release(out)
		start = end
	}
	for k, n := range kinds {
		if n > 0 {
			p.m.entries.WithLabelValues(ledger.Kind(k).String()).Add(float64(n))
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
	if err := p.payBonuses(out); err != nil { // restored candidates
		return err
	}
	if err := p.appendDebits(out); err != nil {
		return err
	}
	p.destroyKeys(out)
	p.flushedAt, p.flushed = p.book.Height(), true
	p.keysWritten = false // the transaction ends with this Flush
	if p.broken != nil {
		return fmt.Errorf("ledger: %w", p.broken)
	}
	return nil
}

// destroyKeys writes a tombstone for the key of each vehicle whose
// erasure the batch requested, and drops the ledger's copy. A vehicle
// with no key (never in the book, or erased already) needs nothing, so a
// request read twice does nothing the second time.
func (p *Processor) destroyKeys(out pipelines.Emitter) {
	if p.broken != nil || p.names == nil {
		p.eraseKeys = p.eraseKeys[:0]
		return
	}
	for _, id := range p.eraseKeys {
		o, ok := p.names.Lookup(pseudonym.Vehicle, id)
		if !ok {
			continue
		}
		out.EmitTo(p.cfg.Pseudonyms.Topic, 0, []byte(o.Pseudonym), nil)
		p.names.Delete(o.Pseudonym)
		p.m.keysErased.Inc()
	}
	p.eraseKeys = p.eraseKeys[:0]
}

// appendDebits appends the queued debits and adjustments (a wall-clock
// release).
func (p *Processor) appendDebits(out pipelines.Emitter) error {
	if len(p.debits) == 0 {
		return nil
	}
	rel := ledger.Release{Entries: p.debits, TimestampMs: max(p.cfg.Now().UnixMilli(), p.notBefore), Clock: ledger.ClockWall}
	p.debits, p.notBefore = nil, 0
	clear(p.debitIDs)
	return p.appendAndEmit(rel, out)
}

// Tick drains the due queue when no records arrive, whether or not the
// runtime also calls Flush after a tick (if it does, a tick transaction
// appends up to twice MaxReleaseEntries; the blocks are the same either
// way). It emits nothing unless all of a release's outputs could be made.
func (p *Processor) Tick(ctx context.Context, now time.Time, out pipelines.Emitter) error {
	p.settle()
	if p.broken != nil {
		return fmt.Errorf("ledger: %w", p.broken)
	}
	p.prepare()
	return p.drain(out)
}

// settle notes that the transaction of the last Flush committed: the
// runtime calls the processor again only then (after an abort it closes
// it).
func (p *Processor) settle() {
	if p.flushed {
		p.committed, p.flushed = p.flushedAt, false
	}
}

// knows reports whether a credit id is in the book or queued for it.
func (p *Processor) knows(id string) bool {
	if _, ok := p.book.Credited(p.bookCreditID(id)); ok {
		return true
	}
	_, pending := p.pending[id]
	_, late := p.late[id]
	i, due := p.dueIdx[id]
	return pending || late || (due && i >= p.dueHead)
}

// decodeErr rejects bad input (unknown schema, malformed bytes) as
// "decode"; other Serde errors (a registry out of reach) are transient.
func decodeErr(err error) error {
	if errors.Is(err, schemas.ErrUnknownSchema) || errors.Is(err, schemas.ErrMalformed) {
		return pipelines.Reject("decode", err)
	}
	return err
}

// checkWatermark checks a scoring task's closed-through mark.
func checkWatermark(wm *avro.Watermark) error {
	if wm.Tasks < 1 || wm.Task < 0 || wm.Task >= wm.Tasks || wm.Tasks > 1<<16 {
		return fmt.Errorf("watermark: task %d of %d", wm.Task, wm.Tasks)
	}
	return nil
}

// entryRecord fills r (reused: encode it before the next call) with the
// entries topic record of an appended entry with its inclusion proof in
// the tree after its block.
func entryRecord(r *avro.LedgerEntry, a *ledger.Appended, proof []merkle.Hash) *avro.LedgerEntry {
	h, e := &a.Block.Header, a.Entry
	r.Proof = r.Proof[:0]
	for i := range proof {
		r.Proof = append(r.Proof, proof[i][:])
	}
	r.Entry, r.LeafIndex, r.BlockHeight, r.TreeSize, r.Root = a.Raw, int64(a.LeafIndex), int64(h.Height), int64(h.TreeSize), h.Root[:]
	r.Checkpoint, r.Kind, r.ID, r.VehicleID, r.Account = a.Block.Checkpoint, avro.EntryKind(e.Kind.String()), e.ID, e.VehicleID, e.Account
	r.Delta, r.Date, r.ConfigVersion, r.EventsHash = e.Delta(), e.Date, e.ConfigVersion, e.EventsHash
	r.Reason, r.RedemptionID, r.Ref, r.BlockTimestampMs = e.Reason, e.RedemptionID, e.Ref, h.TimestampMs
	r.Revision, r.RefLeafIndex, r.Points = 0, -1, 0
	switch e.Kind {
	case ledger.KindCredit:
		r.Points = e.Points
	case ledger.KindRescore:
		r.Revision, r.RefLeafIndex, r.Points = int32(e.Revision), int64(e.RefLeaf), e.Points
	}
	r.CounterAccount = e.CounterAccount
	r.Campaign = e.Campaign
	return r
}

// blockKey is the Kafka key of a block: its height in decimal.
func blockKey(h uint64) []byte { return strconv.AppendUint(nil, h, 10) }

// Pending is the number of credits not yet in the book: waiting for the
// watermarks, due, or late.
func (p *Processor) Pending() int {
	return len(p.pending) + len(p.due) - p.dueHead + len(p.late) + len(p.lateScores) + len(p.lateDue) + len(p.lateWait)
}
