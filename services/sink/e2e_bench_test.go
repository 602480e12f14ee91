package sink_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minecart/minecart/internal/benchfig"
	"github.com/minecart/minecart/internal/cputime"
	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/services/sink"
)

// Batch sizes of BenchmarkSinkEndToEnd (default: the sink's defaults).
var (
	maxRows    = flag.Int("sink.maxrows", sink.DefaultMaxRows, "BenchmarkSinkEndToEnd: records per Write")
	insertRows = flag.Int("sink.insertrows", sink.DefaultInsertRows, "BenchmarkSinkEndToEnd: rows per INSERT")
)

// sinkColumns are the telemetry columns the sink writes (its INSERT list).
const sinkColumns = `vehicle_id, time, device_id, seq, event_id, tz, lat_e6, lon_e6, hdop, speed_kmh, heading_deg,
	accel_lon_ms2, accel_lat_ms2, speed_limit_kmh, odometer_m, engine_on, fuel_pct, battery_v, coolant_c, fault_codes,
	src_topic, src_partition, src_offset`

// chPost runs one statement over the embedded server's HTTP interface.
func chPost(b testing.TB, base, query string) {
	b.Helper()
	res, err := http.Post(base+"/", "text/plain", strings.NewReader(query))
	if err != nil {
		b.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b.Fatalf("%.80s: %d %s", query, res.StatusCode, body)
	}
}

// BenchmarkSinkEndToEnd measures the rows per second the sink sustains from
// Kafka to ClickHouse: simulated fleet telemetry (loadtest/fleet) produced
// to the clean topic of an embedded broker (kfake), the sink's stage
// (kafka.RunSink with sink.NewStage, as the sink's main runs it: franz-go
// fetch, Avro decode, offset check, clickhouse-go inserts over HTTP)
// consuming it into the embedded server, from the start of its first Write
// to the end of the Write that stored the last row. The baseline, in the
// same run: the engine loading the same rows, in Kafka's order, from a
// local Native file into the same table (with the same materialized views)
// in one INSERT. Each iteration starts on empty tables with a new consumer
// group. The machine is shared (2 cores, often other builds): each
// iteration is a round that times both paths back to back, the order
// alternating between rounds (even rounds the sink first, odd rounds the
// engine first), and the row is the median of the rounds' ratios, printed
// with every round's (run it with -benchtime 9x or more), and the CPU
// ratio (the rows per CPU second of both processes) as FIGURE sink_e2e_cpu.
func BenchmarkSinkEndToEnd(b *testing.B) {
	const n = 200_000
	brokers := kafkatest.Broker(b)
	srv, conn := migrated(b)
	ctx := context.Background()
	evs := fleetEvents(b, 60, n)
	if len(evs) < n {
		b.Fatalf("fleet gave %d events, want %d", len(evs), n)
	}
	kafkatest.ProduceN(b, brokers, pipelines.TopicTelemetryClean, n, func(i int) ([]byte, []byte) {
		return []byte(evs[i].VehicleID), encodeEvent(b, evs[i])
	})
	runtime := kafkatest.Config(brokers)
	tables := []string{"telemetry", "telemetry_hourly", "fleet_daily", "sink_offsets"}
	truncate := func() {
		for _, t := range tables {
			chPost(b, srv.URL(), "TRUNCATE TABLE "+t)
		}
	}
	count := func() uint64 {
		var c uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM telemetry").Scan(&c); err != nil {
			b.Fatal(err)
		}
		return c
	}
	file := filepath.Join(b.TempDir(), "telemetry.native")
	// The baseline needs the landed rows as a file: one unmeasured sink
	// run makes it first.
	export := func() {
		res, err := http.Get(srv.URL() + "/?query=" + url.QueryEscape("SELECT "+sinkColumns+
			" FROM telemetry ORDER BY src_partition, src_offset FORMAT Native"))
		if err != nil {
			b.Fatal(err)
		}
		data, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode != http.StatusOK {
			b.Fatalf("export: %d %v", res.StatusCode, err)
		}
		if err := os.WriteFile(file, data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	// Each path's CPU time (this process's: the sink, and kfake serving
	// it; and the server's, which runs the engine) is recorded too: the
	// engine's CPU over the sink's is the work ratio, which the other load
	// on the cores moves far less than the wall-clock ratio.
	cpuNow := func() time.Duration {
		c, err := srv.CPU()
		if err != nil {
			return 0 // not Linux: no CPU figures
		}
		return c + cputime.Self()
	}
	var cpuRatios []float64
	var selfCPU, serverCPU, engineCPU []float64 // seconds per round: the sink path's in this process and in the server; the engine path's
	var sinkRates, engineRates, ratios []float64
	var inWrite, window time.Duration // the sink's time inside Write, and its measured windows
	iter, writes := 0, 0
	runSink := func() float64 {
		truncate()
		iter++
		st := newStage(b, conn, sink.Config{Name: fmt.Sprintf("bench-%d", iter), Inputs: []string{pipelines.TopicTelemetryClean},
			MaxRows: *maxRows, InsertRows: *insertRows})
		var first, last time.Time
		written := 0
		all := make(chan struct{})
		write := st.Write
		st.Write = func(ctx context.Context, recs []pipelines.Record) ([]pipelines.Rejected, error) {
			if first.IsZero() {
				first = time.Now()
			}
			t0 := time.Now()
			rejected, err := write(ctx, recs)
			inWrite += time.Since(t0)
			if err != nil {
				return nil, err
			}
			writes++
			if written += len(recs); written == n {
				last = time.Now()
				close(all)
			}
			return rejected, nil
		}
		stop := kafkatest.RunSink(b, runtime, st)
		select {
		case <-all:
		case <-time.After(5 * time.Minute):
			b.Fatalf("%d of %d rows written", written, n)
		}
		stop()
		if c := count(); c != n {
			b.Fatalf("%d rows landed, want %d", c, n)
		}
		window += last.Sub(first)
		return n / last.Sub(first).Seconds()
	}
	runEngine := func() float64 {
		truncate()
		t0 := time.Now()
		// The server refuses FROM INFILE from clients (a host file): the
		// data goes in the body, which the server spools and loads the same way.
		data, err := os.Open(file)
		if err != nil {
			b.Fatal(err)
		}
		res, err := http.Post(srv.URL()+"/?query="+url.QueryEscape("INSERT INTO telemetry ("+sinkColumns+") FORMAT Native"), "application/octet-stream", data)
		data.Close()
		if err != nil {
			b.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			b.Fatalf("engine load: %d", res.StatusCode)
		}
		rate := n / time.Since(t0).Seconds()
		if c := count(); c != n {
			b.Fatalf("engine loaded %d rows, want %d", c, n)
		}
		return rate
	}
	runSink()
	export()
	writes, inWrite, window = 0, 0, 0 // (iter goes on: each run needs a new consumer group)
	b.ResetTimer()
	for b.Loop() {
		var sr, er float64
		var sc, ec time.Duration
		sinkPath := func() {
			c, self := cpuNow(), cputime.Self()
			sr = runSink()
			sc = cpuNow() - c
			selfCPU = append(selfCPU, (cputime.Self() - self).Seconds())
			serverCPU = append(serverCPU, sc.Seconds()-selfCPU[len(selfCPU)-1])
		}
		enginePath := func() { c := cpuNow(); er = runEngine(); ec = cpuNow() - c }
		if len(ratios)%2 == 0 {
			sinkPath()
			enginePath()
		} else {
			enginePath()
			sinkPath()
		}
		sinkRates, engineRates, ratios = append(sinkRates, sr), append(engineRates, er), append(ratios, sr/er)
		if sc > 0 {
			cpuRatios = append(cpuRatios, ec.Seconds()/sc.Seconds())
			engineCPU = append(engineCPU, ec.Seconds())
		}
	}
	b.StopTimer()
	sinkRate, engineRate, ratio := benchfig.Median(sinkRates), benchfig.Median(engineRates), benchfig.Median(ratios)
	b.ReportMetric(sinkRate, "sink_rows/s")
	b.ReportMetric(engineRate, "engine_rows/s")
	b.ReportMetric(100*ratio, "sink_%_of_engine")
	fmt.Printf("sink_e2e: %d rounds, ratio median %.3f, min %.3f, max %.3f, rounds %s\n", len(ratios), ratio, slices.Min(ratios), slices.Max(ratios), benchfig.Rounds(ratios))
	if len(cpuRatios) > 0 {
		fmt.Printf("sink_e2e: CPU (sink process + server) engine/sink median %.3f, min %.3f, max %.3f, rounds %s\n",
			benchfig.Median(cpuRatios), slices.Min(cpuRatios), slices.Max(cpuRatios), benchfig.Rounds(cpuRatios))
		fmt.Printf("FIGURE sink_e2e_cpu %.3f min %.3f max %.3f\n", benchfig.Median(cpuRatios), slices.Min(cpuRatios), slices.Max(cpuRatios))
		fmt.Printf("sink_e2e: CPU s per round (medians): sink path %.2f in this process (sink + kfake) + %.2f in the server; engine path %.2f\n",
			benchfig.Median(selfCPU), benchfig.Median(serverCPU), benchfig.Median(engineCPU))
	}
	fmt.Printf("RATIO sink_e2e %.3f goal 0.60\n", ratio)
	b.Logf("median of %d rounds, %d events in %.1f writes each (%d rows per insert): sink %.0f rows/s (%.0f%% of engine), engine from file %.0f rows/s; "+
		"%.0f%% of the sink's time inside Write (the rest: between Writes, the runtime commits offsets and fetches the next batch)",
		len(ratios), n, float64(writes)/float64(len(ratios)), *insertRows, sinkRate, 100*ratio, engineRate, 100*inWrite.Seconds()/window.Seconds())
}
