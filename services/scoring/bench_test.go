package scoring

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/telemetry"
	"github.com/minecart/minecart/services/telemetry/wire"
)

// BenchmarkDayAdd is the pure score update per event (hash included).
func BenchmarkDayAdd(b *testing.B) {
	r := DefaultRules()
	evs := newTrip("v", morning(), 1).drive(3600, 60, at(100, 101, lonAccel(-0.5))).evs
	d := NewDay(morning().Add(-8*time.Hour).UnixMilli(), morning().Add(16*time.Hour).UnixMilli(), 5*3600*1000)
	var buf []byte
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%len(evs) == 0 {
			d = NewDay(d.Start, d.End, d.NightEnd)
		}
		buf = d.Add(&r, &evs[i%len(evs)], buf)
	}
}

// BenchmarkWindowsAdd adds events of 10,000 vehicles through Windows (day
// lookup, window map, score update).
func BenchmarkWindowsAdd(b *testing.B) {
	r := DefaultRules()
	w, err := NewWindows(&r, "Asia/Shanghai", 2*time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	evs := benchTraffic(10000, 3, 1, morning())
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := w.Add(&evs[i%len(evs)], func(Closed) {}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenWindows1M opens 1,000,000 vehicle-days (10 events each)
// and reports the Go heap and changelog bytes per open window.
func BenchmarkOpenWindows1M(b *testing.B) {
	const n = 1000000
	for range b.N {
		r := DefaultRules()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		w, err := NewWindows(&r, "Asia/Shanghai", 2*time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		ev := telemetry.Event{DeviceID: "", TZ: "Asia/Shanghai", Lat: 31.2, Lon: 121.4, HDOP: 0.8, SpeedKmh: 50, OdometerKm: 1000}
		t0 := morning().UnixMilli()
		for v := range n {
			ev.VehicleID = fmt.Sprintf("LSVAU2180N2%06d", v) // VIN-like, 17 bytes
			ev.DeviceID = fmt.Sprintf("dev-%08d", v)
			for k := range 10 {
				ev.TimeMs = t0 + int64(k)*1000
				ev.Lon += 0.0001
				ev.OdometerKm += 0.01
				if _, err := w.Add(&ev, func(Closed) {}); err != nil {
					b.Fatal(err)
				}
			}
		}
		var enc int
		w.Flush(func(key string, value []byte) { enc += len(key) + len(value) })
		w.buf = nil
		runtime.GC()
		runtime.ReadMemStats(&after)
		heap := float64(after.HeapAlloc-before.HeapAlloc) / n
		b.ReportMetric(heap, "heap-B/window")
		b.ReportMetric(float64(enc)/n, "changelog-B/window")
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heap-MiB/1M")
		runtime.KeepAlive(w)
	}
}

// benchTraffic is vehicles x chunks uploads of 30 one-second events each,
// interleaved chunk by chunk (boxes upload in batches), in time order.
func benchTraffic(vehicles, chunks int, seed uint64, start time.Time) []telemetry.Event {
	trips := make([]*trip, vehicles)
	for v := range trips {
		trips[v] = newTrip(fmt.Sprintf("veh-%06d", v), start, seed+uint64(v))
	}
	var out []telemetry.Event
	for range chunks {
		for _, tr := range trips {
			n := len(tr.evs)
			tr.drive(30, 50, at(10, 11, lonAccel(-0.45)))
			out = append(out, tr.evs[n:]...)
		}
	}
	return out
}

// BenchmarkStageThroughput runs the scoring stage over simulated traffic on
// an embedded broker and compares it with kafkatest.Passthrough (a bare
// consume and produce of the same records) in the same run. Run it with
// -benchtime 1x: each iteration is a full run.
func BenchmarkStageThroughput(b *testing.B) {
	const vehicles, chunks = 2000, 5 // 300,000 events
	serde := schemas.SingleObject()
	evs := benchTraffic(vehicles, chunks, 1, morning())
	recs := make([]kafka.Output, len(evs))
	for i := range evs {
		v, err := serde.Encode(schemas.TelemetryEvent, telemetry.ToNative(&evs[i]))
		if err != nil {
			b.Fatal(err)
		}
		recs[i] = kafka.Output{Topic: pipelines.TopicTelemetryClean, Key: []byte(evs[i].VehicleID), Value: v}
	}
	n := len(recs)
	for range b.N {
		brokers := kafkatest.Broker(b, pipelines.TopicSpec{Name: "bench.out", Partitions: pipelines.TelemetryPartitions, Retention: time.Hour})
		kafkatest.Produce(b, brokers, recs...)

		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		base, err := kafkatest.Passthrough(ctx, brokers, pipelines.TopicTelemetryClean, "bench.out", n)
		cancel()
		if err != nil {
			b.Fatal(err)
		}

		reg := prometheus.NewRegistry()
		st, err := NewStage(Config{Serde: serde, Registerer: reg, IdleTimeout: -1})
		if err != nil {
			b.Fatal(err)
		}
		cfg := kafkatest.Config(brokers)
		cfg.MaxBatch = 5000
		start := time.Now()
		stop := kafkatest.Run(b, cfg, st)
		for counter(b, reg, "minecart_scoring_events_total") < float64(n) || !committed(b, brokers, st.Name, pipelines.TopicTelemetryClean) {
			if time.Since(start) > 5*time.Minute {
				b.Fatal("stage did not finish")
			}
			time.Sleep(5 * time.Millisecond)
		}
		took := time.Since(start) // until every input offset is committed
		stop()
		b.ReportMetric(float64(n)/base.Seconds(), "baseline-events/s")
		b.ReportMetric(float64(n)/took.Seconds(), "stage-events/s")
		b.ReportMetric(base.Seconds()/took.Seconds(), "ratio")
	}
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
	ev := newTrip("v", morning(), 1).drive(1, 60).evs[0]
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

// BenchmarkRestore replays the changelog of 100,000 open windows into a new
// task (what a failover costs before the first record is processed).
func BenchmarkRestore(b *testing.B) {
	r := DefaultRules()
	w, err := NewWindows(&r, "Asia/Shanghai", 2*time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	for _, ev := range benchTraffic(100000, 1, 1, morning()) {
		if _, err := w.Add(&ev, nil); err != nil {
			b.Fatal(err)
		}
	}
	type kv struct {
		k string
		v []byte
	}
	var log []kv
	w.Flush(func(key string, value []byte) { log = append(log, kv{key, value}) })
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		w2, err := NewWindows(&r, "Asia/Shanghai", 2*time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range log {
			if err := w2.Restore(e.k, e.v); err != nil {
				b.Fatal(err)
			}
		}
		if w2.Pending() != 0 || w2.Open() != 100000 {
			b.Fatalf("restored %d windows", w2.Open())
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(log)), "ns/record")
}
