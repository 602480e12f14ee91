package kafka_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
)

// openTxn writes recs to topic in a transaction of its own that it leaves
// open (the writer is killed mid-transaction).
func openTxn(t *testing.T, brokers []string, id, topic string, recs ...[2]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID(id), kgo.TransactionTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close() // never ends the transaction: Close does not abort
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(r[0]), Value: []byte(r[1])}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDanglingTail (the counter stage of TestChangelogRestore) is the kill -9 stall of issue 13, rebuilt: a stateful
// stage ran, then transactions were left open on its changelog and on its
// input, and the broker (kfake) crashed; on reload kfake drops them
// without abort markers, so both topics end with records of a transaction
// neither committed nor aborted, below the last stable offset. The stage
// must restore its changelog (skipping the dangling records), consume its
// input past the dangling records, and give the counts one uninterrupted
// run gives; a Table over the changelog must catch up.
func TestDanglingTail(t *testing.T) {
	const n, keys = 200, 10
	extra := []pipelines.TopicSpec{
		{Name: "cl.in", Partitions: 1},
		{Name: "cl.log", Partitions: 1, Compacted: true},
		{Name: "cl.out", Partitions: 1},
	}
	gen := func(i int) ([]byte, []byte) { return []byte("key" + strconv.Itoa(i%keys)), []byte(strconv.Itoa(i)) }
	var restored, seen atomic.Int64
	st := pipelines.Stage{
		Name:      "dt",
		Inputs:    []string{"cl.in"},
		Changelog: "cl.log",
		NewProcessor: func(_ context.Context, task pipelines.Task) (pipelines.Processor, error) {
			return &counter{task: task, counts: map[string]int{}, restored: &restored, seen: &seen}, nil
		},
	}
	brokers := kafkatest.CrashedBroker(t, func(brokers []string) {
		kafkatest.ProduceN(t, brokers, "cl.in", n/2, gen)
		stop := kafkatest.Run(t, kafkatest.Config(brokers), st)
		kafkatest.WaitRecords(t, brokers, "cl.out", n/2, 30*time.Second)
		stop()
		// A stage instance killed mid-transaction: its changelog
		// records sent, not committed.
		openTxn(t, brokers, "dt-dead", "cl.log", [2]string{"key0", "999"}, [2]string{"key1", "999"})
		// An upstream writer killed mid-transaction.
		openTxn(t, brokers, "up-dead", "cl.in", [2]string{"key0", "poison"}, [2]string{"key1", "poison"})
	}, extra...)

	for _, topic := range []string{"cl.log", "cl.in"} {
		tail := kafkatest.DanglingTail(t, brokers, topic, 0)
		if len(tail.Dangling) != 2 || tail.LastStableOffset != tail.HighWatermark || tail.Dangling[1] != tail.HighWatermark-1 {
			t.Fatalf("%s: tail %+v, want 2 dangling records below the last stable offset (the crashed state)", topic, tail)
		}
	}

	// A table over the changelog catches up and shows the committed state.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tab, err := kafka.NewTable(ctx, kafkatest.Config(brokers), "cl.log")
	if err != nil {
		t.Fatal(err)
	}
	if err := tab.WaitCaught(ctx); err != nil {
		t.Fatalf("table over a dangling tail: %v", err)
	}
	if v, _ := tab.Get("key0"); string(v) != strconv.Itoa(n/2/keys) {
		t.Fatalf("table key0 = %q, want %d (the dangling 999 is not committed)", v, n/2/keys)
	}
	if err := tab.Close(); err != nil {
		t.Fatal(err)
	}

	// The rest of the input, after the dangling records; the stage
	// restores and consumes all of it.
	kafkatest.ProduceN(t, brokers, "cl.in", n/2, func(i int) ([]byte, []byte) { return gen(n/2 + i) })
	restored.Store(0)
	stop := kafkatest.Run(t, kafkatest.Config(brokers), st)
	defer stop()
	out := kafkatest.WaitRecords(t, brokers, "cl.out", n, 60*time.Second)
	stop()
	if restored.Load() == 0 {
		t.Fatal("the changelog was not restored")
	}
	got := values(out)
	for k := 0; k < keys; k++ {
		for i := 1; i <= n/keys; i++ {
			if v := "key" + strconv.Itoa(k) + "=" + strconv.Itoa(i); got[v] != 1 {
				t.Fatalf("%s seen %d times, want 1 (output %d records)", v, got[v], len(out))
			}
		}
	}
	if len(out) != n {
		t.Fatalf("%d output records, want %d: the dangling input was processed", len(out), n)
	}
}
