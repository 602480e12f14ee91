package ingest

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/internal/benchfig"
	"github.com/minecart/minecart/internal/cputime"
	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/telemetry"
	"github.com/minecart/minecart/services/telemetry/wire"
)

var (
	benchEvents       = flag.Int("ingest.events", 200000, "events in BenchmarkStageVsPassthrough")
	benchRounds       = flag.Int("ingest.rounds", 5, "alternating baseline/stage rounds in BenchmarkStageVsPassthrough")
	benchProcVehicles = flag.Int("ingest.proc-vehicles", 2000, "vehicles (round robin) in BenchmarkProcess; the stage bench's tasks see 250 each")
	benchOnly         = flag.String("ingest.only", "", "BenchmarkStageVsPassthrough: run only this side's rounds (stage or bare), to profile it alone; no RATIO line")
	benchProf         = flag.String("ingest.roundsprofile", "", "BenchmarkStageVsPassthrough: write a CPU profile of the rounds alone (not the records' set-up) to this file")
)

// BenchmarkStageVsPassthrough measures the ingest stage (decode, validate,
// dedup, encode, transactions, changelog) against kafkatest.TxnPassthrough,
// a bare franz-go group-transactional consume-and-produce of the same raw
// records (key, value and device header) through the same broker in the
// same run: read_committed, the same MaxBatch records per transaction, the
// offsets committed in the transaction. Both are timed the same way, from
// outside, by their consumer group's committed offsets (from the first
// warm records committed to the last), and prints the ratio. It also
// times the codec alone (specialised and goavro) to show its share.
//
// The rounds run under pprof labels side=stage and side=bare, so that a
// CPU profile can be split by side (docs/scale.md, "Ingest stage
// profile"):
//
//	go test -run '^$' -bench StageVsPassthrough -benchtime 1x -cpuprofile cpu.out ./services/ingest/
//	go tool pprof -tagfocus side=stage -top ingest.test cpu.out
func BenchmarkStageVsPassthrough(b *testing.B) {
	const passOut = "bench.passthrough"
	brokers := kafkatest.Broker(b, pipelines.TopicSpec{Name: passOut, Partitions: pipelines.TelemetryPartitions})
	codec, _ := wire.NewCodec(schemas.SingleObject())
	n, vehicles := *benchEvents, 2000
	const warm = 8000
	recs := make([]kafka.Output, 0, warm+n)
	for i := 0; i < warm+n; i++ {
		ev := event(fmt.Sprintf("veh-%04d", i%vehicles), i/vehicles)
		ev.FaultCodes = nil
		recs = append(recs, kafka.Output{Topic: pipelines.TopicTelemetryRaw, Key: []byte(ev.VehicleID),
			Value: codec.AppendEvent(nil, &ev), Headers: []pipelines.Header{{Key: "device", Value: []byte(ev.DeviceID)}}})
	}
	kafkatest.Produce(b, brokers, recs...)
	total := int64(warm + n)
	cfg := kafkatest.Config(brokers)
	cfg.MaxBatch = 5000
	b.ResetTimer()
	for range b.N {
		ctx := context.Background()
		// Each side returns its rate (events/s, wall clock) and its CPU
		// time per event (the whole process's: on a shared machine the
		// wall clock swings with the load, the CPU time much less).
		bare := func() (rate, cpuPer float64) {
			pprof.Do(ctx, pprof.Labels("side", "bare"), func(ctx context.Context) {
				group := fmt.Sprintf("ingest-bare-%d", time.Now().UnixNano())
				done := make(chan error, 1)
				go func() {
					_, err := kafkatest.TxnPassthrough(ctx, brokers, group, pipelines.TopicTelemetryRaw, passOut, cfg.MaxBatch, int(total), cfg.SessionTimeout)
					done <- err
				}()
				d, cpu, err := timeGroup(ctx, brokers, group, warm, total)
				if err == nil {
					err = <-done
				}
				if err != nil {
					b.Fatal(err)
				}
				rate, cpuPer = float64(total-warm)/d.Seconds(), cpu.Seconds()/float64(total-warm)
			})
			return rate, cpuPer
		}
		stage := func() (rate, cpuPer float64) {
			pprof.Do(ctx, pprof.Labels("side", "stage"), func(ctx context.Context) {
				// A fresh changelog: the stage's applied offsets in the last
				// round's would make this one skip the records as applied.
				if err := freshTopic(ctx, brokers, pipelines.TopicIngestChangelog); err != nil {
					b.Fatal(err)
				}
				group := fmt.Sprintf("ingest-bench-%d", time.Now().UnixNano())
				st, err := NewStage(Config{Name: group, Now: func() time.Time { return now }})
				if err != nil {
					b.Fatal(err)
				}
				stop := kafkatest.Run(b, cfg, st)
				d, cpu, err := timeGroup(ctx, brokers, group, warm, total)
				stop()
				if err != nil {
					b.Fatal(err)
				}
				if *benchOnly != "" {
					// What the stage wrote besides its clean records (the
					// changelog: dedup snapshots and applied offsets).
					n, err := topicRecords(ctx, brokers, pipelines.TopicIngestChangelog)
					if err != nil {
						b.Fatal(err)
					}
					fmt.Printf("ingest: stage round: %d changelog records (%.3f per event)\n", n, float64(n)/float64(total))
				}
				rate, cpuPer = float64(total-warm)/d.Seconds(), cpu.Seconds()/float64(total-warm)
			})
			return rate, cpuPer
		}
		// Alternate baseline and stage rounds (each goes first in every
		// other round) and take medians: the machine is shared, so single
		// runs swing by 2x.
		if *benchProf != "" {
			stopProf := roundsProfile(b, *benchProf)
			defer stopProf()
		}
		if *benchOnly != "" {
			// One side alone (a CPU profile of it, broker and franz-go
			// included, without the other side's samples).
			side := map[string]func() (float64, float64){"stage": stage, "bare": bare}[*benchOnly]
			if side == nil {
				b.Fatalf("-ingest.only=%q: want stage or bare", *benchOnly)
			}
			var rates, cpus []float64
			for round := 0; round < *benchRounds; round++ {
				rate, cpu := side()
				rates, cpus = append(rates, rate), append(cpus, cpu)
			}
			fmt.Printf("ingest: %s alone, median of %d rounds: %.0f ev/s, CPU per event (whole process) %.2f us (rounds: %.2f)\n",
				*benchOnly, len(rates), benchfig.Median(rates), 1e6*benchfig.Median(cpus), scaled(cpus, 1e6))
			continue
		}
		var baseRates, stageRates, ratios, oldRates, baseCPU, stageCPU, cpuRatios []float64
		for round := 0; round < *benchRounds; round++ {
			// The baseline before 2026-12-05 (kafkatest.Passthrough: no
			// group, no transactions, timed from the client's start), for
			// comparison with the older figures only.
			old, err := kafkatest.Passthrough(ctx, brokers, pipelines.TopicTelemetryRaw, passOut, int(total))
			if err != nil {
				b.Fatal(err)
			}
			oldRates = append(oldRates, float64(total)/old.Seconds())
			var baseRate, stageRate, bc, sc float64
			if round%2 == 0 {
				baseRate, bc = bare()
				stageRate, sc = stage()
			} else {
				stageRate, sc = stage()
				baseRate, bc = bare()
			}
			baseRates, stageRates, ratios = append(baseRates, baseRate), append(stageRates, stageRate), append(ratios, stageRate/baseRate)
			baseCPU, stageCPU, cpuRatios = append(baseCPU, bc), append(stageCPU, sc), append(cpuRatios, bc/sc)
		}
		baseRate, stageRate, ratio := benchfig.Median(baseRates), benchfig.Median(stageRates), benchfig.Median(ratios)

		// The codec alone: decode each raw value and encode the clean one.
		t0 := time.Now()
		var buf []byte
		for i := range recs {
			ev, err := codec.DecodeEvent(recs[i].Value, telemetry.Limits{})
			if err != nil {
				b.Fatal(err)
			}
			buf = codec.AppendEvent(buf[:0], &ev)
		}
		fast := time.Since(t0) / time.Duration(len(recs))
		serde := schemas.SingleObject()
		t0 = time.Now()
		m := 20000
		for i := 0; i < m; i++ {
			native, err := serde.DecodeAs(schemas.TelemetryEvent, recs[i].Value)
			if err != nil {
				b.Fatal(err)
			}
			ev, _ := telemetry.FromNative(native)
			if buf, err = serde.AppendEncode(buf[:0], schemas.TelemetryEvent, telemetry.AppendNative(native, &ev)); err != nil {
				b.Fatal(err)
			}
		}
		slow := time.Since(t0) / time.Duration(m)
		perEvent := time.Duration(float64(time.Second) / stageRate)
		b.ReportMetric(stageRate, "stage_events/s")
		b.ReportMetric(baseRate, "passthrough_events/s")
		b.ReportMetric(ratio, "ratio")
		fmt.Printf("ingest: %d events, %d vehicles, 8 partitions, %d per transaction, median of %d rounds: stage %.0f ev/s, bare transactional passthrough %.0f ev/s, ratio %.2f (rounds: %.2f)\n",
			n, vehicles, cfg.MaxBatch, len(ratios), stageRate, baseRate, ratio, ratios)
		fmt.Printf("ingest: CPU per event (whole process, broker included), median: stage %.2f us, bare %.2f us, bare/stage %.2f (rounds: %.2f)\n",
			1e6*benchfig.Median(stageCPU), 1e6*benchfig.Median(baseCPU), benchfig.Median(cpuRatios), cpuRatios)
		fmt.Printf("ingest: old baseline (kafkatest.Passthrough, non-transactional) %.0f ev/s, stage/old %.2f\n", benchfig.Median(oldRates), stageRate/benchfig.Median(oldRates))
		fmt.Printf("RATIO ingest_stage %.3f goal 0.60\n", ratio)
		fmt.Printf("codec per event (decode+encode): specialised %v (%.0f%% of the stage's %v/event), goavro via Serde %v (would be %.0f%%)\n",
			fast, 100*float64(fast)/float64(perEvent), perEvent, slow, 100*float64(slow)/float64(perEvent))
	}
}

// timeGroup waits until group has committed total offsets of the raw
// topic and returns the time from when it had committed warm of them,
// and the CPU time the process used meanwhile.
func timeGroup(ctx context.Context, brokers []string, group string, warm, total int64) (wall, cpu time.Duration, err error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return 0, 0, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var start time.Time
	var cpu0 time.Duration
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		offs, err := adm.FetchOffsets(ctx, group)
		if err == nil {
			var sum int64
			offs.Each(func(o kadm.OffsetResponse) {
				if o.Topic == pipelines.TopicTelemetryRaw && o.At > 0 {
					sum += o.At
				}
			})
			if start.IsZero() && sum >= warm {
				start, cpu0 = time.Now(), cputime.Self()
			}
			if sum >= total {
				return time.Since(start), cputime.Self() - cpu0, nil
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	return 0, 0, fmt.Errorf("group %s did not finish", group)
}

// freshTopic deletes topic and creates it again empty (compacted, the
// telemetry partition count), retrying while the broker still has it.
func freshTopic(ctx context.Context, brokers []string, topic string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.DeleteTopics(ctx, topic); err != nil {
		return err
	}
	compact := "compact"
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r, err := adm.CreateTopic(ctx, pipelines.TelemetryPartitions, 1, map[string]*string{"cleanup.policy": &compact}, topic)
		if err == nil && r.Err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("recreate %s: %v %v", topic, err, r.Err)
		}
	}
}

// discard is an Emitter that keeps nothing (BenchmarkProcess).
type discard struct{ n int }

func (d *discard) Emit(string, []byte, []byte, ...pipelines.Header)          { d.n++ }
func (d *discard) EmitTo(string, int32, []byte, []byte, ...pipelines.Header) { d.n++ }

// BenchmarkProcess measures the processor alone, without Kafka: Process
// of raw records (2,000 vehicles, in order, each new) and the Flush of
// every 5,000 (one changelog record per vehicle changed), per record.
//
//	go test -run '^$' -bench '^BenchmarkProcess$' -benchmem ./services/ingest/
func BenchmarkProcess(b *testing.B) {
	codec, _ := wire.NewCodec(schemas.SingleObject())
	vehicles, batch := *benchProcVehicles, 5000
	n := max(b.N, batch)
	recs := make([]pipelines.Record, n)
	for i := range recs {
		ev := event(fmt.Sprintf("veh-%04d", i%vehicles), i/vehicles)
		ev.FaultCodes = nil
		recs[i] = pipelines.Record{Topic: pipelines.TopicTelemetryRaw, Offset: int64(i), Key: []byte(ev.VehicleID),
			Value: codec.AppendEvent(nil, &ev), Headers: []pipelines.Header{{Key: "device", Value: []byte(ev.DeviceID)}}}
	}
	st, err := NewStage(Config{Now: func() time.Time { return now.Add(time.Duration(n) * time.Second) }})
	if err != nil {
		b.Fatal(err)
	}
	proc, err := st.NewProcessor(context.Background(), pipelines.Task{Stage: "ingest"})
	if err != nil {
		b.Fatal(err)
	}
	p := proc.(*Processor)
	ctx := context.Background()
	var out discard
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cputime.Self()
	for i := 0; i < b.N; i++ {
		if err := p.Process(ctx, recs[i], &out); err != nil {
			b.Fatal(err)
		}
		if i%batch == batch-1 {
			if err := p.Flush(ctx, &out); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	// CPU time per record: the machine is shared, and ns/op (wall clock)
	// swings with its load.
	b.ReportMetric(float64(cputime.Self()-cpu0)/float64(b.N), "cpu-ns/op")
	if out.n < b.N {
		b.Fatalf("%d records emitted for %d processed", out.n, b.N)
	}
}

// scaled is xs times k (a figure's rounds in the unit printed).
func scaled(xs []float64, k float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = x * k
	}
	return out
}

// topicRecords is the number of offsets in topic (end minus start, over
// its partitions; transaction markers included).
func topicRecords(ctx context.Context, brokers []string, topic string) (int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	start, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	end, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	var n int64
	end.Each(func(o kadm.ListedOffset) {
		if s, ok := start.Lookup(o.Topic, o.Partition); ok {
			n += o.Offset - s.Offset
		}
	})
	return n, nil
}

// roundsProfile starts a CPU profile written to path (the rounds alone,
// without the set-up before them) and returns its stop. It fails when
// another CPU profile runs (go test's -cpuprofile).
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
