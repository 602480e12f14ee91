package ledger

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/minecart/minecart/services/ledger/merkle"
)

// Inconsistency is the first thing wrong with a book, said precisely: which
// block (height), which entry (leaf index, or -1 for the block itself),
// what, and what was expected versus found.
type Inconsistency struct {
	// Reason classifies the block that failed (empty for a problem of the
	// book as a whole, such as one that does not extend an earlier
	// checkpoint).
	Reason   Reason
	Block    uint64
	Entry    int64
	What     string
	Expected string
	Found    string
}

func (e *Inconsistency) Error() string {
	where := fmt.Sprintf("block %d", e.Block)
	if e.Entry >= 0 {
		where += fmt.Sprintf(", entry %d", e.Entry)
	}
	if e.Expected == "" && e.Found == "" {
		return where + ": " + e.What
	}
	return fmt.Sprintf("%s: %s: expected %s, found %s", where, e.What, e.Expected, e.Found)
}

// Book is the ledger's state: the Merkle tree of every entry, the chain of
// block headers, and the idempotency sets (credited score ids with the
// points credited so far, and request ids of debits and adjustments). The
// writer appends to it (Append); readers and the verifier rebuild it block
// by block (Apply), checking everything. A Book is not safe for concurrent
// use.
type Book struct {
	tree     merkle.Tree
	height   uint64        // height of the next block
	last     merkle.Hash   // hash of the last header
	heads    []merkle.Hash // hash of every header by height: a block seen again is told from a fork
	lastHead Header
	lastCP   string // the last block's checkpoint
	origin   string
	// credits: credited score id -> points credited (incl. late-data
	// adjustments and rescores) and the leaf index of its credit entry
	// (rescores link to it); requests: request ids of every other kind.
	credits  idIndex
	requests idIndex
	// recent are the last blocks Append made (at most maxRecent), so Undo
	// can take back those of an aborted transaction; base is the header and
	// checkpoint before recent[0].
	recent   []*Block
	baseHead Header
	baseCP   string
	unusable error // set by an Append that failed after changing the book
	camp     campaigns
}

// maxRecent bounds the blocks Undo can take back: a few transactions' worth.
const maxRecent = 256

// NewBook returns an empty book.
func NewBook() *Book {
	return &Book{credits: newIDIndex(), requests: newIDIndex()}
}

// Size is the number of entries.
func (b *Book) Size() uint64 { return b.tree.Size() }

// Height is the number of blocks.
func (b *Book) Height() uint64 { return b.height }

// Head is the last block's header (zero before the first block).
func (b *Book) Head() Header { return b.lastHead }

// Checkpoint is the last block's signed checkpoint ("" before the first).
func (b *Book) Checkpoint() string { return b.lastCP }

// Origin is the log's name, from its first block or signer.
func (b *Book) Origin() string { return b.origin }

// Tree is the book's Merkle tree (read-only use).
func (b *Book) Tree() *merkle.Tree { return &b.tree }

// Credited reports whether score id was credited and the points credited
// for it so far (credit plus late-data adjustments).
func (b *Book) Credited(id string) (int64, bool) {
	if r := b.credits.find(id); r != nil {
		return r.points, true
	}
	return 0, false
}

// CreditLeaf reports the leaf index of score id's credit entry.
func (b *Book) CreditLeaf(id string) (uint64, bool) {
	if r := b.credits.find(id); r != nil {
		return r.leaf, true
	}
	return 0, false
}

// checkRescore checks a rescore against the book before it is appended:
// its credit is in the book before leaf before (for the verifier, in an
// earlier block; credits of the same release or block, already in the
// index, do not count) at the leaf it names, and its delta is its points
// minus the day's points so far (points holds the days rescored earlier
// in the same block).
func (b *Book) checkRescore(e *Entry, points map[string]int64, before uint64) error {
	r := b.credits.find(e.Ref)
	if r == nil || r.leaf >= before {
		return fmt.Errorf("rescore %q: credit %q is not in the book", e.ID, e.Ref)
	}
	cur, ok := points[e.Ref]
	if !ok {
		cur = r.points
	}
	if r.leaf != e.RefLeaf {
		return fmt.Errorf("rescore %q: credit %q is leaf %d, the rescore names leaf %d", e.ID, e.Ref, r.leaf, e.RefLeaf)
	}
	if e.Points-e.Amount != cur {
		return fmt.Errorf("rescore %q: %d points with delta %d, but the day has %d", e.ID, e.Points, e.Amount, cur)
	}
	points[e.Ref] = e.Points
	return nil
}

// HasRequest reports whether a debit or adjustment request id was applied.
func (b *Book) HasRequest(id string) bool {
	return b.requests.find(id) != nil
}

// addID adds entry e's credit or request id to the book's idempotency
// sets, the credit with its points and leaf. It reports false, changing
// nothing, if the book holds the id (appended before, or earlier in the
// same release or block).
func (b *Book) addID(e *Entry, leaf uint64) bool {
	if e.Kind == KindCredit {
		return b.credits.insert(e.ID, e.Points, leaf)
	}
	return b.requests.insert(e.ID, 0, leaf)
}

// removeID takes back addID.
func (b *Book) removeID(e *Entry) {
	if e.Kind == KindCredit {
		b.credits.remove(e.ID)
	} else {
		b.requests.remove(e.ID)
	}
}

// dupErr is the error of an entry whose id the book holds.
func dupErr(e *Entry) error {
	if e.Kind == KindCredit {
		return fmt.Errorf("vehicle-day %q credited twice", e.ID)
	}
	return fmt.Errorf("request %q applied twice", e.ID)
}

// record applies an appended entry's effects beside its id (addID): the
// points a late-data adjustment or a rescore adds to its credit, and the
// campaigns' state.
func (b *Book) record(e *Entry, leaf uint64) {
	if e.Kind == KindAdjustment && e.Ref != "" || e.Kind == KindRescore {
		if r := b.credits.find(e.Ref); r != nil {
			r.points += e.Amount
		}
	}
	b.camp.record(e, leaf)
}

// Apply checks block blk against the book and the ledger public key and, if
// everything holds, appends it. It recomputes every leaf and the root,
// checks the link to the previous header, the indexes, the signature and
// the checkpoint, and that no vehicle-day or request appears twice. The
// error is an *Inconsistency whose Reason classifies the block (Classify
// order, docs/ledger.md "A bad block"); a block that fails changes
// nothing, so the book goes on with the next one.
func (b *Book) Apply(blk *Block, pub ed25519.PublicKey) error {
	h := &blk.Header
	bad := func(reason Reason, entry int64, what string, expected, found any) error {
		return &Inconsistency{Reason: reason, Block: b.height, Entry: entry, What: what, Expected: fmt.Sprint(expected), Found: fmt.Sprint(found)}
	}
	if h.Height != b.height {
		return b.notNext(blk, pub)
	}
	if err := b.checkSigned(blk, pub); err != nil {
		return err
	}
	if h.PrevHash != b.last {
		return bad(ReasonFork, -1, "previous block hash", b.last, h.PrevHash)
	}
	if h.FirstIndex != b.tree.Size() {
		return bad(ReasonInvalid, -1, "first entry index", b.tree.Size(), h.FirstIndex)
	}
	if len(blk.Entries) == 0 {
		return bad(ReasonBadEntries, -1, "entry count", ">= 1", 0)
	}
	if want := h.FirstIndex + uint64(len(blk.Entries)) - 1; h.LastIndex != want {
		return bad(ReasonBadEntries, -1, "last entry index", want, h.LastIndex)
	}
	if want := h.FirstIndex + uint64(len(blk.Entries)); h.TreeSize != want {
		return bad(ReasonBadEntries, -1, "tree size", want, h.TreeSize)
	}
	if h.Height > 0 && h.Clock == ClockEvent && b.lastHead.Clock == ClockEvent && h.TimestampMs < b.lastHead.TimestampMs {
		return bad(ReasonInvalid, -1, "credit block timestamp (window end) not before the previous one", fmt.Sprintf(">= %d", b.lastHead.TimestampMs), h.TimestampMs)
	}
	// Check every entry before the book changes: ids go into the
	// idempotency sets as they are checked (a repeat within the block is
	// found there) and come out again if the block fails.
	entries := make([]Entry, len(blk.Entries))
	added := 0
	ok := false
	defer func() {
		if !ok {
			for i := added - 1; i >= 0; i-- {
				b.removeID(&entries[i])
			}
		}
	}()
	var rescored map[string]int64
	for i, raw := range blk.Entries {
		idx := int64(h.FirstIndex) + int64(i)
		e, err := DecodeEntry(raw)
		if err != nil {
			return &Inconsistency{Reason: ReasonBadEntries, Block: b.height, Entry: idx, What: err.Error()}
		}
		if h.Clock == ClockEvent && e.Kind == KindCredit && e.WindowEndMs > h.TimestampMs {
			return bad(ReasonBadEntries, idx, "credit window end within the block's timestamp", fmt.Sprintf("<= %d", h.TimestampMs), e.WindowEndMs)
		}
		if !b.addID(&e, uint64(idx)) {
			return &Inconsistency{Reason: ReasonBadEntries, Block: b.height, Entry: idx, What: dupErr(&e).Error()}
		}
		entries[i] = e
		added++
		if e.Kind == KindRescore {
			if rescored == nil {
				rescored = map[string]int64{}
			}
			if err := b.checkRescore(&e, rescored, h.FirstIndex); err != nil {
				return &Inconsistency{Reason: ReasonBadEntries, Block: b.height, Entry: idx, What: err.Error()}
			}
		}
	}
	first := b.tree.Size()
	for _, raw := range blk.Entries {
		b.tree.Append(raw)
	}
	if root := b.tree.Root(); root != h.Root {
		if err := b.tree.Truncate(first); err != nil {
			return fmt.Errorf("ledger: take back block %d: %w", h.Height, err)
		}
		return bad(ReasonBadEntries, -1, fmt.Sprintf("root after entries %d..%d", h.FirstIndex, h.LastIndex), "signed "+h.Root.String(), "recomputed "+root.String())
	}
	ok = true
	for i := range entries {
		b.record(&entries[i], first+uint64(i))
	}
	if b.origin == "" {
		cp, _ := VerifyCheckpoint(blk.Checkpoint, pub) // checkSigned checked it
		b.origin = cp.Origin
	}
	b.last = h.Hash()
	b.heads = append(b.heads, b.last)
	b.lastHead = *h
	b.lastCP = blk.Checkpoint
	b.height++
	return nil
}

// checkSigned checks blk's header signature and checkpoint against pub
// and the book's origin: a failure is ReasonForged (or ReasonInvalid for
// a checkpoint signed by the key but for another log or tree head).
func (b *Book) checkSigned(blk *Block, pub ed25519.PublicKey) error {
	h := &blk.Header
	if !ed25519.Verify(pub, h.Marshal(), blk.Signature) {
		return &Inconsistency{Reason: ReasonForged, Block: b.height, Entry: -1, What: "header signature by the ledger key",
			Expected: "valid Ed25519 signature", Found: hex.EncodeToString(blk.Signature)}
	}
	cp, err := VerifyCheckpoint(blk.Checkpoint, pub)
	if err != nil {
		return &Inconsistency{Reason: ReasonForged, Block: b.height, Entry: -1, What: err.Error()}
	}
	if b.origin != "" && cp.Origin != b.origin {
		return &Inconsistency{Reason: ReasonInvalid, Block: b.height, Entry: -1, What: "checkpoint origin", Expected: b.origin, Found: cp.Origin}
	}
	if cp.Size != h.TreeSize || cp.Root != h.Root {
		return &Inconsistency{Reason: ReasonInvalid, Block: b.height, Entry: -1, What: "checkpoint tree head",
			Expected: fmt.Sprintf("%d %s", h.TreeSize, h.Root), Found: fmt.Sprintf("%d %s", cp.Size, cp.Root)}
	}
	return nil
}

// notNext classifies a block whose height is not the book's next one: a
// copy of an applied block (ReasonDuplicate), a block not signed by the
// key (ReasonForged), another signed block at an applied height
// (ReasonFork), a signed header at an applied height with other entries
// (ReasonBadEntries), or a signed block past the next height
// (ReasonOutOfOrder).
func (b *Book) notNext(blk *Block, pub ed25519.PublicKey) error {
	h := &blk.Header
	what := "height"
	if h.Height < b.height {
		what = fmt.Sprintf("height (block %d is applied)", h.Height)
	}
	inc := &Inconsistency{Block: b.height, Entry: -1, What: what, Expected: fmt.Sprint(b.height), Found: fmt.Sprint(h.Height)}
	signed := ed25519.Verify(pub, h.Marshal(), blk.Signature)
	if _, err := VerifyCheckpoint(blk.Checkpoint, pub); err != nil {
		signed = false
	}
	switch {
	case !signed:
		inc.Reason, inc.What = ReasonForged, what+", and not signed by the ledger key"
	case h.Height > b.height:
		inc.Reason = ReasonOutOfOrder
	case h.Hash() != b.heads[h.Height]:
		inc.Reason, inc.What = ReasonFork, what+", with another header signed by the ledger key"
	case !b.sameEntries(blk):
		inc.Reason, inc.What = ReasonBadEntries, what+", with entries that are not the applied block's"
	default:
		inc.Reason, inc.What = ReasonDuplicate, what+": a copy of the applied block"
	}
	return inc
}

// sameEntries reports whether blk's entries are the leaves its header
// (one the book applied) covers.
func (b *Book) sameEntries(blk *Block) bool {
	h := &blk.Header
	if uint64(len(blk.Entries)) != h.TreeSize-h.FirstIndex || h.TreeSize > b.tree.Size() {
		return false
	}
	for i, raw := range blk.Entries {
		if lh, err := b.tree.LeafHash(h.FirstIndex + uint64(i)); err != nil || lh != merkle.HashLeaf(raw) {
			return false
		}
	}
	return true
}

// Release is a group of entries the writer appends together, split into
// blocks of at most MaxPerBlock entries.
type Release struct {
	Entries     []Entry
	TimestampMs int64
	Clock       Clock
}

// Appended is one entry as the writer appended it. Entry points into the
// release's Entries (not a copy): it is what was appended as long as the
// caller leaves those unchanged.
type Appended struct {
	Entry     *Entry
	Raw       []byte
	LeafIndex uint64
	Block     *Block
}

// ErrUnusable marks an Append that failed after it had changed the book
// (a signing error, which NewSigner's checks rule out): the book holds
// entries no block publishes and must be dropped; the writer rebuilds it
// from the published blocks.
var ErrUnusable = errors.New("ledger: book unusable after a failed append")

// Append appends the release's entries in order as blocks of at most
// maxPerBlock entries, signed by s, and returns the blocks and the
// appended entries. Entries whose credit or request id the book already
// holds (or that repeat within the release) are skipped and reported in
// skipped. A release whose entries are all skipped makes no block.
//
// An error that does not match ErrUnusable (an invalid entry, matching
// ErrEntry; a bad argument) changed nothing. One matching ErrUnusable came
// after the book changed: the book must not be used again, and every later
// Append returns it.
func (b *Book) Append(rel Release, maxPerBlock int, s BlockSigner) (blocks []*Block, out []Appended, skipped []Entry, err error) {
	if b.unusable != nil {
		return nil, nil, nil, b.unusable
	}
	if maxPerBlock < 1 {
		return nil, nil, nil, fmt.Errorf("max entries per block %d, want >= 1", maxPerBlock)
	}
	if b.origin != "" && s.Origin() != b.origin {
		return nil, nil, nil, fmt.Errorf("signer origin %q, book origin %q", s.Origin(), b.origin)
	}
	// A bad entry changes nothing. Two independent passes over the
	// release: encoding with validation and the leaf hashes, by chunks on
	// up to two goroutines (appendPlan), and here the filter through the
	// idempotency sets, in order. Each id goes into the sets as it is
	// filtered, with the leaf it will have (a repeat within the release is
	// found there); if any entry is invalid, they come out again. Entries
	// are kept by index (no copies).
	first := b.tree.Size()
	plan := newAppendPlan(rel.Entries)
	plan.start()
	if len(rel.Entries) > 0 && rel.Entries[0].Kind == KindCredit {
		// A release of credits: one table growth at most.
		b.credits.grow(len(rel.Entries))
		b.credits.reserve(len(rel.Entries))
		b.camp.init()
		b.camp.first.grow(len(rel.Entries))
	}
	todo := make([]int32, 0, len(rel.Entries))
	undo := func() {
		for j := len(todo) - 1; j >= 0; j-- {
			b.removeID(&rel.Entries[todo[j]])
		}
	}
	var rescored map[string]int64
	badAt, badErr := len(rel.Entries), error(nil)
	for i := range rel.Entries {
		e := &rel.Entries[i]
		if len(e.ID) > maxField {
			badAt = i // its encoding fails (checkStrings)
			break
		}
		if !b.addID(e, first+uint64(len(todo))) {
			skipped = append(skipped, *e)
			continue
		}
		todo = append(todo, int32(i))
		if e.Kind == KindRescore {
			if rescored == nil {
				rescored = map[string]int64{}
			}
			if err := b.checkRescore(e, rescored, first); err != nil {
				badAt, badErr = i, fmt.Errorf("%w: %w", ErrEntry, err)
				break
			}
		}
	}
	// The tree is appended to as the leaf hashes come (the caller encodes
	// chunks itself while it waits), before the release is known to be
	// valid: an invalid entry truncates it again. The root at each
	// block's end is kept for the block's header.
	var roots []merkle.Hash
	if badAt == len(rel.Entries) {
		b.tree.Grow(len(todo))
		b.tree.KeepRecent() // the release's inner nodes, for its blocks' proofs (the stage's entries records)
		roots = make([]merkle.Hash, 0, (len(todo)+maxPerBlock-1)/maxPerBlock)
		for k, i := range todo {
			if !plan.wait(int(i)) {
				break // an invalid entry: found below
			}
			b.tree.AppendHash(plan.leaves[i])
			if (k+1)%maxPerBlock == 0 || k == len(todo)-1 {
				roots = append(roots, b.tree.Root())
			}
		}
	}
	plan.help()
	if at, err := plan.firstErr(); err != nil && at <= badAt {
		badAt, badErr = at, err
	}
	if badAt < len(rel.Entries) {
		if err := b.tree.Truncate(first); err != nil {
			return nil, nil, nil, b.fail(err)
		}
		undo()
		if badErr == nil { // unreachable: an over-long id fails its encoding
			badErr = fmt.Errorf("%s: id longer than %d bytes: %w", rel.Entries[badAt].Kind, maxField, ErrEntry)
		}
		return nil, nil, nil, badErr
	}
	// The entries' effects beside their ids (campaigns, points of
	// adjustments and rescores: record) and the blocks touch disjoint
	// state: they run side by side.
	recorded := plan.run(func() {
		for k, i := range todo {
			b.record(&rel.Entries[i], first+uint64(k))
		}
	})
	defer recorded()
	out = make([]Appended, 0, len(todo))
	for start := 0; start < len(todo); start += maxPerBlock {
		chunk := todo[start:min(start+maxPerBlock, len(todo))]
		blk := &Block{Entries: make([][]byte, 0, len(chunk))}
		bfirst := first + uint64(start)
		for k, i := range chunk {
			raw := plan.raws[i]
			blk.Entries = append(blk.Entries, raw)
			out = append(out, Appended{Entry: &rel.Entries[i], Raw: raw, LeafIndex: bfirst + uint64(k), Block: blk})
		}
		size := bfirst + uint64(len(chunk))
		blk.Header = Header{
			Height: b.height, PrevHash: b.last, TreeSize: size, Root: roots[start/maxPerBlock],
			FirstIndex: bfirst, LastIndex: size - 1, TimestampMs: rel.TimestampMs, Clock: rel.Clock,
		}
		if blk.Signature, blk.Checkpoint, err = s.Sign(&blk.Header); err != nil {
			return nil, nil, nil, b.fail(err)
		}
		if len(b.recent) == maxRecent {
			b.baseHead, b.baseCP = b.recent[0].Header, b.recent[0].Checkpoint
			b.recent = append(b.recent[:0], b.recent[1:]...)
		} else if len(b.recent) == 0 {
			b.baseHead, b.baseCP = b.lastHead, b.lastCP
		}
		b.recent = append(b.recent, blk)
		b.last = blk.Header.Hash()
		b.heads = append(b.heads, b.last)
		b.lastHead = blk.Header
		b.lastCP = blk.Checkpoint
		b.origin = s.Origin()
		b.height++
		blocks = append(blocks, blk)
	}
	return blocks, out, skipped, nil
}

// fail marks the book unusable after an Append that changed it failed.
func (b *Book) fail(err error) error {
	b.unusable = fmt.Errorf("%w: %w", ErrUnusable, err)
	return b.unusable
}

// ErrUndo is returned when Undo cannot reach the asked height.
var ErrUndo = errors.New("ledger: cannot undo to that height")

// Undo takes back the blocks after height-1 (so that Height() == height),
// if Append made them recently: the tree is truncated and their ids leave
// the idempotency sets. The caller checks the result against the published
// book (the head's hash) before trusting it. An unusable book (ErrUnusable)
// cannot be undone.
func (b *Book) Undo(height uint64) error {
	if b.unusable != nil {
		return b.unusable
	}
	if height > b.height || b.height-height > uint64(len(b.recent)) {
		return fmt.Errorf("undo to height %d from %d with %d recent blocks: %w", height, b.height, len(b.recent), ErrUndo)
	}
	for b.height > height {
		blk := b.recent[len(b.recent)-1]
		for i := len(blk.Entries) - 1; i >= 0; i-- {
			e, err := DecodeEntry(blk.Entries[i])
			if err != nil {
				return fmt.Errorf("undo block %d: %w", blk.Header.Height, err)
			}
			b.camp.undo(&e, blk.Header.FirstIndex+uint64(i))
			b.removeID(&e)
			if e.Kind == KindAdjustment && e.Ref != "" || e.Kind == KindRescore {
				if r := b.credits.find(e.Ref); r != nil {
					r.points -= e.Amount
				}
			}
		}
		if err := b.tree.Truncate(blk.Header.FirstIndex); err != nil {
			return err
		}
		b.recent = b.recent[:len(b.recent)-1]
		b.height--
		b.heads = b.heads[:b.height]
		b.last = blk.Header.PrevHash
		if n := len(b.recent); n > 0 {
			b.lastHead, b.lastCP = b.recent[n-1].Header, b.recent[n-1].Checkpoint
		} else {
			b.lastHead, b.lastCP = b.baseHead, b.baseCP
		}
	}
	return nil
}
