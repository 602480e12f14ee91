package blocks_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/blocks"
	"github.com/minecart/minecart/services/ledger/ledgertest"
)

// TestReader reads a book from a real broker: nothing from an empty topic
// (and Follow is caught up at once), then every block in order, the last
// block alone, and Follow sees the blocks and then blocks written later.
func TestReader(t *testing.T) {
	brokers := kafkatest.Broker(t)
	r, err := blocks.New(blocks.Config{Kafka: kafkatest.Config(brokers)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var n int
	if err := r.Blocks(ctx, func(ledger.Record) error { n++; return nil }); err != nil || n != 0 {
		t.Fatalf("empty topic: %d blocks, %v", n, err)
	}
	if last, err := r.LastBlock(ctx); last != nil || err != nil {
		t.Fatalf("empty topic: last block %v, %v", last, err)
	}
	caught := make(chan struct{})
	fctx, stop := context.WithCancel(ctx)
	followed := make(chan *ledger.Block, 10)
	done := make(chan error, 1)
	go func() {
		done <- r.Follow(fctx, func(b *ledger.Block) error { followed <- b; return nil }, func() { close(caught) })
	}()
	select {
	case <-caught:
	case <-ctx.Done():
		t.Fatal("Follow of an empty topic not caught up")
	}

	signer, _ := ledger.NewSigner(ledgertest.Origin, ledgertest.Key(1))
	_, book := ledgertest.SmallBook(t, signer)
	produce(t, brokers, book)
	var got []*ledger.Block
	if err := r.Blocks(ctx, func(rec ledger.Record) error { got = append(got, rec.Block); return nil }); err != nil || len(got) != len(book) {
		t.Fatalf("%d blocks, %v; want %d", len(got), err, len(book))
	}
	if _, err := ledger.Verify(ctx, r, signer.Public()); err != nil {
		t.Errorf("verify: %v", err)
	}
	last, err := r.LastBlock(ctx)
	if err != nil || last == nil || last.Header != book[len(book)-1].Header || last.Checkpoint != book[len(book)-1].Checkpoint {
		t.Errorf("last block %+v, %v", last, err)
	}
	for i := range book {
		select {
		case b := <-followed:
			if b.Header != book[i].Header {
				t.Errorf("followed block %d: %+v", i, b.Header)
			}
		case <-ctx.Done():
			t.Fatalf("Follow saw %d of %d blocks", i, len(book))
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("follow: %v", err)
	}

	// A record that is not a block is handed over with its offset, key,
	// value and why, and the read goes on.
	kafkatest.Produce(t, brokers, kafka.Output{Topic: pipelines.TopicLedgerBlocks, Key: []byte("x"), Value: []byte("junk")})
	produce(t, brokers, book[:1])
	var recs []ledger.Record
	if err := r.Blocks(ctx, func(rec ledger.Record) error { recs = append(recs, rec); return nil }); err != nil || len(recs) != len(book)+2 {
		t.Fatalf("%d records, %v; want %d", len(recs), err, len(book)+2)
	}
	junk := recs[len(book)]
	if junk.Block != nil || (!errors.Is(junk.Err, schemas.ErrMalformed) && !errors.Is(junk.Err, schemas.ErrUnknownSchema)) ||
		string(junk.Key) != "x" || string(junk.Value) != "junk" || junk.Offset <= recs[len(book)-1].Offset {
		t.Errorf("junk record: %+v", junk)
	}
	if last := recs[len(recs)-1]; last.Block == nil || last.Block.Header != book[0].Header {
		t.Errorf("record after the junk: %+v", last)
	}
	tail, whole, err := r.Tail(ctx)
	if err != nil || !whole || len(tail) != len(recs) || tail[len(book)].Offset != junk.Offset {
		t.Errorf("tail: %d records, %v", len(tail), err)
	}
}

func produce(t *testing.T, brokers []string, book []*ledger.Block) {
	t.Helper()
	var recs []kafka.Output
	for _, b := range book {
		v, err := schemas.SingleObject().Marshal(b.Avro())
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, kafka.Output{Topic: pipelines.TopicLedgerBlocks, Key: []byte(strconv.FormatUint(b.Header.Height, 10)), Value: v})
	}
	kafkatest.Produce(t, brokers, recs...)
}
