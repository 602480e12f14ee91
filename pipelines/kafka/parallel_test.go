package kafka_test

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
)

// ordered is the processor of TestParallelTasks: it counts what would be
// a broken promise of Stage.Parallel (a record of another task, two
// Process calls of one task at once, offsets out of order per input
// partition), rejects the inputs whose number ends in 7 and emits the
// others upper-cased.
type ordered struct {
	task     pipelines.Task
	inflight atomic.Int32
	last     map[string]int64
	bad      *atomic.Int32
	running  *atomic.Int32 // Process calls in progress, all tasks
	overlap  *atomic.Int32 // most seen at once
}

func (o *ordered) Process(_ context.Context, rec pipelines.Record, out pipelines.Emitter) error {
	if !o.inflight.CompareAndSwap(0, 1) {
		o.bad.Add(1)
	}
	defer o.inflight.Store(0)
	n := o.running.Add(1)
	defer o.running.Add(-1)
	for m := o.overlap.Load(); n > m && !o.overlap.CompareAndSwap(m, n); m = o.overlap.Load() {
	}
	if last, ok := o.last[rec.Topic]; rec.Partition != o.task.Partition || ok && rec.Offset <= last {
		o.bad.Add(1)
	}
	o.last[rec.Topic] = rec.Offset
	time.Sleep(100 * time.Microsecond) // long enough for the tasks to overlap
	if bytes.HasSuffix(rec.Value, []byte("7")) {
		return pipelines.Reject("seven", errors.New("ends in 7"))
	}
	out.Emit("par.out", rec.Key, bytes.ToUpper([]byte(rec.Topic+"/"+string(rec.Value))))
	return nil
}

// TestParallelTasks: a Stage.Parallel stage over two co-partitioned
// inputs of 8 partitions processes the tasks of a batch at once, each
// task's records one at a time and in order, and writes every output
// exactly once and every reject as a dead letter, counted.
func TestParallelTasks(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	const n = 800
	brokers := kafkatest.Broker(t,
		pipelines.TopicSpec{Name: "par.a", Partitions: 8},
		pipelines.TopicSpec{Name: "par.b", Partitions: 8},
		pipelines.TopicSpec{Name: "par.out", Partitions: 8})
	kafkatest.ProduceN(t, brokers, "par.a", n, gen)
	kafkatest.ProduceN(t, brokers, "par.b", n, gen)
	var bad, running, overlap atomic.Int32
	st := pipelines.Stage{
		Name:     "par",
		Inputs:   []string{"par.a", "par.b"},
		Parallel: true,
		NewProcessor: func(_ context.Context, task pipelines.Task) (pipelines.Processor, error) {
			return &ordered{task: task, last: map[string]int64{}, bad: &bad, running: &running, overlap: &overlap}, nil
		},
	}
	cfg := kafkatest.Config(brokers)
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	kafkatest.Run(t, cfg, st)
	sevens := 2 * (n / 10) // v7, v17, ... in each input
	recs := kafkatest.WaitRecords(t, brokers, "par.out", 2*n-sevens, 60*time.Second)
	dl := kafkatest.WaitRecords(t, brokers, pipelines.TopicDeadLetter, sevens, 30*time.Second)
	if bad.Load() != 0 {
		t.Fatalf("%d records out of order, of another task, or processed concurrently within a task", bad.Load())
	}
	got := values(recs)
	for i := 0; i < n; i++ {
		for _, topic := range []string{"par.a", "par.b"} {
			want := 1
			if strings.HasSuffix(strconv.Itoa(i), "7") {
				want = 0
			}
			if v := strings.ToUpper(topic + "/v" + strconv.Itoa(i)); got[v] != want {
				t.Fatalf("%s seen %d times, want %d", v, got[v], want)
			}
		}
	}
	if len(recs) != 2*n-sevens || len(dl) != sevens {
		t.Fatalf("%d outputs, %d dead letters; want %d and %d", len(recs), len(dl), 2*n-sevens, sevens)
	}
	waitMetric(t, reg, "minecart_pipeline_records_dead_total", map[string]string{"stage": "par", "code": "seven"}, float64(sevens))
	waitMetric(t, reg, "minecart_pipeline_records_out_total", map[string]string{"stage": "par"}, float64(2*n-sevens))
	waitMetric(t, reg, "minecart_pipeline_records_in_total", map[string]string{"stage": "par"}, float64(2*n))
	if overlap.Load() < 2 {
		t.Fatalf("tasks never processed at once (most in progress together: %d)", overlap.Load())
	}
	t.Logf("most Process calls at once: %d", overlap.Load())
}
