package broker_test

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/infra/broker"
	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
)

func start(t *testing.T, dir string) *broker.Broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0", DataDir: dir,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := kafka.EnsureTopics(ctx, b.Addrs(), pipelines.Topology); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRestartKeepsData: committed transactional records and a group's
// committed offsets survive a restart on the same data directory; an
// aborted transaction's records stay invisible to read_committed.
func TestRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	b := start(t, dir)
	ctx := context.Background()
	topic := pipelines.TopicLedgerBlocks

	txn, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.TransactionalID("restart-test"),
		kgo.TransactionTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for round, commit := range []bool{true, false, true} {
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 10; i++ {
			v := strconv.Itoa(round*10 + i)
			if err := txn.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := txn.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	// One more transaction, left open when the broker stops.
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txn.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: topic, Partition: 0, At: 7, LeaderEpoch: -1})
	if err := kadm.NewClient(cl).CommitAllOffsets(ctx, "restart-group", offs); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	txn.Close()

	b = start(t, dir)
	defer func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	}()
	got := readCommitted(t, b.Addrs(), topic)
	if len(got) != 20 {
		t.Fatalf("%d committed records after restart, want 20: %v", len(got), got)
	}
	for i, v := range got {
		want := i
		if i >= 10 {
			want = i + 10 // round 1 was aborted
		}
		if v != strconv.Itoa(want) {
			t.Fatalf("record %d = %s, want %d", i, v, want)
		}
	}
	cl, err = kgo.NewClient(kgo.SeedBrokers(b.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	fetched, err := kadm.NewClient(cl).FetchOffsets(ctx, "restart-group")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := fetched.Lookup(topic, 0); !ok || o.At != 7 {
		t.Fatalf("group offset after restart %+v, want 7", o)
	}
	// The transaction open at the (clean) stop is still open after the
	// restart, as in Kafka, and the broker aborts it when its timeout
	// (2s) expires: the last stable offset reaches the high watermark.
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(15 * time.Second)
	for {
		hwm, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		lso, err := adm.ListCommittedOffsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		h, _ := hwm.Lookup(topic, 0)
		l, _ := lso.Lookup(topic, 0)
		if h.Offset == l.Offset {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("transaction open before the restart never ended: hwm %d, lso %d", h.Offset, l.Offset)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := readCommitted(t, b.Addrs(), topic); len(got) != 20 {
		t.Fatalf("%d committed records after the abort, want 20", len(got))
	}
}

func readCommitted(t *testing.T, brokers []string, topic string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	recs, err := kafkatest.ReadCommitted(ctx, brokers, topic)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Value)
	}
	return out
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []broker.Config{{Addr: "nohostport"}, {Partitions: -1}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	if err := (broker.Config{}).Validate(); err != nil {
		t.Errorf("zero config: %v", err)
	}
}
