package ledger_test

import (
	"fmt"
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
// gives the ratio. Profile it with -cpuprofile / -memprofile.
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
	var book, bare time.Duration
	best := func(d *time.Duration, v time.Duration) {
		if *d == 0 || v < *d {
			*d = v
		}
	}
	for b.Loop() {
		var tr merkle.Tree
		tr.Reserve(n)
		t0 := time.Now()
		for _, raw := range raws {
			tr.Append(raw)
		}
		best(&bare, time.Since(t0))
		bk := ledger.NewBook()
		t0 = time.Now()
		if _, _, _, err := bk.Append(ledger.Release{Entries: entries, TimestampMs: 2 * ledgertest.DayMs}, 1000, signer); err != nil {
			b.Fatal(err)
		}
		best(&book, time.Since(t0))
		if bk.Tree().Root() != tr.Root() {
			b.Fatal("book and bare tree disagree")
		}
	}
	b.ReportMetric(n/book.Seconds(), "book-entries/s")
	b.ReportMetric(n/bare.Seconds(), "rfc6962-append/s")
	b.ReportMetric(bare.Seconds()/book.Seconds(), "ratio")
}
