package ledger

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"

	"github.com/minecart/minecart/services/ledger/merkle"
)

// Reason says why a record of the book (the blocks topic, an export file)
// does not extend the verified book. Every reader skips such a record and
// reports it with its reason (docs/ledger.md, "A bad block"); the values
// are stable: metrics, logs and dead letters carry them.
type Reason string

const (
	// ReasonUndecodable: the record is not a block (its bytes do not
	// decode as a LedgerBlock, or a field does not parse).
	ReasonUndecodable Reason = "undecodable"
	// ReasonDuplicate: a copy of a block the book already applied (same
	// header, signature, checkpoint and entries). Benign.
	ReasonDuplicate Reason = "duplicate"
	// ReasonForged: the header signature or the checkpoint is not the
	// ledger key's.
	ReasonForged Reason = "forged"
	// ReasonOutOfOrder: signed by the key, but for a height past the next
	// one.
	ReasonOutOfOrder Reason = "out_of_order"
	// ReasonFork: signed by the key, but another header than the one the
	// book applied at that height, or not linked to the book's last
	// header.
	ReasonFork Reason = "fork"
	// ReasonBadEntries: a signed header whose entries are not the ones it
	// covers: they do not decode, their count disagrees with its indexes,
	// they do not hash to its root, or they credit a vehicle-day (or apply
	// a request) the book already holds.
	ReasonBadEntries Reason = "bad_entries"
	// ReasonInvalid: a signed block at the next height that breaks another
	// rule of the book (first index, credit timestamps going back, a
	// checkpoint of another log or tree head).
	ReasonInvalid Reason = "invalid"
)

// BadBlocksMetric and BadBlocksHelp name the counter every reader of the
// blocks topic counts skipped records on, with labels "reader" and
// "reason", so that readers in one process share it.
const (
	BadBlocksMetric = "minecart_ledger_bad_blocks_total"
	BadBlocksHelp   = "Records of the blocks topic skipped because they do not extend the verified book, by reader and reason (docs/ledger.md, A bad block)."
)

// Reasons lists every Reason, for metrics that show a zero per reason.
var Reasons = []Reason{ReasonUndecodable, ReasonDuplicate, ReasonForged, ReasonOutOfOrder, ReasonFork, ReasonBadEntries, ReasonInvalid}

// Record is one record of a BlockSource: where it is, and the block it
// holds or why it holds none.
type Record struct {
	// Offset is the record's offset in the blocks topic, or the block's
	// position (0, 1, ...) in an export file.
	Offset int64
	// Block is the decoded block; nil when the record does not decode.
	Block *Block
	// Err says why the record does not decode (Block is nil).
	Err error
	// Key and Value are the record as stored (the Kafka key and value),
	// for whoever reports a bad one (a dead letter keeps them); nil when
	// the source does not keep them (an export file).
	Key, Value []byte
}

// BadRecord is a record that does not extend the verified book: readers
// skip it and report it.
type BadRecord struct {
	Offset int64
	// Height is the height the block claims, -1 for a record that does
	// not decode.
	Height int64
	Reason Reason
	// Err is the *Inconsistency saying what is wrong.
	Err error
}

func (r *BadRecord) Error() string {
	if r.Height < 0 {
		return fmt.Sprintf("offset %d: %s: %v", r.Offset, r.Reason, r.Err)
	}
	return fmt.Sprintf("offset %d (height %d): %s: %v", r.Offset, r.Height, r.Reason, r.Err)
}

func (r *BadRecord) Unwrap() error { return r.Err }

// ApplyRecord applies rec's block if it extends the book (Apply). If it
// does not, the book is unchanged and ApplyRecord returns the *BadRecord
// saying why: the reader skips it and goes on with the next record.
func (b *Book) ApplyRecord(rec Record, pub ed25519.PublicKey) *BadRecord {
	if rec.Block == nil {
		err := rec.Err
		if err == nil {
			err = errors.New("no block")
		}
		return &BadRecord{Offset: rec.Offset, Height: -1, Reason: ReasonUndecodable,
			Err: &Inconsistency{Reason: ReasonUndecodable, Block: b.height, Entry: -1, What: "record does not decode as a block: " + err.Error()}}
	}
	err := b.Apply(rec.Block, pub)
	if err == nil {
		return nil
	}
	reason := ReasonInvalid
	var inc *Inconsistency
	if errors.As(err, &inc) && inc.Reason != "" {
		reason = inc.Reason
	}
	return &BadRecord{Offset: rec.Offset, Height: int64(rec.Block.Header.Height), Reason: reason, Err: err}
}

// HeaderHash is the hash of the applied header at height.
func (b *Book) HeaderHash(height uint64) (merkle.Hash, bool) {
	if height >= uint64(len(b.heads)) {
		return merkle.Hash{}, false
	}
	return b.heads[height], true
}

// MaxListedBadRecords is how many bad records BadRecords lists; it counts
// them all.
const MaxListedBadRecords = 1000

// BadRecords is Verify's error when records of the book do not extend it:
// the book verified without them (the Summary describes it), and each is
// named here (the first MaxListedBadRecords; Count is all of them).
type BadRecords struct {
	Count    uint64
	ByReason map[Reason]uint64
	Listed   []*BadRecord
}

func (e *BadRecords) add(r *BadRecord) {
	e.Count++
	if e.ByReason == nil {
		e.ByReason = make(map[Reason]uint64)
	}
	e.ByReason[r.Reason]++
	if len(e.Listed) < MaxListedBadRecords {
		e.Listed = append(e.Listed, r)
	}
}

func (e *BadRecords) Error() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d records do not extend the verified book (skipped):", e.Count)
	for i, r := range e.Listed {
		if i == 10 {
			fmt.Fprintf(&sb, "; and %d more", e.Count-10)
			break
		}
		if i > 0 {
			sb.WriteString(";")
		}
		sb.WriteString(" " + r.Error())
	}
	return sb.String()
}

// Unwrap returns the listed records, so errors.As finds the first
// *BadRecord and its *Inconsistency.
func (e *BadRecords) Unwrap() []error {
	out := make([]error, len(e.Listed))
	for i, r := range e.Listed {
		out[i] = r
	}
	return out
}
