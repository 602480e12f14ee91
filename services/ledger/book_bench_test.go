package ledger_test

import (
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
	"github.com/minecart/minecart/services/ledger/merkle"
)

// BenchmarkBookAppend is the book's part of ledger_append without Kafka:
// Book.Append of 100,000 credits in one release (id checks, leaf hashes,
// the tree, blocks of 1,000 signed with Ed25519 and their checkpoints)
// against a bare RFC 6962 append of the same leaves, in the same
// iteration; the fastest of each over b.N iterations (a shared machine)
// gives the ratio. Each iteration also appends the release with
// GOMAXPROCS 1 (Append then runs on one goroutine): the paired medians
// compare both with the bare append of the same iteration. Profile it
// with -cpuprofile / -memprofile.
func BenchmarkBookAppend(b *testing.B) {
	const n = 100_000
	entries := make([]ledger.Entry, n)
	raws := make([][]byte, n)
	for i := range entries {
		e, err := ledger.CreditFromScore(ledgertest.Score(fmt.Sprintf("veh-%07d", i), 1+i%10, int64(10+i%50)))
		if err != nil {
			b.Fatal(err)
		}
		entries[i] = e
		if raws[i], err = e.Encode(); err != nil {
			b.Fatal(err)
		}
	}
	signer, err := ledger.NewSigner("minecart/ledger", ledgertest.Key(1))
	if err != nil {
		b.Fatal(err)
	}
	var book, bare, seq time.Duration
	var ratios, seqRatios []float64
	best := func(d *time.Duration, v time.Duration) {
		if *d == 0 || v < *d {
			*d = v
		}
	}
	appendBook := func() (time.Duration, *ledger.Book) {
		bk := ledger.NewBook()
		t0 := time.Now()
		if _, _, _, err := bk.Append(ledger.Release{Entries: entries, TimestampMs: 2 * ledgertest.DayMs}, 1000, signer); err != nil {
			b.Fatal(err)
		}
		return time.Since(t0), bk
	}
	for b.Loop() {
		var tr merkle.Tree
		tr.Reserve(n)
		t0 := time.Now()
		for _, raw := range raws {
			tr.Append(raw)
		}
		dBare := time.Since(t0)
		best(&bare, dBare)
		dBook, bk := appendBook()
		best(&book, dBook)
		if bk.Tree().Root() != tr.Root() {
			b.Fatal("book and bare tree disagree")
		}
		// The same append on one core (Append's second goroutine off),
		// in the same iteration: what the second core gives.
		procs := runtime.GOMAXPROCS(1)
		dSeq, _ := appendBook()
		runtime.GOMAXPROCS(procs)
		best(&seq, dSeq)
		ratios = append(ratios, dBare.Seconds()/dBook.Seconds())
		seqRatios = append(seqRatios, dBare.Seconds()/dSeq.Seconds())
	}
	b.ReportMetric(n/book.Seconds(), "book-entries/s")
	b.ReportMetric(n/bare.Seconds(), "rfc6962-append/s")
	b.ReportMetric(bare.Seconds()/book.Seconds(), "ratio")
	b.ReportMetric(n/seq.Seconds(), "book-1core-entries/s")
	// Paired: the bare append and the book in the same iteration, the
	// median over the iterations (less at the mercy of one lucky run).
	b.ReportMetric(median(ratios), "ratio-paired-median")
	b.ReportMetric(median(seqRatios), "ratio-1core-paired-median")
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
