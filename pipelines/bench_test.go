package pipelines_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/pipetest"
)

type passthrough struct{ out string }

func (p passthrough) Process(_ context.Context, rec pipelines.Record, out pipelines.Emitter) error {
	out.Emit(p.out, rec.Key, rec.Value)
	return nil
}

var benchRound atomic.Int64

// BenchmarkRunPassthrough measures records/s through Run (exactly once:
// group, one transaction per batch, read_committed) with a processor that
// re-emits every record, against the bare franz-go consume-and-produce of
// the same records through the same broker (pipetest.Passthrough), and
// reports both and their ratio (run / bare: 1 means the runtime costs
// nothing over the bare client). b.N is the number of records; ns/op covers
// the baseline twice plus the run. Example:
//
//	go test -run '^$' -bench RunPassthrough -benchtime 300000x ./pipelines/
func BenchmarkRunPassthrough(b *testing.B) {
	brokers := pipetest.Broker(b)
	round := benchRound.Add(1)
	in, out := fmt.Sprintf("bench%d.in", round), fmt.Sprintf("bench%d.out", round)
	base1, base2 := fmt.Sprintf("bench%d.base1", round), fmt.Sprintf("bench%d.base2", round)
	pipetest.CreateTopics(b, brokers,
		pipelines.TopicSpec{Name: in, Partitions: 8},
		pipelines.TopicSpec{Name: out, Partitions: 8},
		pipelines.TopicSpec{Name: base1, Partitions: 8},
		pipelines.TopicSpec{Name: base2, Partitions: 8})
	n := b.N
	value := make([]byte, 130)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	pipetest.ProduceN(b, brokers, in, n, func(i int) ([]byte, []byte) {
		return []byte("vehicle-" + strconv.Itoa(i%10000)), value
	})
	ctx := context.Background()
	b.ResetTimer()

	// The baseline runs before and after the stage; the faster of the two
	// counts (load from other processes on the machine varies).
	baseline, err := pipetest.Passthrough(ctx, brokers, in, base1, n)
	if err != nil {
		b.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	cfg := pipetest.Config(brokers)
	cfg.Registerer = reg
	cfg.MaxBatch = 10000
	start := time.Now()
	stop := pipetest.Run(b, cfg, pipelines.Stage{
		Name:   fmt.Sprintf("bench%d", round),
		Inputs: []string{in},
		NewProcessor: func(context.Context, pipelines.Task) (pipelines.Processor, error) {
			return passthrough{out: out}, nil
		},
	})
	for {
		mfs, err := reg.Gather()
		if err != nil {
			b.Fatal(err)
		}
		done := false
		for _, mf := range mfs {
			if mf.GetName() == "minecart_pipeline_records_in_total" && mf.GetMetric()[0].GetCounter().GetValue() >= float64(n) {
				done = true
			}
		}
		if done {
			break
		}
		time.Sleep(time.Millisecond)
	}
	took := time.Since(start)
	stop()
	baseline2, err := pipetest.Passthrough(ctx, brokers, in, base2, n)
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	baseline = min(baseline, baseline2)
	runRate := float64(n) / took.Seconds()
	baseRate := float64(n) / baseline.Seconds()
	b.ReportMetric(runRate, "run_rec/s")
	b.ReportMetric(baseRate, "bare_rec/s")
	b.ReportMetric(runRate/baseRate, "ratio")
	b.ReportMetric(float64(n)/metricValue(b, reg, "minecart_pipeline_transactions_total", map[string]string{"result": "committed"}), "rec/txn")
}
