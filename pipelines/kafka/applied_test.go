package kafka_test

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
)

// appliedStage is the counter stage of TestChangelogRestore (cl.in ->
// cl.log, cl.out: "key=n" for the n-th record of key) under group name.
func appliedStage(name string, restored, seen *atomic.Int64) pipelines.Stage {
	return pipelines.Stage{
		Name:      name,
		Inputs:    []string{"cl.in"},
		Changelog: "cl.log",
		NewProcessor: func(_ context.Context, task pipelines.Task) (pipelines.Processor, error) {
			return &counter{task: task, counts: map[string]int{}, restored: restored, seen: seen}, nil
		},
	}
}

func appliedTopics(partitions int32) []pipelines.TopicSpec {
	return []pipelines.TopicSpec{
		{Name: "cl.in", Partitions: partitions},
		{Name: "cl.log", Partitions: partitions, Compacted: true},
		{Name: "cl.out", Partitions: partitions},
	}
}

func admin(t *testing.T, brokers []string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// committed returns group's committed offsets on topic by partition.
func committed(t *testing.T, adm *kadm.Client, group, topic string) map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := map[int32]int64{}
	os, err := adm.FetchOffsetsForTopics(ctx, group, topic)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return out // nothing committed yet
	}
	if err != nil {
		t.Fatal(err)
	}
	os.Each(func(o kadm.OffsetResponse) {
		if o.Err == nil && o.At >= 0 {
			out[o.Partition] = o.At
		}
	})
	return out
}

// waitAllCommitted waits until group has committed offset end on every
// partition of topic.
func waitAllCommitted(t *testing.T, adm *kadm.Client, group, topic string, ends map[int32]int64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := committed(t, adm, group, topic)
		done := true
		for p, end := range ends {
			if got[p] != end {
				done = false
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s committed %v on %s, want %v", group, got, topic, ends)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func repaired(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "minecart_stage_offsets_repaired_total" {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// checkCounts fails unless out holds "key<k>=<i>" exactly once for every
// key k < keys and 1 <= i <= per, and nothing else.
func checkCounts(t *testing.T, out []pipelines.Record, keys, per int) {
	t.Helper()
	got := values(out)
	for k := 0; k < keys; k++ {
		for i := 1; i <= per; i++ {
			if v := "key" + strconv.Itoa(k) + "=" + strconv.Itoa(i); got[v] != 1 {
				t.Fatalf("%s output %d times, want 1 (%d output records, want %d): input applied twice or lost", v, got[v], len(out), keys*per)
			}
		}
	}
	if len(out) != keys*per {
		t.Fatalf("%d output records, want %d", len(out), keys*per)
	}
}

// TestAppliedOffsetsRollback: a stateful stage committed its whole input,
// then its group's offsets are rolled back to the start (kadm, as an
// operator would; the same state as a broker that committed the outputs
// and the changelog of a transaction but not its offsets). Restarted, the
// stage must not apply the input twice: its changelog's applied offsets
// say where its state is, and every output count comes out once. Both
// membership paths: a dynamic member (random instance id) and a static
// one (stable instance id, KIP-345).
func TestAppliedOffsetsRollback(t *testing.T) {
	for _, tc := range []struct{ name, instance string }{
		{"dynamic", ""},
		{"static", "applied-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n, keys, parts = 400, 10, 2
			brokers := kafkatest.Broker(t, appliedTopics(parts)...)
			adm := admin(t, brokers)
			gen := func(off int) func(int) ([]byte, []byte) {
				return func(i int) ([]byte, []byte) {
					return []byte("key" + strconv.Itoa((off+i)%keys)), []byte(strconv.Itoa(off + i))
				}
			}
			group := "ar-" + tc.name
			var restored, seen atomic.Int64
			st := appliedStage(group, &restored, &seen)
			cfg := kafkatest.Config(brokers)
			cfg.MaxBatch = 30
			cfg.InstanceID = tc.instance

			kafkatest.ProduceN(t, brokers, "cl.in", n, gen(0))
			stop := kafkatest.Run(t, cfg, st)
			kafkatest.WaitRecords(t, brokers, "cl.out", n, 60*time.Second)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			ends, err := adm.ListEndOffsets(ctx, "cl.in")
			if err != nil {
				t.Fatal(err)
			}
			end := map[int32]int64{}
			ends.Each(func(o kadm.ListedOffset) { end[o.Partition] = o.Offset })
			waitAllCommitted(t, adm, group, "cl.in", end)
			stop()

			// Roll the group back to the start of every partition.
			if tc.instance != "" {
				// A static member stays in the group when it stops;
				// an offset commit from outside needs an empty group.
				if _, err := adm.LeaveGroup(ctx, kadm.LeaveGroup(group).InstanceIDs(tc.instance)); err != nil {
					t.Fatal(err)
				}
			}
			var back kadm.Offsets
			for p := range end {
				back.AddOffset("cl.in", p, 0, -1)
			}
			if rs, err := adm.CommitOffsets(ctx, group, back); err != nil || rs.Error() != nil {
				t.Fatalf("roll back offsets: %v %v", err, rs.Error())
			}
			if got := committed(t, adm, group, "cl.in"); got[0] != 0 || got[1] != 0 {
				t.Fatalf("rolled back offsets %v, want 0", got)
			}

			// n more records, then a restart.
			kafkatest.ProduceN(t, brokers, "cl.in", n, gen(n))
			ends, err = adm.ListEndOffsets(ctx, "cl.in")
			if err != nil {
				t.Fatal(err)
			}
			ends.Each(func(o kadm.ListedOffset) { end[o.Partition] = o.Offset })
			restored.Store(0)
			seen.Store(0)
			reg := prometheus.NewRegistry()
			cfg.Registerer = reg
			stop = kafkatest.Run(t, cfg, st)
			waitAllCommitted(t, adm, group, "cl.in", end)
			stop()
			if restored.Load() == 0 {
				t.Fatal("the changelog was not restored")
			}
			if s := seen.Load(); s != n {
				t.Fatalf("processor saw %d records after the restart, want %d (the new ones only)", s, n)
			}
			out, err := kafkatest.ReadCommitted(ctx, brokers, "cl.out")
			if err != nil {
				t.Fatal(err)
			}
			checkCounts(t, out, keys, 2*n/keys)
			// One repair per input partition and restore: an aborted
			// batch (tasks rebuilt, restored again) may add some.
			aborted := metricValue(t, reg, "minecart_pipeline_transactions_total", map[string]string{"stage": group, "result": "aborted"})
			if r := repaired(t, reg); r < parts || (r > parts && aborted == 0) {
				t.Fatalf("minecart_stage_offsets_repaired_total = %v with %v aborted transactions, want %d (one per input partition)", r, aborted, parts)
			}
		})
	}
}

// TestAppliedOffsetsCrashInCommit rebuilds the on-disk state of a kfake
// killed inside EndTxn between writing a transaction's commit markers and
// appending its offsets to groups.log (kfake txns.go endTx: markers first,
// no transaction log): the outputs and the changelog of the last
// transaction are committed, the group's offset is the previous
// transaction's. The restarted stage must skip the records of that last
// transaction, which its state already holds.
func TestAppliedOffsetsCrashInCommit(t *testing.T) {
	const n, keys = 200, 10
	gen := func(off int) func(int) ([]byte, []byte) {
		return func(i int) ([]byte, []byte) {
			return []byte("key" + strconv.Itoa((off+i)%keys)), []byte(strconv.Itoa(off + i))
		}
	}
	const group = "ac"
	var restored, seen atomic.Int64
	st := appliedStage(group, &restored, &seen)
	var dropped, back int64
	brokers := kafkatest.CrashedBrokerEdit(t, func(brokers []string) {
		kafkatest.ProduceN(t, brokers, "cl.in", n, gen(0))
		cfg := kafkatest.Config(brokers)
		cfg.MaxBatch = 30
		stop := kafkatest.Run(t, cfg, st)
		waitAllCommitted(t, admin(t, brokers), group, "cl.in", map[int32]int64{0: n})
		stop()
	}, func(dir string) {
		var err error
		if dropped, back, err = kafkatest.DropLastOffsetCommit(dir, group, "cl.in", 0); err != nil {
			t.Fatal(err)
		}
	}, appliedTopics(1)...)
	if dropped != n || back < 0 || back >= n {
		t.Fatalf("dropped commit %d (back at %d), want %d and an earlier one", dropped, back, n)
	}
	adm := admin(t, brokers)
	if got := committed(t, adm, group, "cl.in"); got[0] != back {
		t.Fatalf("group offset after the crash %v, want %d", got, back)
	}
	if out := kafkatest.WaitRecords(t, brokers, "cl.out", n, 30*time.Second); len(out) != n {
		t.Fatalf("%d outputs committed before the crash, want %d", len(out), n)
	}

	kafkatest.ProduceN(t, brokers, "cl.in", n, gen(n))
	restored.Store(0)
	seen.Store(0)
	reg := prometheus.NewRegistry()
	cfg := kafkatest.Config(brokers)
	cfg.Registerer = reg
	stop := kafkatest.Run(t, cfg, st)
	waitAllCommitted(t, adm, group, "cl.in", map[int32]int64{0: 2 * n})
	stop()
	if s := seen.Load(); s != n {
		t.Fatalf("processor saw %d records after the crash, want %d (the %d of the half-committed transaction again?)", s, n, n-back)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := kafkatest.ReadCommitted(ctx, brokers, "cl.out")
	if err != nil {
		t.Fatal(err)
	}
	checkCounts(t, out, keys, 2*n/keys)
	aborted := metricValue(t, reg, "minecart_pipeline_transactions_total", map[string]string{"stage": group, "result": "aborted"})
	if r := repaired(t, reg); r < 1 || (r > 1 && aborted == 0) {
		t.Fatalf("minecart_stage_offsets_repaired_total = %v with %v aborted transactions, want 1", r, aborted)
	}

	// A Table over the changelog never shows the reserved records.
	tab, err := kafka.NewTable(ctx, kafkatest.Config(brokers), "cl.log")
	if err != nil {
		t.Fatal(err)
	}
	defer tab.Close()
	if err := tab.WaitCaught(ctx); err != nil {
		t.Fatal(err)
	}
	if tab.Len() != keys {
		t.Fatalf("table over the changelog has %d keys, want %d (reserved applied-offset keys shown?)", tab.Len(), keys)
	}
}

// TestAppliedOffsetsCrashBetweenMarkers: a kill -9 inside kfake's EndTxn
// after the changelog's COMMIT marker and before the output's (endTx
// writes the markers partition by partition, then the offsets). The
// copy of the directory loses the output partition's last marker and the
// group's last offset commit; infra/broker's start-up repair (not a bare
// kfake) then loads it. It commits the output's dangling tail, since the
// changelog holds the COMMIT marker of the same producer id and epoch:
// all n outputs are readable at once, and after the restart the stage
// skips the input its state holds and every count comes out exactly once.
// Aborting the tail instead (the repair before) loses the last
// transaction's outputs for good: its input is applied in the state.
func TestAppliedOffsetsCrashBetweenMarkers(t *testing.T) {
	const n, keys = 200, 10
	gen := func(off int) func(int) ([]byte, []byte) {
		return func(i int) ([]byte, []byte) {
			return []byte("key" + strconv.Itoa((off+i)%keys)), []byte(strconv.Itoa(off + i))
		}
	}
	const group = "acm"
	var restored, seen atomic.Int64
	st := appliedStage(group, &restored, &seen)
	var back int64
	dir := kafkatest.CrashedDir(t, func(brokers []string) {
		kafkatest.ProduceN(t, brokers, "cl.in", n, gen(0))
		cfg := kafkatest.Config(brokers)
		cfg.MaxBatch = 30
		stop := kafkatest.Run(t, cfg, st)
		waitAllCommitted(t, admin(t, brokers), group, "cl.in", map[int32]int64{0: n})
		stop()
	}, func(dir string) {
		if _, _, err := kafkatest.DropLastMarker(dir, "cl.out", 0); err != nil {
			t.Fatal(err)
		}
		var err error
		if _, back, err = kafkatest.DropLastOffsetCommit(dir, group, "cl.in", 0); err != nil {
			t.Fatal(err)
		}
	}, appliedTopics(1)...)
	b := kafkatest.StartBroker(t, dir, appliedTopics(1)...)
	defer b.Close()
	brokers := b.Addrs()
	adm := admin(t, brokers)
	if got := committed(t, adm, group, "cl.in"); got[0] != back || back < 0 || back >= n {
		t.Fatalf("group offset after the crash %v, want %d (< %d)", got, back, n)
	}
	if tail := kafkatest.DanglingTail(t, brokers, "cl.out", 0); len(tail.Dangling) != 0 || tail.LastStableOffset != tail.HighWatermark {
		t.Fatalf("cl.out after the repair: %+v", tail)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := kafkatest.ReadCommitted(ctx, brokers, "cl.out")
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != n {
		t.Fatalf("%d outputs committed after the repair, want %d (the last transaction's aborted?)", len(out), n)
	}

	kafkatest.ProduceN(t, brokers, "cl.in", n, gen(n))
	seen.Store(0)
	stop := kafkatest.Run(t, kafkatest.Config(brokers), st)
	waitAllCommitted(t, adm, group, "cl.in", map[int32]int64{0: 2 * n})
	stop()
	if s := seen.Load(); s != n {
		t.Fatalf("processor saw %d records after the crash, want %d", s, n)
	}
	if out, err = kafkatest.ReadCommitted(ctx, brokers, "cl.out"); err != nil {
		t.Fatal(err)
	}
	checkCounts(t, out, keys, 2*n/keys)
}
