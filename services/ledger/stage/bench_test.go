package stage

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/internal/benchfig"
	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
	"github.com/minecart/minecart/services/ledger/merkle"
)

var backfillN = flag.Int("ledger.backfill", 1_000_000, "credits in BenchmarkBackfill")

var backfillProfile = flag.String("ledger.stageprofile", "", "BenchmarkBackfill: write a CPU profile of the stage path alone (the timed transactions) to this file")

var backfillMemProfile = flag.String("ledger.stagememprofile", "", "BenchmarkBackfill: write the allocations profile before and after the stage path to this file's .0 and .1 (compare with pprof -base)")

var backfillStream = flag.Bool("ledger.stream", true, "BenchmarkBackfill: produce what the processor releases (pipelines.Release) at once, as the runtime does in Flush; false: after the release, as before")

// collect is an Emitter that keeps what the processor emits as kgo
// records, carved from slabs of 256 as the runtime's emitter does
// (pipelines/kafka's emitter.record).
type collect struct {
	recs []*kgo.Record
	slab []kgo.Record
}

func (c *collect) record() *kgo.Record {
	if len(c.slab) == cap(c.slab) {
		c.slab = make([]kgo.Record, 0, 256)
	}
	c.slab = c.slab[:len(c.slab)+1]
	return &c.slab[len(c.slab)-1]
}

// streamed is a collect that, like the runtime during Flush, produces
// what the processor releases (pipelines.Release) at once, in the open
// transaction. It keeps every record for the baseline's copies.
type streamed struct {
	collect
	ctx  context.Context
	cl   *kgo.Client
	sent int
	mu   sync.Mutex
	err  error
}

func (s *streamed) Release() {
	for _, r := range s.recs[s.sent:] {
		s.cl.Produce(s.ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				s.mu.Lock()
				s.err = cmp.Or(s.err, err)
				s.mu.Unlock()
			}
		})
	}
	s.sent = len(s.recs)
}

func (c *collect) Emit(topic string, key, value []byte, _ ...pipelines.Header) {
	r := c.record()
	r.Topic, r.Key, r.Value = topic, key, value
	c.recs = append(c.recs, r)
}

func (c *collect) EmitTo(topic string, partition int32, key, value []byte, _ ...pipelines.Header) {
	r := c.record()
	r.Topic, r.Partition, r.Key, r.Value = topic, partition, key, value
	c.recs = append(c.recs, r)
}

// BenchmarkBackfill appends -ledger.backfill credits (default 10^6, 10 days
// of 100,000 vehicles) the way the ledger stage does when watermarks
// release them: canonical order, leaf hashing, blocks of 1,000 signed with
// Ed25519 plus a checkpoint, batched inclusion proofs, Avro encoding of
// blocks and entries, and producing them to a real broker (kfake) in Kafka
// transactions of one day each, telling the processor of each commit as
// the runtime does (pipelines.Committer). Baselines, measured in the same
// run on the same data: RATIO ledger_append is the median over the days
// of the book's append of a day against a bare RFC 6962 append of the
// same leaves, back to back; RATIO ledger_e2e is the stage path against a
// bare transactional produce of the same records, each side starting
// right after a collection. Per side it prints CPU, the collector's CPU,
// page faults and bytes allocated per entry (probe_test.go).
func BenchmarkBackfill(b *testing.B) {
	n := *backfillN
	const days = 10
	perDay := n / days
	rels := make([][]ledger.Entry, days)
	for d := range rels {
		for i := 0; i < perDay; i++ {
			e, err := ledger.CreditFromScore(ledgertest.Score(fmt.Sprintf("veh-%07d", i), d+1, int64(10+i%50)))
			if err != nil {
				b.Fatal(err)
			}
			rels[d] = append(rels[d], e)
		}
	}
	total := perDay * days
	raws := make([][]byte, 0, total)
	for _, r := range rels {
		for i := range r {
			raw, _ := r[i].Encode()
			raws = append(raws, raw)
		}
	}
	brokers := kafkatest.Broker(b)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID("ledger-bench"),
		kgo.DefaultProduceTopic(pipelines.TopicLedgerEntries), kgo.MaxBufferedRecords(1<<20))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()

	for it := 0; it < b.N; it++ {
		// Baseline: bare SHA-256 of every entry once (the leaf hashes alone).
		t0 := time.Now()
		for _, raw := range raws {
			_ = merkle.HashLeaf(raw)
		}
		shaRate := float64(total) / time.Since(t0).Seconds()

		// Baseline of ledger_append: a bare RFC 6962 append of the same
		// leaves (leaf hash plus the tree's node hashes, no signing, no
		// proofs, no encoding), before and after the book's append: the
		// faster counts (the machine is shared).
		var bareRoot merkle.Hash
		treeRun := func() float64 {
			var bareTree merkle.Tree
			bareTree.Reserve(uint64(total))
			t := time.Now()
			for _, raw := range raws {
				bareTree.Append(raw)
			}
			rate := float64(total) / time.Since(t).Seconds()
			bareRoot = bareTree.Root()
			return rate
		}
		treeBefore := treeRun()

		// Hashing and signing alone (pure Book.Append).
		signer, _ := ledger.NewSigner("minecart/ledger", ledgertest.Key(1))
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		pure := ledger.NewBook()
		// ledger_append pairs each release's book append with a bare
		// append of the same leaves onto a bare tree of the same size,
		// back to back (bare first on even days, book first on odd ones):
		// the ratio is the median of the pairs, each measured under the
		// same load, instead of one whole run against the best of two
		// others seconds away.
		var pairTree merkle.Tree
		pairTree.Reserve(uint64(total))
		pairs := make([]float64, 0, days)
		var bookDur time.Duration
		var pureCost probe
		for d, r := range rels {
			bare := func() time.Duration {
				t := time.Now()
				for _, raw := range raws[d*perDay : (d+1)*perDay] {
					pairTree.Append(raw)
				}
				return time.Since(t)
			}
			var bd time.Duration
			if d%2 == 0 {
				bd = bare()
			}
			a0, t1 := probeNow(), time.Now()
			if _, _, _, err := pure.Append(ledger.Release{Entries: r, TimestampMs: int64(d+2) * ledgertest.DayMs}, 1000, signer); err != nil {
				b.Fatal(err)
			}
			dd := time.Since(t1)
			pureCost = pureCost.plus(probeNow().since(a0))
			bookDur += dd
			if d%2 == 1 {
				bd = bare()
			}
			pairs = append(pairs, bd.Seconds()/dd.Seconds())
		}
		pureRate := float64(total) / bookDur.Seconds()
		if pairTree.Root() != pure.Tree().Root() {
			b.Fatal("paired bare tree and book disagree")
		}
		a1 := probeNow()
		treeAfter := treeRun()
		treeCost := probeNow().since(a1)
		treeRate := max(treeBefore, treeAfter)
		runtime.GC()
		runtime.ReadMemStats(&m1)
		b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/float64(total)*1e6/(1<<20), "bookMiB/M")
		// Only the pure book's root is used from here (the book is dead:
		// the collector does not mark it during the stage path and the
		// baseline).
		pureRoot := pure.Tree().Root()

		// The stage's path, into Kafka transactions.
		cfg := Config{Key: ledgertest.Key(1), Origin: "minecart/ledger", Serde: schemas.SingleObject(), Blocks: ledgertest.Blocks(nil), Logger: kafkatest.Logger()}
		p, err := NewProcessor(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		var encDur, prodDur time.Duration
		stopProfile := func() {}
		if *backfillProfile != "" {
			stopProfile = benchfig.CPUProfile(b, *backfillProfile)
		}
		var copyDur time.Duration
		var copyCost probe
		// Each side (this stage path, the bare produce below) starts
		// right after a collection, so neither inherits the other's or
		// the setup's debt: the collections in a side are those of its
		// own allocations (the heap is the same: the setup's releases and
		// the broker's data).
		runtime.GC()
		writeAllocs(b, *backfillMemProfile, ".0")
		s0 := probeNow()
		t2 := time.Now()
		out := &streamed{ctx: ctx, cl: cl}
		var em pipelines.Emitter = &out.collect
		if *backfillStream {
			em = out
		}
		copies, err := newRecordCopies(total, days)
		if err != nil {
			b.Fatal(err)
		}
		for d, r := range rels {
			out.recs, out.sent = out.recs[:0], 0
			if err := cl.BeginTransaction(); err != nil {
				b.Fatal(err)
			}
			te := time.Now()
			if err := p.release(r, int64(d+2)*ledgertest.DayMs, em); err != nil {
				b.Fatal(err)
			}
			encDur += time.Since(te) // with -ledger.stream, overlapping the produce of what it released
			tp := time.Now()
			out.Release()
			if err := cl.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			if out.err != nil {
				b.Fatal(out.err)
			}
			if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
				b.Fatal(err)
			}
			prodDur += time.Since(tp)
			// The baseline's copies of the records (the stage reuses their
			// memory once their transaction has committed), outside the
			// stage's figures: its clock, CPU and counters leave them out,
			// its profile labels them bench=copy (pprof -tagignore), and
			// they are kept off the Go heap (recordCopies), so they neither
			// start nor lengthen the stage's collections.
			c0, tc := probeNow(), time.Now()
			pprof.Do(ctx, pprof.Labels("bench", "copy"), func(context.Context) {
				if err := copies.add(d, out.recs); err != nil {
					b.Fatal(err)
				}
			})
			copyDur += time.Since(tc)
			copyCost = copyCost.plus(probeNow().since(c0))
			// As the runtime does after each commit (pipelines.Committer).
			if c, ok := any(p).(interface{ Committed() }); ok {
				c.Committed()
			}
		}
		stageDur := time.Since(t2) - copyDur
		stageCost := probeNow().since(s0).minus(copyCost)
		stageRate := float64(total) / stageDur.Seconds()
		cpuRate := float64(total) / stageCost.cpu.Seconds()
		stopProfile()
		writeAllocs(b, *backfillMemProfile, ".1")
		produced := copies.records()
		if p.Book().Tree().Root() != pureRoot {
			b.Fatal("stage path and pure book disagree")
		}
		// Rebuild as a new writer does: read and re-verify every block from
		// the blocks topic.
		t3 := time.Now()
		rebuilt, err := NewProcessor(ctx, Config{Key: ledgertest.Key(1), Origin: "minecart/ledger", Serde: schemas.SingleObject(), Blocks: blocksOn(b, brokers), Logger: kafkatest.Logger()})
		if err != nil {
			b.Fatal(err)
		}
		if rebuilt.Book().Tree().Root() != pureRoot {
			b.Fatal("rebuilt book differs")
		}
		b.ReportMetric(time.Since(t3).Seconds()/float64(total)*1e6, "s-rebuild/M")
		if bareRoot != pureRoot {
			b.Fatal("bare tree and book disagree: not the same leaves")
		}

		// Baseline of ledger_e2e: a bare transactional produce of the same
		// records (blocks and entries the stage produced) in the same
		// transactions, one per day, by a second transactional producer.
		bare, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID("ledger-bench-bare"),
			kgo.DefaultProduceTopic(pipelines.TopicLedgerEntries), kgo.MaxBufferedRecords(1<<20))
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		b0 := probeNow()
		t4 := time.Now()
		for _, recs := range produced {
			if err := bare.BeginTransaction(); err != nil {
				b.Fatal(err)
			}
			if err := bare.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				b.Fatal(err)
			}
			if err := bare.EndTransaction(ctx, kgo.TryCommit); err != nil {
				b.Fatal(err)
			}
		}
		bareTxnRate := float64(total) / time.Since(t4).Seconds()
		bareCost := probeNow().since(b0)
		bare.Close()
		if err := copies.free(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(treeRate, "rfc6962-append/s")
		b.ReportMetric(bareTxnRate, "bare-txn-produce-entries/s")
		fmt.Printf("ledger: %d credits in %d daily releases: book append (hash, tree, proofs, signing) %.0f entries/s, bare RFC 6962 append %.0f/s, bare SHA-256 %.0f/s\n",
			total, days, pureRate, treeRate, shaRate)
		fmt.Printf("ledger: stage path into Kafka transactions %.0f entries/s, bare transactional produce of the same %d records %.0f entries/s\n",
			stageRate, countRecs(produced), bareTxnRate)
		perEntry := func(what string, c probe) {
			fmt.Printf("ledger: %s per entry: CPU %.2f us (collector %.2f us, %d cycles), %.2f page faults, %.0f B allocated\n",
				what, us(c.cpu, total), us(c.gcCPU, total), c.gcs, float64(c.minflt)/float64(total), float64(c.alloc)/float64(total))
		}
		perEntry("book append (pure)", pureCost)
		perEntry("bare RFC 6962 append (second run)", treeCost)
		perEntry("stage path (broker included)", stageCost)
		perEntry("bare transactional produce (broker included)", bareCost)
		// ledger_append's wall ratio depends on how much of a second core
		// the book's append got (appendplan.go): its CPU over its wall.
		fmt.Printf("ledger: book append on %.2f cores (CPU / wall); bare append runs %.0f/s and %.0f/s (before, after); CPU ratio (bare / book) %.3f\n",
			pureCost.cpu.Seconds()*pureRate/float64(total), treeBefore, treeAfter, treeCost.cpu.Seconds()/pureCost.cpu.Seconds())
		fmt.Printf("ledger: book append / bare append per release, paired %s; whole runs (book / best bare) %.3f\n", fmtRatios(pairs), pureRate/treeRate)
		fmt.Printf("RATIO ledger_append %.3f goal 0.50\n", median(pairs))
		fmt.Printf("RATIO ledger_e2e %.3f goal 0.50\n", stageRate/bareTxnRate)
		// The same per CPU second (both sides broker included), steadier
		// than the wall ratios on a shared machine; and the book's append
		// against the bare append per CPU second, with the cores the
		// book's append got (its wall ratio follows them).
		fmt.Printf("FIGURE ledger_e2e_cpu %.3f stage_us %.2f bare_us %.2f\n", bareCost.cpu.Seconds()/stageCost.cpu.Seconds(), us(stageCost.cpu, total), us(bareCost.cpu, total))
		fmt.Printf("FIGURE ledger_append_cpu %.3f book_us %.2f bare_us %.2f book_cores %.2f\n", treeCost.cpu.Seconds()/pureCost.cpu.Seconds(), us(pureCost.cpu, total), us(treeCost.cpu, total), pureCost.cpu.Seconds()*pureRate/float64(total))
		b.ReportMetric(stageRate, "entries/s")
		b.ReportMetric(cpuRate, "entries/cpu-s")
		b.ReportMetric(pureRate, "entries/s-hash+sign")
		b.ReportMetric(shaRate, "sha256-leaves/s")
		b.ReportMetric(stageRate/shaRate, "ratio-vs-sha256")
		b.ReportMetric(float64(encDur.Nanoseconds())/float64(total), "ns/entry-append+proof+avro")
		b.ReportMetric(float64(prodDur.Nanoseconds())/float64(total), "ns/entry-kafka-txn")
		b.ReportMetric(float64(p.Book().Tree().MemoryBytes())/float64(total)*1e6/(1<<20), "treeMiB/M")
	}
}

// median is the median of xs (sorted in place).
func median(xs []float64) float64 {
	slices.Sort(xs)
	if n := len(xs); n%2 == 1 {
		return xs[n/2]
	}
	return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
}

func fmtRatios(xs []float64) string {
	var sb strings.Builder
	for i, x := range xs {
		if i > 0 {
			sb.WriteByte(' ')
		}
		fmt.Fprintf(&sb, "%.3f", x)
	}
	return sb.String()
}

// us is d per entry in microseconds.
func us(d time.Duration, n int) float64 { return float64(d.Nanoseconds()) / float64(n) / 1e3 }

// writeAllocs writes the allocations profile to name+suffix, after a
// collection (the profile counts what the last completed cycle saw);
// nothing if name is empty.
func writeAllocs(b *testing.B, name, suffix string) {
	if name == "" {
		return
	}
	runtime.GC()
	f, err := os.Create(name + suffix)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}

// recordCopies keeps copies of the records the stage produced, for the
// baseline to produce again after the stage has reused their memory:
// keys and values in memory outside the Go heap (offHeap), their index
// sized before the stage runs, so that copying allocates nothing on the
// heap while the stage runs; records is called after it.
type recordCopies struct {
	arena  []byte
	unmap  func() error
	index  []copied
	dayEnd []int // dayEnd[d]: end of day d's records in index
}

type copied struct {
	topic      string
	off        int
	keyN, valN int // -1: nil (a tombstone's value)
}

// newRecordCopies makes room for the records of total entries over days
// transactions (off-heap room of 4 KiB per entry is reserved, touched
// only as used).
func newRecordCopies(total, days int) (*recordCopies, error) {
	arena, unmap, err := offHeap(total*4096 + 64<<20)
	if err != nil {
		return nil, err
	}
	return &recordCopies{arena: arena, unmap: unmap, index: make([]copied, 0, total+total/16+1024), dayEnd: make([]int, 0, days)}, nil
}

// add copies day d's records.
func (c *recordCopies) add(d int, recs []*kgo.Record) error {
	if d != len(c.dayEnd) {
		return fmt.Errorf("day %d copied after %d days", d, len(c.dayEnd))
	}
	for _, r := range recs {
		if cap(c.arena)-len(c.arena) < len(r.Key)+len(r.Value) || len(c.index) == cap(c.index) {
			return fmt.Errorf("record copies: room for %d bytes and %d records exceeded", cap(c.arena), cap(c.index))
		}
		x := copied{topic: r.Topic, off: len(c.arena), keyN: len(r.Key), valN: len(r.Value)}
		if r.Key == nil {
			x.keyN = -1
		}
		if r.Value == nil {
			x.valN = -1
		}
		c.index = append(c.index, x)
		c.arena = append(append(c.arena, r.Key...), r.Value...)
	}
	c.dayEnd = append(c.dayEnd, len(c.index))
	return nil
}

// records are the copies as kgo records, day by day. They point into the
// copies' memory: valid until free.
func (c *recordCopies) records() [][]*kgo.Record {
	rs := make([]kgo.Record, len(c.index))
	out := make([][]*kgo.Record, len(c.dayEnd))
	start := 0
	for d, end := range c.dayEnd {
		for i := start; i < end; i++ {
			x := c.index[i]
			at := x.off
			part := func(n int) []byte {
				if n < 0 {
					return nil
				}
				at += n
				return c.arena[at-n : at : at]
			}
			k := part(x.keyN)
			rs[i] = kgo.Record{Topic: x.topic, Key: k, Value: part(x.valN)}
			out[d] = append(out[d], &rs[i])
		}
		start = end
	}
	return out
}

// free releases the copies' memory: no record of records may be used
// after.
func (c *recordCopies) free() error {
	c.arena, c.index = nil, nil
	return c.unmap()
}

func countRecs(days [][]*kgo.Record) int {
	n := 0
	for _, d := range days {
		n += len(d)
	}
	return n
}
