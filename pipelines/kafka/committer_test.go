package kafka_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
)

// recycler emits every input value from a buffer of its own and reuses
// its buffers once Committed says the producer is done with them, after
// scribbling over them: a record produced after its transaction's
// Committed would carry the scribble. Its first processor fails one
// record (a transient error: the batch aborts and the processor is
// closed), so the run has an aborted transaction too.
type recycler struct {
	out      string
	inFlight [][]byte // given out since the last commit
	free     [][]byte
	closed   bool
	stats    *recyclerStats
}

type recyclerStats struct {
	mu        sync.Mutex
	committed int // Committed calls
	reused    int // buffers taken from the free list
	afterEnd  int // Committed calls on a closed processor
	failOnce  atomic.Bool
}

func (p *recycler) Process(_ context.Context, rec pipelines.Record, out pipelines.Emitter) error {
	if bytes.Equal(rec.Value, []byte("v250")) && p.stats.failOnce.CompareAndSwap(false, true) {
		return errors.New("transient")
	}
	var buf []byte
	if n := len(p.free); n > 0 {
		buf, p.free = p.free[n-1][:0], p.free[:n-1]
		p.stats.mu.Lock()
		p.stats.reused++
		p.stats.mu.Unlock()
	} else {
		buf = make([]byte, 0, 64)
	}
	buf = append(buf, bytes.ToUpper(rec.Value)...)
	p.inFlight = append(p.inFlight, buf)
	out.Emit(p.out, rec.Key, buf)
	return nil
}

func (p *recycler) Committed() {
	p.stats.mu.Lock()
	p.stats.committed++
	if p.closed {
		p.stats.afterEnd++
	}
	p.stats.mu.Unlock()
	for _, b := range p.inFlight {
		copy(b[:cap(b)], bytes.Repeat([]byte("X"), cap(b)))
		p.free = append(p.free, b)
	}
	p.inFlight = p.inFlight[:0]
}

func (p *recycler) Close() error {
	p.closed = true
	return nil
}

// TestCommitterReuse: the runtime calls Committed after each commit, so a
// processor that overwrites its output's memory then and reuses it never
// produces overwritten bytes (every output is its input upper-cased,
// exactly once, read committed), and it does reuse memory. Committed is
// not called for the aborted transaction's closed processor.
func TestCommitterReuse(t *testing.T) {
	const n = 2000
	brokers := kafkatest.Broker(t,
		pipelines.TopicSpec{Name: "cm.in", Partitions: 1},
		pipelines.TopicSpec{Name: "cm.out", Partitions: 1})
	stats := &recyclerStats{}
	cfg := kafkatest.Config(brokers)
	cfg.MaxBatch = 50
	kafkatest.Run(t, cfg, pipelines.Stage{
		Name:   "cm",
		Inputs: []string{"cm.in"},
		NewProcessor: func(context.Context, pipelines.Task) (pipelines.Processor, error) {
			return &recycler{out: "cm.out", stats: stats}, nil
		},
	})
	kafkatest.ProduceN(t, brokers, "cm.in", n, gen)
	recs := kafkatest.WaitRecords(t, brokers, "cm.out", n, 60*time.Second)
	for _, r := range recs {
		if bytes.Contains(r.Value, []byte("X")) {
			t.Fatalf("output %q was overwritten before the producer had finished with it", r.Value)
		}
	}
	checkExactlyOnce(t, recs, n)
	stats.mu.Lock()
	defer stats.mu.Unlock()
	if !stats.failOnce.Load() {
		t.Fatal("no aborted transaction: the failing record was never processed")
	}
	if stats.committed == 0 || stats.reused == 0 {
		t.Fatalf("Committed called %d times, %d buffers reused: the runtime never said the producer was done", stats.committed, stats.reused)
	}
	if stats.afterEnd != 0 {
		t.Fatalf("Committed called %d times on a closed processor", stats.afterEnd)
	}
}
