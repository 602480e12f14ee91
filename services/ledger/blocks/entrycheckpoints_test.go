package blocks_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/services/ledger/blocks"
)

// TestEntriesCheckpointOnce: the checkpoint records the publisher writes
// into the entries topic (real broker, transactions) come once per size,
// in increasing order, after what was there, also across a second
// publisher under the same transactional id (a replica or a restart),
// which fences the first; the first then re-reads the topic and writes
// nothing twice. LastEntriesCheckpoint finds the last one behind more
// than its first window of records.
func TestEntriesCheckpointOnce(t *testing.T) {
	brokers := kafkatest.Broker(t)
	cfg := kafkatest.Config(brokers)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	prod, err := kafka.NewProducer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	store := func() *blocks.CheckpointStore {
		st, err := blocks.NewCheckpointStore(cfg, prod, kafkatest.Logger(), prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(st.Close)
		return st
	}
	entry := func(i int) kafka.Output {
		return kafka.Output{Topic: pipelines.TopicLedgerEntries, Key: fmt.Appendf(nil, "e%d", i), Value: []byte{0xC3, 0x01, byte(i)}}
	}
	note := func(n uint64) []byte {
		return fmt.Appendf(nil, "minecart/ledger\n%d\nroot\n\n— minecart/ledger sig\n", n)
	}
	write := func(st *blocks.CheckpointStore, size uint64, want bool) {
		t.Helper()
		wrote, err := st.ToEntries(ctx, size, note(size))
		if err != nil {
			t.Fatalf("ToEntries(%d): %v", size, err)
		}
		if wrote != want {
			t.Fatalf("ToEntries(%d) wrote %v, want %v", size, wrote, want)
		}
	}

	kafkatest.Produce(t, brokers, entry(0), entry(1), entry(2), entry(3), entry(4))
	a := store()
	if err := a.Store(ctx, 5, note(5)); err != nil { // checkpoints topic, entries, partners
		t.Fatal(err)
	}
	write(a, 5, false) // the same size again: already there
	write(a, 3, false) // an older one: never after a newer one
	kafkatest.Produce(t, brokers, entry(5), entry(6), entry(7), entry(8))
	write(a, 9, true)

	b := store() // a second publisher: reads the topic, fences a
	write(b, 9, false)
	kafkatest.Produce(t, brokers, entry(9), entry(10), entry(11))
	write(b, 12, true)
	// a was fenced: its write fails (or, had it not been, it would have
	// been refused as not larger); its next one re-reads the topic.
	if wrote, err := a.ToEntries(ctx, 12, note(12)); err == nil && wrote {
		t.Fatal("the fenced publisher wrote size 12 a second time")
	}
	write(a, 12, false)
	kafkatest.Produce(t, brokers, entry(12), entry(13), entry(14))
	write(a, 15, true)

	recs, err := kafkatest.ReadCommitted(ctx, brokers, pipelines.TopicLedgerEntries)
	if err != nil {
		t.Fatal(err)
	}
	var sizes []uint64
	entries := 0
	for _, r := range recs {
		if !pipelines.IsCheckpointRecord(&r) {
			entries++
			continue
		}
		n, err := pipelines.CheckpointRecordSize(&r)
		if err != nil {
			t.Fatal(err)
		}
		if entries < int(n) {
			t.Errorf("checkpoint of size %d after only %d entries", n, entries)
		}
		if string(r.Value) != string(note(n)) {
			t.Errorf("checkpoint %d: value %q", n, r.Value)
		}
		sizes = append(sizes, n)
	}
	if want := []uint64{5, 9, 12, 15}; !slices.Equal(sizes, want) {
		t.Fatalf("checkpoint records %v, want %v", sizes, want)
	}

	// Behind 3,000 records (three windows), the last one is still found.
	kafkatest.ProduceN(t, brokers, pipelines.TopicLedgerEntries, 3000, func(i int) ([]byte, []byte) { return fmt.Appendf(nil, "f%d", i), []byte{0xC3, 0x01} })
	if n, err := blocks.LastEntriesCheckpoint(ctx, cfg, pipelines.TopicLedgerEntries); err != nil || n != 15 {
		t.Fatalf("LastEntriesCheckpoint = %d, %v; want 15", n, err)
	}
	c := store()
	write(c, 15, false)
}
