package stage

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
	"github.com/minecart/minecart/services/ledger/merkle"
)

// TestEncodeEntriesTwoCores: the entries topic records of a release large
// enough to be encoded on two goroutines are the records of the same
// release encoded on one core (GOMAXPROCS 1), byte for byte and in order,
// and each record's proof proves its entry in the tree of its block.
func TestEncodeEntriesTwoCores(t *testing.T) {
	var entries []ledger.Entry
	for i := range 3500 {
		e, err := ledger.CreditFromScore(ledgertest.Score(fmt.Sprintf("veh-%05d", i), 1, int64(10+i%50)))
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
	}
	run := func(procs int) [][2][]byte {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		p, err := NewProcessor(context.Background(), Config{Key: ledgertest.Key(1), Origin: "minecart/ledger", Serde: schemas.SingleObject(), Blocks: ledgertest.Blocks(nil), Logger: kafkatest.Logger()})
		if err != nil {
			t.Fatal(err)
		}
		var out collect
		if err := p.release(entries, 2*ledgertest.DayMs, &out); err != nil {
			t.Fatal(err)
		}
		var recs [][2][]byte
		for _, r := range out.recs {
			recs = append(recs, [2][]byte{[]byte(r.Topic), r.Value})
		}
		return recs
	}
	one, two := run(1), run(2)
	if len(one) != len(two) || len(two) < len(entries) {
		t.Fatalf("%d records on one core, %d on two, for %d entries", len(one), len(two), len(entries))
	}
	serde := schemas.SingleObject()
	n := 0
	for i := range two {
		if !bytes.Equal(one[i][0], two[i][0]) || !bytes.Equal(one[i][1], two[i][1]) {
			t.Fatalf("record %d differs between one and two cores", i)
		}
		var r avro.LedgerEntry
		if string(two[i][0]) != pipelines.TopicLedgerEntries {
			continue
		}
		if err := serde.Unmarshal(two[i][1], &r); err != nil {
			t.Fatal(err)
		}
		proof := make([]merkle.Hash, len(r.Proof))
		for j := range r.Proof {
			copy(proof[j][:], r.Proof[j])
		}
		if err := merkle.VerifyInclusion(uint64(r.LeafIndex), uint64(r.TreeSize), merkle.HashLeaf(r.Entry), proof, merkle.Hash(r.Root)); err != nil || r.LeafIndex != int64(n) {
			t.Fatalf("entry record %d (leaf %d): %v", n, r.LeafIndex, err)
		}
		n++
	}
	if n != len(entries) {
		t.Fatalf("%d entry records, want %d", n, len(entries))
	}
}

// TestRecordBufsReuse: a processor writes its entries and blocks records
// into buffers it reuses only after Committed. Two processors append the
// same three days; one is told of a commit after each day, the other
// never. Their records are the same bytes, day by day; the first day's
// records of the processor never told stay as emitted through the later
// days (no reuse without a commit), and those of the committing one are
// overwritten by the later days (its memory is reused).
func TestRecordBufsReuse(t *testing.T) {
	days := make([][]ledger.Entry, 3)
	for d := range days {
		for i := range 2500 {
			e, err := ledger.CreditFromScore(ledgertest.Score(fmt.Sprintf("veh-%05d", i), d+1, int64(10+(i+d)%50)))
			if err != nil {
				t.Fatal(err)
			}
			days[d] = append(days[d], e)
		}
	}
	newProc := func() *Processor {
		p, err := NewProcessor(context.Background(), Config{Key: ledgertest.Key(1), Origin: "minecart/ledger", Serde: schemas.SingleObject(), Blocks: ledgertest.Blocks(nil), Logger: kafkatest.Logger()})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	committing, never := newProc(), newProc()
	var _ pipelines.Committer = committing
	var firstC, firstN [][]byte // the first day's values as emitted (the processors' memory)
	var copyC, copyN [][]byte   // and their copies
	for d, entries := range days {
		var outC, outN collect
		if err := committing.release(entries, int64(d+2)*ledgertest.DayMs, &outC); err != nil {
			t.Fatal(err)
		}
		if err := never.release(entries, int64(d+2)*ledgertest.DayMs, &outN); err != nil {
			t.Fatal(err)
		}
		if len(outC.recs) != len(outN.recs) || len(outC.recs) <= len(entries) {
			t.Fatalf("day %d: %d and %d records for %d entries", d, len(outC.recs), len(outN.recs), len(entries))
		}
		for i := range outC.recs {
			c, n := outC.recs[i], outN.recs[i]
			if c.Topic != n.Topic || !bytes.Equal(c.Key, n.Key) || !bytes.Equal(c.Value, n.Value) {
				t.Fatalf("day %d record %d (%s) differs between the processors", d, i, c.Topic)
			}
			if d == 0 {
				firstC, firstN = append(firstC, c.Value), append(firstN, n.Value)
				copyC, copyN = append(copyC, bytes.Clone(c.Value)), append(copyN, bytes.Clone(n.Value))
			}
		}
		committing.Committed()
	}
	overwritten := 0
	for i := range firstN {
		if !bytes.Equal(firstN[i], copyN[i]) {
			t.Fatalf("record %d of the first day changed without a commit", i)
		}
		if !bytes.Equal(firstC[i], copyC[i]) {
			overwritten++
		}
	}
	if overwritten < len(firstC)/2 {
		t.Fatalf("%d of the first day's %d records overwritten after commits: their memory was not reused", overwritten, len(firstC))
	}
}
