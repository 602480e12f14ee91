package kafka_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
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
// the same records through the same broker (kafkatest.Passthrough). Both
// run three times, alternating, and the best of each counts (the machine is
// shared, its load varies); it reports both rates and their ratio (run /
// bare: 1 means the runtime costs nothing over the bare client). b.N is the
// number of records. Example:
//
//	go test -run '^$' -bench RunPassthrough -benchtime 300000x ./pipelines/
func BenchmarkRunPassthrough(b *testing.B) {
	const rounds = 3
	brokers := kafkatest.Broker(b)
	id := benchRound.Add(1)
	in := fmt.Sprintf("bench%d.in", id)
	specs := []pipelines.TopicSpec{{Name: in, Partitions: 8}}
	for r := 0; r < rounds; r++ {
		specs = append(specs,
			pipelines.TopicSpec{Name: fmt.Sprintf("bench%d.out%d", id, r), Partitions: 8},
			pipelines.TopicSpec{Name: fmt.Sprintf("bench%d.bare%d", id, r), Partitions: 8})
	}
	kafkatest.CreateTopics(b, brokers, specs...)
	n := b.N
	value := make([]byte, 130)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	kafkatest.ProduceN(b, brokers, in, n, func(i int) ([]byte, []byte) {
		return []byte("vehicle-" + strconv.Itoa(i%10000)), value
	})
	ctx := context.Background()
	b.ResetTimer()

	var bestBare, bestRun time.Duration
	var perTxn float64
	for r := 0; r < rounds; r++ {
		bare, err := kafkatest.Passthrough(ctx, brokers, in, fmt.Sprintf("bench%d.bare%d", id, r), n)
		if err != nil {
			b.Fatal(err)
		}
		if bestBare == 0 || bare < bestBare {
			bestBare = bare
		}
		took, txns := runPassthrough(b, brokers, fmt.Sprintf("bench%d-%d", id, r), in, fmt.Sprintf("bench%d.out%d", id, r), n)
		if bestRun == 0 || took < bestRun {
			bestRun, perTxn = took, float64(n)/txns
		}
	}
	b.StopTimer()
	runRate := float64(n) / bestRun.Seconds()
	bareRate := float64(n) / bestBare.Seconds()
	b.ReportMetric(runRate, "run_rec/s")
	b.ReportMetric(bareRate, "bare_rec/s")
	b.ReportMetric(runRate/bareRate, "ratio")
	b.ReportMetric(perTxn, "rec/txn")
}

// runPassthrough runs a passthrough stage until it committed n records and
// returns the time taken and the transactions committed.
func runPassthrough(b *testing.B, brokers []string, name, in, out string, n int) (time.Duration, float64) {
	reg := prometheus.NewRegistry()
	cfg := kafkatest.Config(brokers)
	cfg.Registerer = reg
	cfg.MaxBatch = 10000
	start := time.Now()
	stop := kafkatest.Run(b, cfg, pipelines.Stage{
		Name:   name,
		Inputs: []string{in},
		NewProcessor: func(context.Context, pipelines.Task) (pipelines.Processor, error) {
			return passthrough{out: out}, nil
		},
	})
	defer stop()
	in1 := map[string]string{"stage": name}
	for metricValue(b, reg, "minecart_pipeline_records_in_total", in1) < float64(n) {
		time.Sleep(time.Millisecond)
	}
	took := time.Since(start)
	return took, metricValue(b, reg, "minecart_pipeline_transactions_total", map[string]string{"stage": name, "result": "committed"})
}

// BenchmarkReaderRead measures records/s of Reader.Read (a bounded read:
// its own read_committed Fetch requests, decoded by
// kgo.ProcessFetchPartition, ending on the fetch position) over one
// partition of b.N records of 130 bytes, against the bare franz-go
// consumer reading the same partition read_committed to the same end (the
// way Read read before it had to trust the fetch position). Best of three
// each; ratio = read / bare. Example:
//
//	go test -run '^$' -bench ReaderRead -benchtime 300000x ./pipelines/kafka/
func BenchmarkReaderRead(b *testing.B) {
	const rounds = 3
	brokers := kafkatest.Broker(b)
	topic := fmt.Sprintf("benchread%d", benchRound.Add(1))
	kafkatest.CreateTopics(b, brokers, pipelines.TopicSpec{Name: topic, Partitions: 1})
	n := b.N
	value := make([]byte, 130)
	kafkatest.ProduceN(b, brokers, topic, n, func(i int) ([]byte, []byte) {
		return []byte("vehicle-" + strconv.Itoa(i%10000)), value
	})
	ctx := context.Background()
	rd, err := kafka.NewReader(kafkatest.Config(brokers))
	if err != nil {
		b.Fatal(err)
	}
	defer rd.Close()
	end, err := rd.End(ctx, topic, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var bestRead, bestBare time.Duration
	for r := 0; r < rounds; r++ {
		start := time.Now()
		got := 0
		if err := rd.Read(ctx, topic, 0, 0, end, func(pipelines.Record) error { got++; return nil }); err != nil || got != n {
			b.Fatalf("read %d of %d: %v", got, n, err)
		}
		if d := time.Since(start); bestRead == 0 || d < bestRead {
			bestRead = d
		}
		start = time.Now()
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.FetchMaxBytes(64<<20), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
		if err != nil {
			b.Fatal(err)
		}
		for got = 0; got < n; {
			fs := cl.PollFetches(ctx)
			fs.EachRecord(func(*kgo.Record) { got++ })
		}
		cl.Close()
		if d := time.Since(start); bestBare == 0 || d < bestBare {
			bestBare = d
		}
	}
	b.StopTimer()
	readRate, bareRate := float64(n)/bestRead.Seconds(), float64(n)/bestBare.Seconds()
	b.ReportMetric(readRate, "read_rec/s")
	b.ReportMetric(bareRate, "bare_rec/s")
	b.ReportMetric(readRate/bareRate, "ratio")
}
