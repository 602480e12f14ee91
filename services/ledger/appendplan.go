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
	errs     []planErr       // by chunk: the chunk's first invalid entry
	done     []chan struct{} // by chunk: closed when it is encoded
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
	p := &appendPlan{
		entries:  entries,
		raws:     make([][]byte, n),
		leaves:   make([]merkle.Hash, n),
		errs:     make([]planErr, (n+planChunk-1)/planChunk),
		done:     make([]chan struct{}, (n+planChunk-1)/planChunk),
		parallel: n >= planParallel && runtime.GOMAXPROCS(0) > 1,
	}
	for c := range p.done {
		p.done[c] = make(chan struct{})
	}
	return p
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
	for p.one() {
	}
}

// one encodes the next chunk nobody has taken; it reports false if there
// was none.
func (p *appendPlan) one() bool {
	c := int(p.next.Add(1) - 1)
	if c >= len(p.errs) {
		return false
	}
	p.chunk(c)
	close(p.done[c])
	return true
}

// wait returns when entry i's chunk is encoded, encoding chunks nobody has
// taken meanwhile, and reports whether entry i is valid and so has its
// raw and leaf hash.
func (p *appendPlan) wait(i int) bool {
	c := i / planChunk
	for {
		select {
		case <-p.done[c]:
			e := p.errs[c]
			return e.err == nil || i < e.at
		default:
		}
		if !p.one() {
			<-p.done[c]
		}
	}
}

// chunk encodes and hashes chunk c. The encodings share buffers (one
// allocation per up to 64 KiB of entries instead of one per entry), each
// sized for the rest of the chunk at the last entry's size, so that a
// chunk leaves little unused behind its last entry; each raw is capped at
// its own length, so nothing appended to it can reach its neighbour.
func (p *appendPlan) chunk(c int) {
	var arena []byte
	last := 256
	hi := min((c+1)*planChunk, len(p.entries))
	for i := c * planChunk; i < hi; i++ {
		if cap(arena)-len(arena) < last+last/4 {
			arena = make([]byte, 0, min(64<<10, max(1024, (hi-i)*(last+last/8))))
		}
		at := len(arena)
		var err error
		if arena, err = p.entries[i].AppendEncode(arena); err != nil {
			p.errs[c] = planErr{i, err}
			return
		}
		raw := arena[at:len(arena):len(arena)]
		last = len(raw)
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
