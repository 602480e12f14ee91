package stage

import (
	"fmt"
	"runtime"

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
// share buffers of 256 KiB: each is a sub-slice, capped.
func (e *recordEncoder) encode(p *Processor, tree *merkle.Tree, appended []ledger.Appended, out []entryOut) error {
	buf := make([]byte, 0, 2048)
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
			buf = make([]byte, 0, 256<<10)
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
