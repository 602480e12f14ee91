package ledger

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/minecart/minecart/services/ledger/merkle"
)

// appendPlan is the part of Book.Append that does not depend on the book:
// each entry of a release encoded (with its validation) and leaf-hashed.
// The entries are split into chunks of planChunk; the calling goroutine
// and, for a release of at least planParallel entries when the process
// may run on more than one core, one more goroutine take chunks in turn,
// so that the encoding runs beside the filter through the idempotency
// sets (which must run in order, on the caller). The results are the
// same whichever goroutine encoded a chunk: raws[i] and leaves[i] belong
// to entry i, and the first invalid entry (the lowest index) is the one
// reported.
type appendPlan struct {
	entries  []Entry
	raws     [][]byte
	leaves   []merkle.Hash
	errs     []planErr // by chunk: the chunk's first invalid entry
	next     atomic.Int64
	wg       sync.WaitGroup
	parallel bool
}

type planErr struct {
	at  int
	err error
}

const (
	// planChunk entries are encoded into the same buffers (~128 KiB).
	planChunk = 512
	// planParallel is the smallest release encoded on two goroutines: a
	// smaller one costs less than handing it over.
	planParallel = 2048
)

func newAppendPlan(entries []Entry) *appendPlan {
	n := len(entries)
	return &appendPlan{
		entries:  entries,
		raws:     make([][]byte, n),
		leaves:   make([]merkle.Hash, n),
		errs:     make([]planErr, (n+planChunk-1)/planChunk),
		parallel: n >= planParallel && runtime.GOMAXPROCS(0) > 1,
	}
}

// start sets the second goroutine to work, if the plan has one.
func (p *appendPlan) start() {
	if p.parallel {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.work()
		}()
	}
}

// help encodes the chunks left, on the caller, and waits until every
// chunk is done.
func (p *appendPlan) help() {
	p.work()
	p.wg.Wait()
}

func (p *appendPlan) work() {
	for {
		c := int(p.next.Add(1) - 1)
		if c >= len(p.errs) {
			return
		}
		p.chunk(c)
	}
}

// chunk encodes and hashes chunk c. The encodings share buffers of 64
// KiB (one allocation per ~250 entries instead of one per entry); each
// raw is capped at its own length, so nothing appended to it can reach
// its neighbour.
func (p *appendPlan) chunk(c int) {
	var arena []byte
	for i := c * planChunk; i < min((c+1)*planChunk, len(p.entries)); i++ {
		if cap(arena)-len(arena) < 1024 {
			arena = make([]byte, 0, 64<<10)
		}
		at := len(arena)
		var err error
		if arena, err = p.entries[i].AppendEncode(arena); err != nil {
			p.errs[c] = planErr{i, err}
			return
		}
		raw := arena[at:len(arena):len(arena)]
		p.raws[i] = raw
		p.leaves[i] = merkle.HashLeaf(raw)
	}
}

// firstErr is the first invalid entry and its error (after help).
func (p *appendPlan) firstErr() (int, error) {
	for _, e := range p.errs {
		if e.err != nil {
			return e.at, e.err
		}
	}
	return len(p.entries), nil
}

// run runs f beside the caller if the plan is parallel (inline if not)
// and returns the function that waits for it.
func (p *appendPlan) run(f func()) (wait func()) {
	if !p.parallel {
		f()
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	return func() { <-done }
}
