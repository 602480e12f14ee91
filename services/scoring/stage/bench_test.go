package stage

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/internal/benchfig"
	"github.com/minecart/minecart/internal/cputime"
	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/scoring/scoringtest"
	"github.com/minecart/minecart/services/telemetry"
	"github.com/minecart/minecart/services/telemetry/wire"
)

func morning() time.Time { return time.Date(2026, 11, 24, 8, 0, 0, 0, shanghai) }

var (
	benchRounds = flag.Int("scoring.rounds", 3, "alternating baseline/stage rounds in BenchmarkStageThroughput (the median ratio is reported)")
	benchProf   = flag.String("scoring.roundsprofile", "", "BenchmarkStageThroughput: write a CPU profile of the stage's runs alone (not the set-up nor the baselines) to this file")
	benchOnly   = flag.Bool("scoring.stage-only", false, "BenchmarkStageThroughput: run the stage alone in each round (no baselines, no RATIO line), to profile it")
)

// BenchmarkStageThroughput runs the scoring stage over simulated traffic on
// an embedded broker and compares it with kafkatest.Passthrough (a bare
// consume and produce of the same records, on the same broker) in the same
// run. Run it with -benchtime 1x: each iteration is -scoring.rounds rounds
// (default 3), each a fresh broker holding the records, the baseline, then
// the stage; the median of the rounds' ratios is reported, since single
// runs on the shared machine swing by 2x. "events" is the traffic alone
// (its days close by event time); "marks" interleaves a gateway's time
// mark on every partition after every 1,000 events (about 8 marks per
// 1,000 records, far denser than production's 8 per second), so its ratio
// to "events" is the cost of closing on the log's time.
//
// The stage is timed from its first record to the commit of its last
// offset: its start-up (joining the group, fencing its transactional id,
// restoring the empty changelog; 70-600 ms on this machine, reported as
// startup-ms) is a once-per-process cost, not per-record work, and was up to
// a third of the time on runs of 0.3-0.8 s. The baseline's clock starts at
// its first poll (its client's connection and metadata, a few ms, are
// inside).
func BenchmarkStageThroughput(b *testing.B) {
	const vehicles, chunks = 2000, 5 // 300,000 events
	serde := schemas.SingleObject()
	evs := scoringtest.Traffic(vehicles, chunks, 1, morning())
	recs := make([]kafka.Output, len(evs))
	for i := range evs {
		v, err := serde.Encode(schemas.TelemetryEvent, telemetry.ToNative(&evs[i]))
		if err != nil {
			b.Fatal(err)
		}
		recs[i] = kafka.Output{Topic: pipelines.TopicTelemetryClean, Key: []byte(evs[i].VehicleID), Value: v}
	}
	var marked []kafka.Output
	for i := range recs {
		marked = append(marked, recs[i])
		if i%1000 == 999 {
			for p := range int32(pipelines.TelemetryPartitions) {
				v, err := serde.Marshal(&avro.TimeMark{Gateway: "gw", Partition: p, TimeMs: time.UnixMilli(evs[i].TimeMs).UTC()})
				if err != nil {
					b.Fatal(err)
				}
				marked = append(marked, kafka.Output{Topic: pipelines.TopicTelemetryClean, Key: []byte(pipelines.MarkKeyPrefix + "gw"),
					Value: v, Headers: pipelines.MarkHeaders(), ToPartition: true, Partition: p})
			}
		}
	}
	b.Run("events", func(b *testing.B) { benchStage(b, serde, recs, len(recs), "scoring_stage") })
	b.Run("marks", func(b *testing.B) { benchStage(b, serde, marked, len(recs), "") })
}

// benchStage prints "RATIO <row> ..." when row is set.
func benchStage(b *testing.B, serde *schemas.Serde, recs []kafka.Output, events int, row string) {
	n := len(recs)
	for range b.N {
		var baseRates, readRates, stageRates, ratios, readRatios, startups, baseCPU, stageCPU, cpuRatios []float64
		days := 0.0
		for range max(1, *benchRounds) {
			r := stageRound(b, serde, recs, events)
			stageCPU = append(stageCPU, 1e6*r.stageCPU.Seconds()/float64(n))
			if *benchOnly {
				stageRates = append(stageRates, float64(n)/r.took.Seconds())
				continue
			}
			baseCPU = append(baseCPU, 1e6*r.baseCPU.Seconds()/float64(n))
			cpuRatios = append(cpuRatios, r.baseCPU.Seconds()/r.stageCPU.Seconds())
			baseRates, readRates = append(baseRates, float64(n)/r.base.Seconds()), append(readRates, float64(n)/r.read.Seconds())
			stageRates = append(stageRates, float64(n)/r.took.Seconds())
			ratios, readRatios = append(ratios, r.base.Seconds()/r.took.Seconds()), append(readRatios, r.read.Seconds()/r.took.Seconds())
			startups = append(startups, float64(r.startup.Milliseconds()))
			days = r.closed
		}
		if *benchOnly {
			fmt.Printf("scoring: stage alone, median of %d rounds: %.0f records/s, CPU per record (whole process, start-up included) %.2f us (rounds: %.2f)\n",
				len(stageRates), benchfig.Median(stageRates), benchfig.Median(stageCPU), stageCPU)
			continue
		}
		ratio := benchfig.Median(ratios)
		b.ReportMetric(benchfig.Median(baseRates), "baseline-records/s")
		b.ReportMetric(benchfig.Median(stageRates), "stage-records/s")
		b.ReportMetric(ratio, "ratio")
		b.ReportMetric(benchfig.Median(readRatios), "ratio-to-consume")
		b.ReportMetric(benchfig.Median(startups), "startup-ms")
		b.ReportMetric(days, "days-closed")
		fmt.Printf("scoring: %d records (%d events), median of %d rounds: stage %.0f records/s, bare consume and produce %.0f records/s (ratios %.2f), bare consume alone %.0f records/s (ratios %.2f); stage start-up %v ms\n",
			n, events, len(ratios), benchfig.Median(stageRates), benchfig.Median(baseRates), ratios, benchfig.Median(readRates), readRatios, startups)
		fmt.Printf("scoring: CPU per record (whole process, broker included; the stage's with its start-up), median: stage %.2f us, bare consume and produce %.2f us, bare/stage %.2f (rounds: %.2f)\n",
			benchfig.Median(stageCPU), benchfig.Median(baseCPU), benchfig.Median(cpuRatios), cpuRatios)
		if row != "" {
			fmt.Printf("RATIO %s %.3f goal 0.60\n", row, ratio)
		}
	}
}

// round is one round's times: the baseline (bare consume and produce),
// the bare consume alone, the stage (from its first record to its last
// commit), its start-up (from Run to its first record), and the days it
// closed.
type round struct {
	base, read, took, startup time.Duration
	baseCPU, stageCPU         time.Duration // the process's CPU time during the baseline and during the stage's run
	closed                    float64
}

// stageRound runs one round on a fresh broker holding recs: the baseline,
// a bare consume, then the stage.
func stageRound(b *testing.B, serde *schemas.Serde, recs []kafka.Output, events int) round {
	brokers := kafkatest.Broker(b, pipelines.TopicSpec{Name: "bench.out", Partitions: pipelines.TelemetryPartitions, Retention: time.Hour})
	kafkatest.Produce(b, brokers, recs...)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var base, read, baseCPU time.Duration
	if !*benchOnly {
		var err error
		cpu0 := cputime.Self()
		base, err = kafkatest.Passthrough(ctx, brokers, pipelines.TopicTelemetryClean, "bench.out", len(recs))
		if err != nil {
			b.Fatal(err)
		}
		baseCPU = cputime.Self() - cpu0
		read, err = bareConsume(ctx, brokers, pipelines.TopicTelemetryClean, len(recs))
		if err != nil {
			b.Fatal(err)
		}
	}

	reg := prometheus.NewRegistry()
	st, err := NewStage(Config{Serde: serde, Registerer: reg, IdleTimeout: -1})
	if err != nil {
		b.Fatal(err)
	}
	var first atomic.Int64 // Unix ns of the first record any task processed
	newProc := st.NewProcessor
	st.NewProcessor = func(ctx context.Context, t pipelines.Task) (pipelines.Processor, error) {
		pr, err := newProc(ctx, t)
		if err != nil {
			return nil, err
		}
		return &firstRecord{processor: pr.(*processor), first: &first}, nil
	}
	cfg := kafkatest.Config(brokers)
	cfg.MaxBatch = 5000
	if *benchProf != "" && !profiling {
		// The first round's stage run (one profile per process).
		stopProf := roundsProfile(b, *benchProf)
		profiling = true
		defer stopProf()
	}
	start, cpu0 := time.Now(), cputime.Self()
	stop := kafkatest.Run(b, cfg, st)
	for counter(b, reg, "minecart_scoring_events_total") < float64(events) || !committed(b, brokers, st.Name, pipelines.TopicTelemetryClean) {
		if time.Since(start) > 5*time.Minute {
			b.Fatal("stage did not finish")
		}
		time.Sleep(5 * time.Millisecond)
	}
	end, stageCPU := time.Now(), cputime.Self()-cpu0 // every input offset is committed
	stop()
	t0 := time.Unix(0, first.Load())
	return round{base: base, read: read, took: end.Sub(t0), startup: t0.Sub(start), baseCPU: baseCPU, stageCPU: stageCPU,
		closed: counter(b, reg, "minecart_scoring_windows_closed_total")}
}

// bareConsume reads n records of topic (direct, from the start,
// read_committed) with a bare franz-go client and returns the time from
// the first poll to the n-th record: the stage's input side alone (the
// scoring stage writes ~3% of its input back, as changelog records).
func bareConsume(ctx context.Context, brokers []string, topic string, n int) (time.Duration, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	start := time.Now()
	for got := 0; got < n; {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		got += fs.NumRecords()
	}
	return time.Since(start), nil
}

// firstRecord notes when the stage's first record reaches a processor.
type firstRecord struct {
	*processor
	first *atomic.Int64
}

func (f *firstRecord) Process(ctx context.Context, rec pipelines.Record, out pipelines.Emitter) error {
	if f.first.Load() == 0 {
		f.first.CompareAndSwap(0, time.Now().UnixNano())
	}
	return f.processor.Process(ctx, rec, out)
}

// committed reports whether group has committed the end of every partition of topic.
func committed(b *testing.B, brokers []string, group, topic string) bool {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return false
	}
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return false
	}
	done := true
	ends.Each(func(o kadm.ListedOffset) {
		c, ok := offs.Lookup(topic, o.Partition)
		if o.Offset > 0 && (!ok || c.At < o.Offset) {
			done = false
		}
	})
	return done
}

// BenchmarkDecodeEvent is the codec's share: the stage's decoder (header
// check + telemetry's specialised Avro decoder) against the generic serde
// path (goavro to a map, then telemetry.FromNative).
func BenchmarkDecodeEvent(b *testing.B) {
	serde := schemas.SingleObject()
	ev := scoringtest.NewTrip("v", morning(), 1).Drive(1, 60).Evs[0]
	v, err := serde.Encode(schemas.TelemetryEvent, telemetry.ToNative(&ev))
	if err != nil {
		b.Fatal(err)
	}
	codec, err := wire.NewCodec(serde)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("stage", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := codec.DecodeEvent(v, telemetry.Limits{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("serde", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			m, err := serde.DecodeAs(schemas.TelemetryEvent, v)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := telemetry.FromNative(m); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func counter(b *testing.B, reg *prometheus.Registry, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var sum float64
			for _, m := range mf.Metric {
				sum += counterValue(m)
			}
			return sum
		}
	}
	return 0
}

func counterValue(m *dto.Metric) float64 {
	if c := m.GetCounter(); c != nil {
		return c.GetValue()
	}
	return 0
}

// BenchmarkProcess is the processor's cost per record, no broker: an event
// against a time mark (decode, checks, LogClock, Windows.Advance).
func BenchmarkProcess(b *testing.B) {
	serde := schemas.SingleObject()
	st, err := NewStage(Config{Serde: serde})
	if err != nil {
		b.Fatal(err)
	}
	pr, err := st.NewProcessor(context.Background(), pipelines.Task{Stage: st.Name, Partition: 0})
	if err != nil {
		b.Fatal(err)
	}
	p := pr.(*processor)
	ev := scoringtest.NewTrip("v", morning(), 1).Drive(1, 60).Evs[0]
	v, err := serde.Encode(schemas.TelemetryEvent, telemetry.ToNative(&ev))
	if err != nil {
		b.Fatal(err)
	}
	evRec := pipelines.Record{Topic: pipelines.TopicTelemetryClean, Key: []byte("v"), Value: v, Timestamp: morning()}
	mv, err := serde.Marshal(&avro.TimeMark{Gateway: "gateway-0", Partition: 0, TimeMs: morning()})
	if err != nil {
		b.Fatal(err)
	}
	markRec := pipelines.Record{Topic: pipelines.TopicTelemetryClean, Key: []byte("mark/gateway-0"), Value: mv, Headers: pipelines.MarkHeaders(), Timestamp: morning()}
	var out discardEmitter
	ctx := context.Background()
	b.Run("event", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if err := p.Process(ctx, evRec, out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("mark", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if err := p.Process(ctx, markRec, out); err != nil {
				b.Fatal(err)
			}
		}
	})
}

type discardEmitter struct{}

func (discardEmitter) Emit(string, []byte, []byte, ...pipelines.Header)          {}
func (discardEmitter) EmitTo(string, int32, []byte, []byte, ...pipelines.Header) {}

// BenchmarkProcessTraffic is the stage's own CPU per event on the traffic
// of BenchmarkStageThroughput, no broker: one processor takes every record
// (decode, checks, Windows.AddRef) and flushes (changelog records) every
// 600 records, about the transactions of the throughput run.
func BenchmarkProcessTraffic(b *testing.B) {
	serde := schemas.SingleObject()
	evs := scoringtest.Traffic(2000, 5, 1, morning())
	recs := make([]pipelines.Record, len(evs))
	for i := range evs {
		v, err := serde.Encode(schemas.TelemetryEvent, telemetry.ToNative(&evs[i]))
		if err != nil {
			b.Fatal(err)
		}
		recs[i] = pipelines.Record{Topic: pipelines.TopicTelemetryClean, Key: []byte(evs[i].VehicleID), Value: v, Timestamp: time.UnixMilli(evs[i].TimeMs)}
	}
	ctx := context.Background()
	var out countEmitter
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cputime.Self()
	for range b.N {
		st, err := NewStage(Config{Serde: serde, IdleTimeout: -1})
		if err != nil {
			b.Fatal(err)
		}
		pr, err := st.NewProcessor(ctx, pipelines.Task{Stage: st.Name, Partition: 0})
		if err != nil {
			b.Fatal(err)
		}
		p := pr.(*processor)
		for i := range recs {
			if err := p.Process(ctx, recs[i], &out); err != nil {
				b.Fatal(err)
			}
			if i%600 == 599 {
				if err := p.Flush(ctx, &out); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := p.Flush(ctx, &out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((cputime.Self()-cpu0).Nanoseconds())/float64(b.N*len(recs)), "cpu-ns/event")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/event")
	b.ReportMetric(float64(out.n)/float64(b.N), "records-emitted")
	b.ReportMetric(float64(out.bytes)/float64(b.N*len(recs)), "emitted-B/event")
}

type countEmitter struct{ n, bytes int }

func (c *countEmitter) Emit(_ string, k, v []byte, _ ...pipelines.Header) {
	c.n++
	c.bytes += len(k) + len(v)
}
func (c *countEmitter) EmitTo(_ string, _ int32, k, v []byte, _ ...pipelines.Header) {
	c.n++
	c.bytes += len(k) + len(v)
}

// profiling is set once the stage's run of a round is profiled.
var profiling bool

// roundsProfile starts a CPU profile written to path and returns its
// stop. It fails when another CPU profile runs (go test's -cpuprofile).
func roundsProfile(b *testing.B, path string) (stop func()) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Error(err)
		}
	}
}
