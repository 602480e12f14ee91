package stage

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/merkle"
)

// recordEncoder makes the entries topic records of a run of appended
// entries: its own proof storage and record, so that two can run side by
// side over one release.
type recordEncoder struct {
	rec    avro.LedgerEntry // the record, reused (encoded before the next)
	proofs merkle.Proofs    // a block's inclusion proofs, storage reused (encoded before the next block's)
	buf    []byte           // the recordBufs buffer being filled, in the open transaction (nil after Committed)
}

// recordBufSize is the size of the buffers the entries topic records
// (about 1,000 of ~1 KB) and the blocks' records (about 4 blocks of
// 1,000 credits) are written into.
const recordBufSize = 1 << 20

// maxRecordBufs bounds the buffers recordBufs tracks (free, and given out
// since the last commit): 192 of recordBufSize, the records of about
// 150,000 entries with their blocks, more than a transaction carries
// (MaxReleaseEntries per release). A buffer past the bound is given out
// untracked and left to the collector, so a processor whose runtime never
// calls Committed holds at most that much.
const maxRecordBufs = 192

// recordBufs hands out the buffers of the entries topic records and of
// the blocks' records, and takes them back when the transaction that
// carried the records has committed (Processor.Committed, called by the
// runtime: the producer has then finished with them). Reused memory
// instead of fresh memory per release: fresh memory is paid for in page
// faults (the kernel zeroes each page on first touch) and in collections
// (a day's release of 100,000 credits is ~125 MB of records). Both
// encoders of encodeEntries take buffers at once: mu.
type recordBufs struct {
	mu       sync.Mutex
	free     [][]byte // committed: free to overwrite
	inFlight [][]byte // given out since the last commit
}

// get returns an empty buffer of at least n bytes (recordBufSize unless n
// is larger), reused if a free one is large enough.
func (b *recordBufs) get(n int) []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	var buf []byte
	for i := len(b.free) - 1; i >= 0; i-- {
		if cap(b.free[i]) >= n {
			buf = b.free[i][:0]
			last := len(b.free) - 1
			b.free[i], b.free[last] = b.free[last], nil
			b.free = b.free[:last]
			break
		}
	}
	if buf == nil {
		buf = make([]byte, 0, max(n, recordBufSize))
	}
	if len(b.inFlight)+len(b.free) < maxRecordBufs {
		b.inFlight = append(b.inFlight, buf)
	}
	return buf
}

// committed makes the buffers given out since the last commit free, and
// drops the free ones the transaction did not need: what is kept between
// transactions is what the last one used.
func (b *recordBufs) committed() {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := b.free
	b.free = append(b.free[:0], b.inFlight...)
	clear(old[min(len(b.free), len(old)):])
	clear(b.inFlight)
	b.inFlight = b.inFlight[:0]
}

// Committed (pipelines.Committer) is called by the runtime after each
// committed transaction: the entries topic records emitted in it have
// all been produced, so their buffers are reused from now on.
func (p *Processor) Committed() {
	p.bufs.committed()
	for i := range p.enc {
		p.enc[i].buf = nil
	}
}

// entryOut is one entries topic record.
type entryOut struct{ key, value []byte }

// encodeParallel is the smallest release whose entries topic records are
// made on two goroutines (the blocks of its first half and of its second).
const encodeParallel = 2048

// releaseChunk is about how many entries topic records appendAndEmit
// encodes before it releases them to the producer (rounded up to a block
// end): large enough for encodeEntries to split in two, small enough that
// a release of 50,000 credits is produced while its rest is encoded.
const releaseChunk = 2 * encodeParallel

// encodeEntries makes the entries topic record of every appended entry
// (out[i] is appended[i]'s), each with its inclusion proof in the tree
// after its block. The book's tree is only read. A release of at least
// encodeParallel entries, in a process that may use more than one core,
// is split at a block boundary near its middle and the halves are
// encoded side by side; the records are the same either way.
func (p *Processor) encodeEntries(appended []ledger.Appended) ([]entryOut, error) {
	out := make([]entryOut, len(appended))
	tree := p.book.Tree()
	split := len(appended)
	if len(appended) >= encodeParallel && runtime.GOMAXPROCS(0) > 1 {
		split = len(appended) / 2
		for split < len(appended) && appended[split].Block == appended[split-1].Block {
			split++
		}
	}
	if split == len(appended) {
		return out, p.enc[0].encode(p, tree, appended, out)
	}
	done := make(chan error, 1)
	go func() { done <- p.enc[1].encode(p, tree, appended[split:], out[split:]) }()
	err := p.enc[0].encode(p, tree, appended[:split], out[:split])
	if err1 := <-done; err == nil {
		err = err1
	}
	return out, err
}

// encode makes the records of appended into out. The keys and values
// share buffers of recordBufSize (p.bufs): each is a sub-slice, capped. A
// buffer is filled across calls until the transaction commits.
func (e *recordEncoder) encode(p *Processor, tree *merkle.Tree, appended []ledger.Appended, out []entryOut) error {
	buf := e.buf
	defer func() { e.buf = buf }()
	var proofs [][]merkle.Hash
	var proofBlock *ledger.Block
	for i := range appended {
		a := &appended[i]
		if a.Block != proofBlock {
			h := &a.Block.Header
			var err error
			if proofs, err = e.proofs.Make(tree, h.FirstIndex, h.LastIndex, h.TreeSize); err != nil {
				return err
			}
			proofBlock = a.Block
		}
		if cap(buf)-len(buf) < 2048 {
			buf = p.bufs.get(0)
		}
		start := len(buf)
		buf = append(buf, a.Entry.Key()...)
		mid := len(buf)
		var err error
		buf, err = p.cfg.Serde.AppendMarshal(buf, entryRecord(&e.rec, a, proofs[a.LeafIndex-a.Block.Header.FirstIndex]))
		if err != nil {
			return fmt.Errorf("encode entry %d: %w", a.LeafIndex, err)
		}
		out[i] = entryOut{buf[start:mid:mid], buf[mid:len(buf):len(buf)]}
	}
	return nil
}
