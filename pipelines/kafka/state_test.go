package kafka_test

import (
	"context"
	"encoding/binary"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
)

// counter counts records per key; its state lives in the changelog.
type counter struct {
	task     pipelines.Task
	counts   map[string]int
	restored *atomic.Int64
	seen     *atomic.Int64
}

func (c *counter) Process(_ context.Context, rec pipelines.Record, out pipelines.Emitter) error {
	k := string(rec.Key)
	n := c.counts[k] + 1
	out.EmitTo("cl.log", c.task.Partition, rec.Key, []byte(strconv.Itoa(n)))
	out.Emit("cl.out", rec.Key, []byte(k+"="+strconv.Itoa(n)))
	c.counts[k] = n
	c.seen.Add(1)
	return nil
}

func (c *counter) Restore(_ context.Context, rec pipelines.Record) error {
	n, err := strconv.Atoi(string(rec.Value))
	if err != nil {
		return err
	}
	c.counts[string(rec.Key)] = n
	c.restored.Add(1)
	return nil
}

// TestChangelogRestore runs a stateful stage, adds a second instance (a
// rebalance: open transactions abort, processors are rebuilt from the
// changelog), stops the first, and lets the second finish: every key's
// counts come out 1..n exactly once, as one uninterrupted run would give.
func TestChangelogRestore(t *testing.T) {
	const n, keys = 4000, 10
	brokers := kafkatest.Broker(t,
		pipelines.TopicSpec{Name: "cl.in", Partitions: 2},
		pipelines.TopicSpec{Name: "cl.log", Partitions: 2, Compacted: true},
		pipelines.TopicSpec{Name: "cl.out", Partitions: 2})
	kafkatest.ProduceN(t, brokers, "cl.in", n, func(i int) ([]byte, []byte) {
		return []byte("key" + strconv.Itoa(i%keys)), []byte(strconv.Itoa(i))
	})
	var restored, seen atomic.Int64
	st := pipelines.Stage{
		Name:      "cl",
		Inputs:    []string{"cl.in"},
		Changelog: "cl.log",
		NewProcessor: func(_ context.Context, task pipelines.Task) (pipelines.Processor, error) {
			return &counter{task: task, counts: map[string]int{}, restored: &restored, seen: &seen}, nil
		},
	}
	reg := prometheus.NewRegistry()
	cfgA := kafkatest.Config(brokers)
	cfgA.MaxBatch = 50
	cfgA.Registerer = reg
	cfgB := cfgA
	stopA := kafkatest.Run(t, cfgA, st)
	waitAtLeast(t, &seen, n/4)
	stopB := kafkatest.Run(t, cfgB, st)
	waitAtLeast(t, &seen, n/2)
	stopA()
	defer stopB()
	kafkatest.WaitRecords(t, brokers, "cl.out", n, 60*time.Second)
	time.Sleep(200 * time.Millisecond)
	recs, err := kafkatest.ReadCommitted(context.Background(), brokers, "cl.out")
	if err != nil {
		t.Fatal(err)
	}
	got := values(recs)
	for k := 0; k < keys; k++ {
		for i := 1; i <= n/keys; i++ {
			v := "key" + strconv.Itoa(k) + "=" + strconv.Itoa(i)
			if got[v] != 1 {
				t.Fatalf("%s seen %d times, want 1", v, got[v])
			}
		}
	}
	if len(recs) != n {
		t.Fatalf("%d output records, want %d", len(recs), n)
	}
	t.Logf("restored %d changelog records; %v transactions aborted, %v committed", restored.Load(),
		metricValue(t, reg, "minecart_pipeline_transactions_total", map[string]string{"stage": "cl", "result": "aborted"}),
		metricValue(t, reg, "minecart_pipeline_transactions_total", map[string]string{"stage": "cl", "result": "committed"}))
	if restored.Load() == 0 {
		t.Fatal("no changelog record was restored")
	}
	if metricValue(t, reg, "minecart_pipeline_restore_seconds", map[string]string{"stage": "cl"}) == 0 {
		t.Fatal("no restore observed in the metrics")
	}
	// The changelog's latest value per key is its final count.
	log, err := kafkatest.ReadCommitted(context.Background(), brokers, "cl.log")
	if err != nil {
		t.Fatal(err)
	}
	last := map[string]string{}
	applied := map[string]int64{}
	for _, r := range log {
		if k, ok := strings.CutPrefix(string(r.Key), kafka.AppliedKeyPrefix); ok {
			// The runtime's applied offsets (docs/reliability.md).
			applied[k] = int64(binary.BigEndian.Uint64(r.Value))
			continue
		}
		last[string(r.Key)] = string(r.Value)
	}
	if len(applied) != 2 || applied["cl.in/0"]+applied["cl.in/1"] != n {
		t.Fatalf("applied offsets in the changelog %v, want the ends of cl.in's 2 partitions (%d records)", applied, n)
	}
	for k, v := range last {
		if v != strconv.Itoa(n/keys) || !strings.HasPrefix(k, "key") {
			t.Fatalf("changelog %s=%s, want %d", k, v, n/keys)
		}
	}
}

func waitAtLeast(t *testing.T, v *atomic.Int64, n int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for v.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("counter at %d after 30s, want %d", v.Load(), n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
